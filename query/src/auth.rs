//! Flight authentication: a basic → bearer handshake, and a bearer token on every other RPC,
//! compared in constant time. No tokens and no users configured = open (development only).

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use tonic::metadata::MetadataMap;

/// Configured credentials and the tokens issued by handshakes.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: Vec<String>,
    users: Vec<(String, String)>,
    issued: Mutex<HashSet<String>>,
}

/// Why a request was refused (becomes `Unauthenticated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub &'static str);

/// Equal lengths and bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn new(tokens: Vec<String>, users: Vec<(String, String)>) -> Self {
        Self { tokens, users, issued: Mutex::new(HashSet::new()) }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    /// Checks `authorization: Bearer <token>`.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        let header = metadata
            .get("authorization")
            .ok_or(Denied("missing authorization header"))?
            .to_str()
            .map_err(|_| Denied("authorization header is not ASCII"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(Denied("authorization is not a bearer token"))?;
        // Compare against every known token without stopping early.
        let issued = self.issued.lock().expect("auth lock");
        let ok = self
            .tokens
            .iter()
            .chain(issued.iter())
            .fold(false, |acc, t| acc | constant_time_eq(t.as_bytes(), token.as_bytes()));
        if ok { Ok(()) } else { Err(Denied("invalid bearer token")) }
    }

    /// Handshake: `authorization: Basic base64(user:password)` → a fresh bearer token.
    /// A valid bearer token is also accepted (and returned) so clients can re-handshake.
    pub fn login(&self, metadata: &MetadataMap) -> Result<String, Denied> {
        if !self.enabled() {
            return Ok(String::new());
        }
        let header = metadata
            .get("authorization")
            .ok_or(Denied("handshake without credentials"))?
            .to_str()
            .map_err(|_| Denied("authorization header is not ASCII"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            self.check(metadata)?;
            return Ok(token.to_owned());
        }
        let encoded = header.strip_prefix("Basic ").ok_or(Denied("handshake needs basic credentials"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Denied("basic credentials are not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| Denied("basic credentials are not UTF-8"))?;
        let (user, password) = text.split_once(':').ok_or(Denied("basic credentials lack ':'"))?;
        let ok = self.users.iter().fold(false, |acc, (u, p)| {
            acc | (constant_time_eq(u.as_bytes(), user.as_bytes())
                & constant_time_eq(p.as_bytes(), password.as_bytes()))
        });
        if !ok {
            return Err(Denied("unknown user or wrong password"));
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.issued.lock().expect("auth lock").insert(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn tokens_and_handshake() {
        let auth = Auth::new(vec!["s3cret".into()], vec![("ana".into(), "pw".into())]);
        assert!(auth.check(&MetadataMap::new()).is_err());
        assert!(auth.check(&md("Bearer wrong")).is_err());
        assert!(auth.check(&md("Bearer s3cre")).is_err());
        assert!(auth.check(&md("Basic s3cret")).is_err());
        assert!(auth.check(&md("Bearer s3cret")).is_ok());
        let basic = |u: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u));
        assert!(auth.login(&md(&basic("ana:nope"))).is_err());
        let token = auth.login(&md(&basic("ana:pw"))).unwrap();
        assert_eq!(token.len(), 64);
        assert!(auth.check(&md(&format!("Bearer {token}"))).is_ok());
        assert!(Auth::default().check(&MetadataMap::new()).is_ok(), "open when nothing is configured");
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }
}
