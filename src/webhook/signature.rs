//! The signature of a webhook delivery: HMAC-SHA256 of the raw body keyed with the notification
//! target's secret, sent as hex in `x-env0-signature` (or `x-env-zero-signature`).
//!
//! What is accepted, and why:
//! - an optional `sha256=` prefix (any case), which some senders add;
//! - hex digits in either case: env0 sends lowercase, and the case of a hex digit changes no bit
//!   of the tag, so refusing uppercase would add no safety;
//! - surrounding white space.
//!
//! The comparison is constant time (`hmac`'s `verify_slice`, built on `subtle`); only the
//! tag's length, which is public, is checked first.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256.
type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 tag in bytes.
const TAG_LEN: usize = 32;

/// The hex signature of `body` under `secret`, lowercase, as env0 sends it.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut hex = String::with_capacity(TAG_LEN * 2);
    let Some(mac) = mac(secret, body) else {
        return hex;
    };
    for byte in mac.finalize().into_bytes() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// Whether `header` (a signature header's value) is the signature of `body` under `secret`.
#[must_use]
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(tag) = decode(header) else {
        return false;
    };
    mac(secret, body).is_some_and(|m| m.verify_slice(&tag).is_ok())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The MAC of `body` under `secret`. HMAC takes keys of any length (long ones are hashed
/// first), so this is never `None`; the `Option` keeps a panic out of the request path.
fn mac(secret: &[u8], body: &[u8]) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(mac)
}

/// The tag in a header value: `[sha256=]<64 hex digits>`; `None` if it is not that.
fn decode(header: &str) -> Option<[u8; TAG_LEN]> {
    let text = header.trim();
    let text = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &text[7..],
        _ => text,
    };
    let digits = text.as_bytes();
    if digits.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(tag)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2 (computed independently of this code).
    const RFC_KEY: &[u8] = b"Jefe";
    const RFC_DATA: &[u8] = b"what do ya want for nothing?";
    const RFC_TAG: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn the_signature_is_hmac_sha256_in_lowercase_hex() {
        assert_eq!(sign(RFC_KEY, RFC_DATA), RFC_TAG);
        // Also checked with `openssl dgst -sha256 -hmac s3cret`.
        assert_eq!(
            sign(b"s3cret", br#"{"type":"com.env0.deploy.succeeded"}"#),
            "9ec9ad2b16952155c44081cab8d140305e62c63295f77db6ddf392ffdfa116c9"
        );
    }

    #[test]
    fn the_right_signature_is_accepted_with_or_without_prefix_and_in_either_case() {
        assert!(verify(RFC_KEY, RFC_DATA, RFC_TAG));
        assert!(verify(RFC_KEY, RFC_DATA, &format!("sha256={RFC_TAG}")));
        assert!(verify(RFC_KEY, RFC_DATA, &format!("SHA256={RFC_TAG}")));
        assert!(verify(RFC_KEY, RFC_DATA, &format!(" {RFC_TAG}\t")));
        assert!(verify(RFC_KEY, RFC_DATA, &RFC_TAG.to_uppercase()));
    }

    #[test]
    fn a_wrong_truncated_or_malformed_signature_is_refused() {
        let mut wrong = RFC_TAG.to_owned();
        wrong.replace_range(63.., "4");
        for bad in [
            wrong.as_str(),
            &RFC_TAG[..62],
            &RFC_TAG[..63],
            &format!("{RFC_TAG}00"),
            &format!("sha1={RFC_TAG}"),
            &format!("sha256:{RFC_TAG}"),
            &RFC_TAG.replace('5', "g"),
            "",
            "sha256=",
        ] {
            assert!(!verify(RFC_KEY, RFC_DATA, bad), "{bad:?}");
        }
    }

    #[test]
    fn another_secret_or_another_body_does_not_verify() {
        assert!(!verify(b"jefe", RFC_DATA, RFC_TAG));
        assert!(!verify(RFC_KEY, b"what do ya want for nothing!", RFC_TAG));
        assert!(!verify(RFC_KEY, b"", RFC_TAG));
    }

    #[test]
    fn non_ascii_text_around_the_prefix_does_not_panic() {
        assert!(!verify(RFC_KEY, RFC_DATA, "sha25é=00"));
        assert!(!verify(RFC_KEY, RFC_DATA, "ééééééééé"));
    }
}
