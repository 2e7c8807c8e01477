//! The webhook signature, Stripe-style: `Revloop-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<raw body>" with the channel's secret>`. A receiver verifies it with
//! [`verify_signature`] and rejects a replay older than [`SIGNATURE_TOLERANCE`]. docs/delivery.md
//! shows the same check in a few other languages.

use hmac::{Hmac, KeyInit, Mac};
use revloop_core::time::{DurationMs, Timestamp};
use sha2::Sha256;

/// The header's name.
pub const SIGNATURE_HEADER: &str = "Revloop-Signature";
/// How far a signature's `t` may be from the receiver's clock, either way.
pub const SIGNATURE_TOLERANCE: DurationMs = DurationMs::from_minutes(5);
/// Most `v1=` entries a header may carry (several during a secret's rotation).
pub const SIGNATURES_MAX: usize = 8;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature's time is more than 5 minutes from now (a replay?)")]
    OutsideTolerance,
    #[error("no v1 signature matches the body with this secret")]
    Mismatch,
}

/// The header's value for `body` signed with `secret` at `now` (whole seconds).
pub fn sign(body: &[u8], secret: &str, now: Timestamp) -> String {
    let t = now.millis().div_euclid(1_000);
    format!(
        "t={t},v1={}",
        hex(&mac(t, body, secret).finalize().into_bytes())
    )
}

/// Checks a `Revloop-Signature` header against the raw `body`: its `t` within `tolerance` of
/// `now`, and one of its `v1` values the HMAC of `"<t>.<body>"` with `secret` (compared in
/// constant time).
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now: Timestamp,
    tolerance: DurationMs,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',').take(SIGNATURES_MAX + 1) {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                t = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            Some(("v1", value)) if signatures.len() < SIGNATURES_MAX => {
                signatures.push(unhex(value).ok_or(SignatureError::Malformed)?);
            }
            // Other schemes (a future v2) are skipped, as Stripe's receivers do.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew_ms = t
        .saturating_mul(1_000)
        .saturating_sub(now.millis())
        .saturating_abs();
    if skew_ms > tolerance.millis() {
        return Err(SignatureError::OutsideTolerance);
    }
    if signatures
        .iter()
        .any(|expected| mac(t, body, secret).verify_slice(expected).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(t: i64, body: &[u8], secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_795_773_600_500);

    #[test]
    fn a_signature_verifies_and_names_what_is_wrong_otherwise() {
        let body = br#"{"id":"msg-1"}"#;
        let header = sign(body, "s3cret", NOW);
        assert!(header.starts_with("t=1795773600,v1="), "{header}");
        assert_eq!(header.len(), "t=1795773600,v1=".len() + 64);
        let check = |header: &str, body: &[u8], secret: &str, now: Timestamp| {
            verify_signature(header, body, secret, now, SIGNATURE_TOLERANCE)
        };
        assert_eq!(check(&header, body, "s3cret", NOW), Ok(()));
        let later = Timestamp::from_millis(NOW.millis() + 299_000);
        assert_eq!(check(&header, body, "s3cret", later), Ok(()));
        let too_late = Timestamp::from_millis(NOW.millis() + 301_000);
        assert_eq!(
            check(&header, body, "s3cret", too_late),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            check(&header, body, "other", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&header, b"{}", "s3cret", NOW),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace("t=1795773600", "t=1795773601");
        assert_eq!(
            check(&moved, body, "s3cret", NOW),
            Err(SignatureError::Mismatch)
        );
        for malformed in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1795773600,v1=0g",
            "t=1795773600,v1=abc",
        ] {
            assert_eq!(
                check(malformed, body, "s3cret", NOW),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
        // A rotation: an old and a new signature, either verifies.
        let (_, new) = header.split_once(",").unwrap();
        let rotated = format!("t=1795773600,v1={},{new}", "0".repeat(64));
        assert_eq!(check(&rotated, body, "s3cret", NOW), Ok(()));
    }

    #[test]
    fn the_hmac_and_its_hex_are_the_standard_ones() {
        // RFC 4231 test case 2 (key "Jefe"), through the same MAC and hex encoding `sign`
        // uses: a receiver in any language computes the same digits.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
