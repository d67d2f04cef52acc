//! Helpers shared by the test crates (`tests/e2e`, `tests/cli`) and the webhook unit tests, each
//! including this file with `#[path]`: one copy, computed with the `hmac` and `sha2` crates
//! directly, never with the exporter's own code, so that a check stays independent of what it
//! checks.

#![allow(dead_code)] // each including crate uses its own part

use std::fmt::Write as _;

use hmac::{KeyInit, Mac};

/// HMAC-SHA256 of `body` under `secret`, in lowercase hex (env0's `x-env0-signature`).
pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::hmac_hex;

    /// RFC 4231, test case 2: the published HMAC-SHA256 of "what do ya want for nothing?" under
    /// the key "Jefe".
    #[test]
    fn hmac_hex_matches_the_rfc_4231_vector() {
        assert_eq!(
            hmac_hex("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
