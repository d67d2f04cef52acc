//! The signature of a webhook delivery: HMAC-SHA256 keyed with the notification target's
//! secret, sent as hex in `x-env0-signature` (or `x-env-zero-signature`), of either
//! - the raw body, as env0's docs describe it; or
//! - the body's canonical form, `JSON.stringify(JSON.parse(body))` ([`super::canonical`]),
//!   which is what the TypeScript sample of env0's guide signs.
//!
//! Which of the two env0 signs is not settled, so both are accepted and the form that matched is
//! reported ([`SignatureForm`]): `both` when the body arrived already in its canonical form.
//!
//! What is accepted, and why:
//! - an optional `sha256=` prefix (any case), which some senders add;
//! - hex digits in either case: env0 sends lowercase, and the case of a hex digit changes no bit
//!   of the tag, so refusing uppercase would add no safety;
//! - surrounding white space.
//!
//! The comparison is constant time (`subtle`): both candidates' MACs are always computed and
//! both compared in full, and the two results combined only once both are known, so the time
//! taken does not tell which form matched, nor how many bytes of either did. Only the tag's
//! length, which is public, is checked first, and whether the body has a canonical form at all
//! (whether it is JSON), which its sender knows.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

pub use super::labels::SignatureForm;

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

/// Whether `header` (a signature header's value) is the signature of the raw `body` under
/// `secret`.
#[must_use]
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    verify_either(secret, body, None, header).is_some()
}

/// Which of `raw` (the body as received) and `canonical` (its canonical form, when it has one)
/// `header` is the signature of under `secret`; `None` when neither.
#[must_use]
pub fn verify_either(
    secret: &[u8],
    raw: &[u8],
    canonical: Option<&[u8]>,
    header: &str,
) -> Option<SignatureForm> {
    let tag = decode(header)?;
    // Without a canonical form the raw body stands in, and its match is masked out: the same
    // work either way.
    let (second, has_canonical) = match canonical {
        Some(body) => (body, Choice::from(1)),
        None => (raw, Choice::from(0)),
    };
    let raw_ok = tag_of(secret, raw)?.ct_eq(&tag);
    let canonical_ok = tag_of(secret, second)?.ct_eq(&tag) & has_canonical;
    match (bool::from(raw_ok), bool::from(canonical_ok)) {
        (true, true) => Some(SignatureForm::Both),
        (true, false) => Some(SignatureForm::Raw),
        (false, true) => Some(SignatureForm::Canonical),
        (false, false) => None,
    }
}

/// The HMAC tag of `body` under `secret`.
fn tag_of(secret: &[u8], body: &[u8]) -> Option<[u8; TAG_LEN]> {
    let bytes = mac(secret, body)?.finalize().into_bytes();
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&bytes[..]);
    Some(tag)
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

    /// HMAC-SHA256 of `RFC_DATA` under `RFC_KEY` is `RFC_TAG`; `{"a":1}` and `{ "a": 1.0 }`
    /// have the canonical form `{"a":1}`, whose tag under `Jefe` was computed with
    /// `printf '{"a":1}' | openssl dgst -sha256 -hmac Jefe`.
    const CANONICAL_TAG: &str = "cd7d7d7b1651caa92c82812e913859159c0e729d67421863aaf3e11d0c0e5a96";

    #[test]
    fn either_form_is_accepted_and_the_one_that_matched_is_told() {
        let raw = br#"{ "a": 1.0 }"#;
        let canonical = br#"{"a":1}"#;
        let signed_canonical = CANONICAL_TAG;
        assert_eq!(sign(RFC_KEY, canonical), CANONICAL_TAG);
        let signed_raw = sign(RFC_KEY, raw);
        assert_eq!(
            verify_either(RFC_KEY, raw, Some(canonical), signed_canonical),
            Some(SignatureForm::Canonical)
        );
        assert_eq!(
            verify_either(RFC_KEY, raw, Some(canonical), &signed_raw),
            Some(SignatureForm::Raw)
        );
        // A body that arrived in its canonical form: either way.
        assert_eq!(
            verify_either(RFC_KEY, canonical, Some(canonical), signed_canonical),
            Some(SignatureForm::Both)
        );
        // Without a canonical form only the raw body counts.
        assert_eq!(verify_either(RFC_KEY, raw, None, signed_canonical), None);
        assert_eq!(
            verify_either(RFC_KEY, RFC_DATA, None, RFC_TAG),
            Some(SignatureForm::Raw)
        );
        // Neither form, another secret, a malformed header.
        assert_eq!(verify_either(RFC_KEY, raw, Some(canonical), RFC_TAG), None);
        assert_eq!(
            verify_either(b"jefe", raw, Some(canonical), signed_canonical),
            None
        );
        assert_eq!(
            verify_either(RFC_KEY, raw, Some(canonical), "sha256="),
            None
        );
    }

    #[test]
    fn non_ascii_text_around_the_prefix_does_not_panic() {
        assert!(!verify(RFC_KEY, RFC_DATA, "sha25é=00"));
        assert!(!verify(RFC_KEY, RFC_DATA, "ééééééééé"));
    }
}
