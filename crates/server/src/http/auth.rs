//! API tokens and write keys: generation, hashing, and role checks.
//!
//! A secret is 32 random bytes shown once, as `rl_` plus 64 hex digits. Only its SHA-256 is
//! stored. Secrets are random, not chosen by people, so a fast hash is the right one: there is
//! nothing to brute-force that is cheaper than guessing 256 bits.
//!
//! Ingest endpoints take the write key Segment's way (HTTP Basic username, or `writeKey` in the
//! body) or as a bearer token; everything else takes `Authorization: Bearer <token>`. Lookups
//! are cached for [`CACHE_TTL_MS`], so a revoked token stops working within that time.
//! It never stores or logs a plaintext secret: the store sees only its hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha2::{Digest, Sha256};

use revloop_core::Timestamp;
use revloop_store::{Role, Store};

use crate::http::error::ApiError;

pub const SECRET_PREFIX: &str = "rl_";
/// How long a token lookup is trusted before the store is asked again.
pub const CACHE_TTL_MS: i64 = 30_000;
/// Cached lookups kept; past this the cache is cleared and refilled.
pub const CACHE_ENTRIES_MAX: usize = 10_000;
/// Longest credential looked at; anything longer is not one of ours.
const CREDENTIAL_LEN_MAX: usize = 256;

/// A fresh random secret.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{SECRET_PREFIX}{hex}"))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Secret hash → (role and token name, or `None` for unknown or revoked; when it was looked
/// up, in ms).
type LookupCache = HashMap<[u8; 32], (Option<(Role, String)>, i64)>;

#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Arc<Mutex<LookupCache>>,
}

/// A credential as presented in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// HTTP Basic: Segment sends the write key as the username.
    Basic(String),
    Bearer(String),
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Authenticator {
        Authenticator {
            store,
            cache: Arc::default(),
        }
    }

    /// The role and token name of a secret, or `None` if it is unknown or revoked. Blocking:
    /// call from a blocking context or accept a store read.
    pub fn role_of(
        &self,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<(Role, String)>, ApiError> {
        if secret.len() > CREDENTIAL_LEN_MAX {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        if let Some((role, cached_at)) = crate::http::lock::lock(&self.cache).get(&hash)
            && now.millis() - cached_at < CACHE_TTL_MS
        {
            return Ok(role.clone());
        }
        let role = crate::http::retrying(|| self.store.find_token(&hash))
            .map_err(|err| ApiError::store("token lookup failed", err))?
            .map(|token| (token.role, token.name));
        let mut cache = crate::http::lock::lock(&self.cache);
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(hash, (role.clone(), now.millis()));
        Ok(role)
    }

    /// Checks that the request may act with `needed`, from its headers or a body write key.
    pub fn require(
        &self,
        headers: &HeaderMap,
        body_write_key: Option<&str>,
        needed: Role,
        now: Timestamp,
    ) -> Result<Role, ApiError> {
        self.identify(headers, body_write_key, needed, now)
            .map(|(role, _)| role)
    }

    /// As [`Authenticator::require`], also naming the token: who acted, for audit trails.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        body_write_key: Option<&str>,
        needed: Role,
        now: Timestamp,
    ) -> Result<(Role, String), ApiError> {
        let secret = match credential(headers)? {
            Some(Credential::Basic(secret) | Credential::Bearer(secret)) => secret,
            None => match body_write_key {
                Some(key) if needed == Role::Ingest => key.to_owned(),
                _ => {
                    let how = if needed == Role::Ingest {
                        "send the write key as the HTTP Basic username, as `writeKey` in the body, or as a bearer token"
                    } else {
                        "send `Authorization: Bearer <token>`"
                    };
                    return Err(ApiError::unauthorized(format!("no credentials: {how}")));
                }
            },
        };
        let Some((role, name)) = self.role_of(&secret, now)? else {
            return Err(ApiError::unauthorized("unknown or revoked key"));
        };
        if !role.allows(needed) {
            let article = if role == Role::Ingest || role == Role::Admin {
                "an"
            } else {
                "a"
            };
            return Err(ApiError::forbidden(format!(
                "{article} {} token may not do this; it needs the {} role",
                role.as_str(),
                needed.as_str()
            )));
        }
        Ok((role, name))
    }
}

/// Reads the Authorization header, if any.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::unauthorized("malformed Authorization header");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(malformed)?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Ok(Some(Credential::Bearer(rest.trim().to_owned()))),
        "basic" => {
            let decoded = base64_decode(rest.trim()).ok_or_else(malformed)?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
            let username = decoded
                .split_once(':')
                .map_or(decoded.as_str(), |(user, _)| user);
            Ok(Some(Credential::Basic(username.to_owned())))
        }
        _ => Err(malformed()),
    }
}

/// Standard base64 as HTTP Basic uses it, decoded as leniently as revloop always has: any
/// run of trailing `=` is dropped and the rest read unpadded, and stray low bits in the last
/// character are ignored. Overlong text is refused before decoding.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() > CREDENTIAL_LEN_MAX * 2 {
        return None;
    }
    BASIC_BASE64.decode(text.trim_end_matches('=')).ok()
}

/// Standard base64 with padding, for clients and tests building Basic headers.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn base64_decoding_stays_as_lenient_as_the_hand_written_one_was() {
        // Padding is optional and may run long; stray low bits are ignored; `=` inside the
        // text and overlong text are refused.
        for accepted in ["Zg", "Zg=", "Zg===", "Zh=="] {
            assert_eq!(
                base64_decode(accepted).as_deref(),
                Some(&b"f"[..]),
                "{accepted}"
            );
        }
        assert_eq!(base64_decode("===="), Some(Vec::new()));
        assert_eq!(base64_decode("Z=g="), None);
        assert_eq!(base64_decode("Zm9vY"), None);
        assert_eq!(base64_decode(&"A".repeat(CREDENTIAL_LEN_MAX * 2 + 4)), None);
    }

    #[test]
    fn reads_basic_and_bearer_credentials() {
        let mut headers = HeaderMap::new();
        let basic = format!("Basic {}", base64_encode(b"rl_key:"));
        headers.insert(AUTHORIZATION, basic.parse().unwrap());
        assert_eq!(
            credential(&headers).unwrap(),
            Some(Credential::Basic("rl_key".into()))
        );
        headers.insert(AUTHORIZATION, "Bearer rl_tok".parse().unwrap());
        assert_eq!(
            credential(&headers).unwrap(),
            Some(Credential::Bearer("rl_tok".into()))
        );
        headers.insert(AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(credential(&headers).is_err());
    }

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
    }
}
