//! Flight authentication: a basic → bearer handshake, and a bearer token on every other RPC,
//! compared in constant time. No tokens and no users configured = open (loopback only unless
//! the operator allows it, see `FLIGHT_HOST`).
//!
//! Tokens a handshake issues expire after a TTL and are bounded in number (the oldest go first);
//! the configured tokens can be replaced while running ([`Auth::reload_tokens`], on SIGHUP or when
//! the tokens file changes), which revokes the ones removed.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;

/// How long a handshake's token is accepted, unless configured.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most handshake tokens held at once, unless configured.
pub const DEFAULT_MAX_ISSUED: usize = 10_000;

/// Configured credentials and the tokens issued by handshakes.
#[derive(Debug)]
pub struct Auth {
    /// Configured tokens: (principal, secret).
    tokens: RwLock<Vec<(String, String)>>,
    users: Vec<(String, String)>,
    /// Whether credentials were configured at start: a reload that empties the tokens revokes
    /// them all, it never opens the service.
    required: bool,
    /// Issued tokens by their SHA-256 (a lookup by digest reveals nothing about the token), with
    /// when each expires and the user it was issued to.
    issued: Mutex<HashMap<[u8; 32], (Instant, String)>>,
    ttl: Duration,
    max_issued: usize,
}

impl Default for Auth {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
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

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The principal a request authenticated as when authentication is off.
pub const ANONYMOUS: &str = "anonymous";
/// The principal of a configured token given without a name.
pub const UNNAMED_TOKEN: &str = "token";

/// A configured token `name:secret` (or a bare `secret`, named [`UNNAMED_TOKEN`]) as
/// (principal, secret): grants name the principal, the secret stays out of the config file.
pub fn named_token(entry: &str) -> (String, String) {
    match entry.split_once(':') {
        Some((name, secret)) if !name.trim().is_empty() => (name.trim().to_owned(), secret.to_owned()),
        _ => (UNNAMED_TOKEN.to_owned(), entry.to_owned()),
    }
}

fn named_tokens(entries: Vec<String>) -> Vec<(String, String)> {
    entries.iter().map(|e| named_token(e)).collect()
}

impl Auth {
    pub fn new(tokens: Vec<String>, users: Vec<(String, String)>) -> Self {
        let required = !tokens.is_empty() || !users.is_empty();
        Self {
            tokens: RwLock::new(named_tokens(tokens)),
            users,
            required,
            issued: Mutex::new(HashMap::new()),
            ttl: DEFAULT_TOKEN_TTL,
            max_issued: DEFAULT_MAX_ISSUED,
        }
    }

    /// How long a handshake's token is accepted, and how many are held at once.
    pub fn with_issued_tokens(mut self, ttl: Duration, max: usize) -> Self {
        self.ttl = ttl;
        self.max_issued = max.max(1);
        self
    }

    pub fn enabled(&self) -> bool {
        self.required
    }

    /// Replaces the configured tokens (a reloaded tokens file): removed ones are refused from the
    /// next request on. Returns how many are configured now.
    pub fn reload_tokens(&self, tokens: Vec<String>) -> usize {
        let n = tokens.len();
        *self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner) = named_tokens(tokens);
        n
    }

    /// Handshake tokens held now (expired ones included until they are swept).
    pub fn issued(&self) -> usize {
        self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Checks `authorization: Bearer <token>`; the principal it authenticates.
    pub fn check(&self, metadata: &MetadataMap) -> Result<String, Denied> {
        self.check_at(metadata, Instant::now())
    }

    fn check_at(&self, metadata: &MetadataMap, now: Instant) -> Result<String, Denied> {
        if !self.enabled() {
            return Ok(ANONYMOUS.to_owned());
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
        // Compare against every configured token without stopping early.
        let mut principal = None;
        for (name, secret) in self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            if constant_time_eq(secret.as_bytes(), token.as_bytes()) {
                principal.get_or_insert_with(|| name.clone());
            }
        }
        if let Some(p) = principal {
            return Ok(p);
        }
        let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = digest(token);
        match issued.get(&key) {
            Some((expires, user)) if *expires > now => Ok(user.clone()),
            Some(_) => {
                issued.remove(&key);
                Err(Denied("the bearer token expired: handshake again"))
            }
            None => Err(Denied("invalid bearer token")),
        }
    }

    /// Handshake: `authorization: Basic base64(user:password)` → a fresh bearer token.
    /// A valid bearer token is also accepted (and returned) so clients can re-handshake.
    pub fn login(&self, metadata: &MetadataMap) -> Result<String, Denied> {
        self.login_at(metadata, Instant::now())
    }

    fn login_at(&self, metadata: &MetadataMap, now: Instant) -> Result<String, Denied> {
        if !self.enabled() {
            return Ok(String::new());
        }
        let header = metadata
            .get("authorization")
            .ok_or(Denied("handshake without credentials"))?
            .to_str()
            .map_err(|_| Denied("authorization header is not ASCII"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            self.check_at(metadata, now)?;
            return Ok(token.to_owned());
        }
        let mut who = None;
        let encoded = header.strip_prefix("Basic ").ok_or(Denied("handshake needs basic credentials"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Denied("basic credentials are not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| Denied("basic credentials are not UTF-8"))?;
        let (user, password) = text.split_once(':').ok_or(Denied("basic credentials lack ':'"))?;
        for (u, p) in &self.users {
            if constant_time_eq(u.as_bytes(), user.as_bytes()) & constant_time_eq(p.as_bytes(), password.as_bytes()) {
                who.get_or_insert_with(|| u.clone());
            }
        }
        let Some(who) = who else { return Err(Denied("unknown user or wrong password")) };
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if issued.len() >= self.max_issued {
            issued.retain(|_, (expires, _)| *expires > now);
        }
        while issued.len() >= self.max_issued {
            // Still full of live tokens: the one that would expire first goes.
            let Some(oldest) = issued.iter().min_by_key(|(_, e)| e.0).map(|(k, _)| *k) else { break };
            issued.remove(&oldest);
        }
        issued.insert(digest(&token), (now + self.ttl, who));
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
        assert_eq!(auth.check(&md(&format!("Bearer {token}"))), Ok("ana".to_owned()), "the user it was issued to");
        assert_eq!(auth.check(&md("Bearer s3cret")), Ok(UNNAMED_TOKEN.to_owned()));
        let named = Auth::new(vec!["ops:t0ken".into()], vec![]);
        assert_eq!(named.check(&md("Bearer t0ken")), Ok("ops".to_owned()), "a named token's principal");
        assert!(named.check(&md("Bearer ops:t0ken")).is_err(), "the name is not part of the secret");
        assert_eq!(
            Auth::default().check(&MetadataMap::new()),
            Ok(ANONYMOUS.to_owned()),
            "open when nothing is configured"
        );
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }

    #[test]
    fn issued_tokens_expire_are_bounded_and_configured_ones_reload() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ana:pw"));
        let auth = Auth::new(vec!["old".into()], vec![("ana".into(), "pw".into())])
            .with_issued_tokens(Duration::from_secs(60), 3);
        let now = Instant::now();
        let first = auth.login_at(&md(&basic), now).unwrap();
        let bearer = |t: &str| md(&format!("Bearer {t}"));
        assert!(auth.check_at(&bearer(&first), now + Duration::from_secs(59)).is_ok());
        assert_eq!(
            auth.check_at(&bearer(&first), now + Duration::from_secs(61)),
            Err(Denied("the bearer token expired: handshake again"))
        );
        assert_eq!(auth.issued(), 0, "an expired token is dropped when seen");
        // At most 3 held: the earliest to expire make room.
        let tokens: Vec<String> =
            (0..5).map(|i| auth.login_at(&md(&basic), now + Duration::from_secs(i)).unwrap()).collect();
        assert_eq!(auth.issued(), 3);
        assert!(auth.check_at(&bearer(&tokens[0]), now).is_err());
        assert!(tokens[2..].iter().all(|t| auth.check_at(&bearer(t), now + Duration::from_secs(5)).is_ok()));
        // A reload revokes removed tokens; emptied, the service still requires credentials.
        assert!(auth.check(&bearer("old")).is_ok());
        assert_eq!(auth.reload_tokens(vec!["new".into()]), 1);
        assert!(auth.check(&bearer("old")).is_err() && auth.check(&bearer("new")).is_ok());
        auth.reload_tokens(Vec::new());
        assert!(auth.enabled() && auth.check(&bearer("new")).is_err() && auth.check(&MetadataMap::new()).is_err());
    }
}
