//! Standalone OIDC bearer validation: the agent checks `Authorization: Bearer <JWT>` itself
//! instead of trusting a routing service's `X-Forwarded-Sub`.
//!
//! Keys come from the issuer's discovery document (`ISSUER/.well-known/openid-configuration` →
//! `jwks_uri`), fetched lazily on the first request and cached. A token whose `kid` is unknown
//! triggers one refetch (key rotation), at most once per [`JwksPolicy::min_refetch_interval`] so a
//! flood of made-up `kid`s cannot hammer the provider; the cache is also refreshed on use after
//! [`JwksPolicy::max_age`]. While the provider cannot be reached and no keys are cached, requests
//! get 503 (and the agent retries at most once per [`JwksPolicy::failure_backoff`]).
//!
//! Accepted: asymmetric signatures only (RS*, PS*, ES256/384, EdDSA) from keys in the JWKS; never
//! `none` or HMAC. Checked: `iss` = the issuer, `aud` contains the audience, `exp` and `nbf` with
//! [`LEEWAY_SECS`] of leeway, non-empty `sub`. No message or log line ever contains a token.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;

use super::Identity;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// Signature algorithms a token may use. Never `none`, never HMAC: the keys are public.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Largest discovery document or JWKS we read.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// Largest bearer token we look at.
const MAX_TOKEN: usize = 16 * 1024;

/// When the key cache is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksPolicy {
    /// Refresh cached keys on use once they are this old (failures keep the old keys).
    pub max_age: Duration,
    /// At most one refetch per this interval because of an unknown `kid`.
    pub min_refetch_interval: Duration,
    /// After a failed fetch, wait this long before trying the provider again.
    pub failure_backoff: Duration,
    /// Timeout of each request to the provider.
    pub http_timeout: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            max_age: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
            failure_backoff: Duration::from_secs(5),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// A bad `--oidc-issuer`/`--audience`, found at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not an absolute http(s) URL.
    #[error("--oidc-issuer {0:?} is not an http(s) URL without query or fragment")]
    BadIssuer(String),
    /// Plain http to a host other than loopback.
    #[error("--oidc-issuer {0:?} must use https (plain http is accepted only on loopback)")]
    InsecureIssuer(String),
    /// Empty audience.
    #[error("--audience must not be empty")]
    EmptyAudience,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the identity provider: {0}")]
    Client(String),
}

/// Checks an issuer URL: absolute http(s), no query/fragment/user-info, http only on loopback.
pub fn parse_issuer(issuer: &str) -> Result<Url, ConfigError> {
    let bad = || ConfigError::BadIssuer(issuer.to_owned());
    let url = Url::parse(issuer).map_err(|_| bad())?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    if url.host().is_none() {
        return Err(bad());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::InsecureIssuer(issuer.to_owned())),
        _ => Err(bad()),
    }
}

/// Whether the URL's host is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// The token was refused; the reason never quotes the token.
    Invalid(&'static str),
    /// The keys could not be fetched from the identity provider.
    ProviderUnavailable,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::MissingToken => f.write_str("missing bearer token"),
            JwtError::Invalid(reason) => write!(f, "invalid token: {reason}"),
            JwtError::ProviderUnavailable => f.write_str("cannot reach the identity provider"),
        }
    }
}

impl std::error::Error for JwtError {}

/// Validates bearer JWTs against one issuer and audience. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct JwtValidator(Arc<Inner>);

struct Inner {
    /// As configured, for messages.
    issuer: String,
    discovery_url: Url,
    audience: String,
    /// The claim read for groups: an array of strings, or one string.
    groups_claim: String,
    policy: JwksPolicy,
    http: reqwest::Client,
    /// Never held across an `.await`: lookups in the cache do not wait for the network.
    cache: std::sync::Mutex<Cache>,
    /// Held across a fetch, so concurrent requests wait for one fetch instead of starting more.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// The issuer exactly as the discovery document spells it (tokens must carry this `iss`).
    issuer: String,
    keys: Option<Vec<Key>>,
    fetched_at: Option<Instant>,
    last_failure: Option<Instant>,
    last_kid_refetch: Option<Instant>,
    /// Completed fetch attempts; tells a waiting request that someone else fetched meanwhile.
    attempts: u64,
    /// A background refresh of stale keys is under way.
    refreshing: bool,
}

impl Cache {
    fn backing_off(&self, policy: &JwksPolicy) -> bool {
        self.last_failure.is_some_and(|t| t.elapsed() < policy.failure_backoff)
    }
}

struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    /// Algorithms this key can verify.
    algorithms: &'static [Algorithm],
    key: DecodingKey,
}

impl Key {
    fn accepts(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && self.algorithms.contains(&alg)
    }
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.0.issuer)
            .field("audience", &self.0.audience)
            .finish_non_exhaustive()
    }
}

/// The first part of a JWT, read before any key is chosen.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claim that names the caller's groups unless configured otherwise.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// What the cache lookup decided.
enum Lookup {
    Found(DecodingKey),
    Unknown,
}

impl JwtValidator {
    /// A validator for `issuer` and `audience` with the default [`JwksPolicy`]. Fetches nothing.
    pub fn new(issuer: &str, audience: &str) -> Result<Self, ConfigError> {
        Self::with_policy(issuer, audience, JwksPolicy::default())
    }

    /// A validator with explicit cache timings. Fetches nothing.
    pub fn with_policy(issuer: &str, audience: &str, policy: JwksPolicy) -> Result<Self, ConfigError> {
        install_crypto_provider();
        let url = parse_issuer(issuer)?;
        if audience.trim().is_empty() {
            return Err(ConfigError::EmptyAudience);
        }
        let mut discovery = url.to_string();
        if !discovery.ends_with('/') {
            discovery.push('/');
        }
        discovery.push_str(".well-known/openid-configuration");
        let discovery_url = Url::parse(&discovery).map_err(|_| ConfigError::BadIssuer(issuer.to_owned()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(policy.http_timeout)
            .timeout(policy.http_timeout)
            .user_agent(concat!("sandbox-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(JwtValidator(Arc::new(Inner {
            issuer: issuer.to_owned(),
            discovery_url,
            audience: audience.to_owned(),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
            policy,
            http,
            cache: std::sync::Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })))
    }

    /// Reads the caller's groups from `claim` (`--groups-claim`) instead of `groups`.
    ///
    /// # Panics
    /// When called on a validator already cloned (its cache is shared).
    pub fn with_groups_claim(mut self, claim: &str) -> Self {
        Arc::get_mut(&mut self.0).expect("set the groups claim before sharing the validator").groups_claim =
            claim.to_owned();
        self
    }

    /// The issuer as configured.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The required audience.
    pub fn audience(&self) -> &str {
        &self.0.audience
    }

    /// Fetches the keys now if none are cached (at startup, so a misconfiguration shows in the
    /// log early). Failure is logged, not fatal: requests retry later.
    pub async fn prefetch(&self) {
        let _fetching = self.0.fetching.lock().await;
        if self.cache().keys.is_none() {
            let _ = self.refresh().await;
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.0.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Authenticates a request by its `Authorization: Bearer` header.
    pub async fn identify(&self, headers: &http::HeaderMap) -> Result<Identity, JwtError> {
        let token = bearer_token(headers).ok_or(JwtError::MissingToken)?;
        self.validate(token).await
    }

    /// Validates one JWT and returns the identity it carries.
    pub async fn validate(&self, token: &str) -> Result<Identity, JwtError> {
        if token.len() > MAX_TOKEN {
            return Err(JwtError::Invalid("too long"));
        }
        let header = read_header(token)?;
        let alg = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|a| ALLOWED.contains(a))
            .ok_or(JwtError::Invalid("signature algorithm not allowed"))?;
        let (key, issuer) = self.key_for(header.kid.as_deref(), alg).await?;

        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[&self.0.audience]);
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims =
            ["exp", "iss", "aud", "sub"].iter().map(|s| s.to_string()).collect();
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
                .map_err(reason)?;
        let mut claims = data.claims;
        let mut text = |name: &str| match claims.remove(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s),
            _ => None,
        };
        let sub = text("sub").ok_or(JwtError::Invalid("empty sub"))?;
        let user = text("preferred_username").or_else(|| text("name"));
        let groups = match claims.remove(&self.0.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .filter_map(|g| match g {
                    serde_json::Value::String(g) if !g.is_empty() => Some(g),
                    _ => None,
                })
                .collect(),
            Some(serde_json::Value::String(g)) if !g.is_empty() => vec![g],
            _ => Vec::new(),
        };
        Ok(Identity { sub, user, groups })
    }

    /// Finds the key for `kid`/`alg`, fetching or refetching the JWKS as the policy allows.
    /// Returns the key and the exact issuer string tokens must carry.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<(DecodingKey, String), JwtError> {
        let policy = self.0.policy;
        let seen = {
            let mut cache = self.cache();
            if let Lookup::Found(key) = lookup(&cache, kid, alg)? {
                let stale = cache.fetched_at.is_some_and(|t| t.elapsed() >= policy.max_age);
                if stale && !cache.refreshing && !cache.backing_off(&policy) {
                    // Refresh in the background; this request goes on with the cached key.
                    cache.refreshing = true;
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _fetching = this.0.fetching.lock().await;
                        let _ = this.refresh().await;
                        this.cache().refreshing = false;
                    });
                }
                return Ok((key, cache.issuer.clone()));
            }
            cache.attempts
        };

        // No keys yet, or an unknown kid: fetch, one request at a time.
        let _fetching = self.0.fetching.lock().await;
        {
            let mut cache = self.cache();
            if cache.attempts != seen {
                // Someone fetched while we waited; their result is as fresh as ours would be.
                return match lookup(&cache, kid, alg)? {
                    Lookup::Found(key) => Ok((key, cache.issuer.clone())),
                    Lookup::Unknown if cache.keys.is_none() => Err(JwtError::ProviderUnavailable),
                    Lookup::Unknown => Err(unknown_key(kid)),
                };
            }
            if cache.keys.is_none() {
                if cache.backing_off(&policy) {
                    return Err(JwtError::ProviderUnavailable);
                }
            } else {
                // Maybe the provider rotated its keys. Refetch, rate-limited.
                let Some(kid) = kid else { return Err(unknown_key(None)) };
                if cache.last_kid_refetch.is_some_and(|t| t.elapsed() < policy.min_refetch_interval) {
                    return Err(unknown_key(Some(kid)));
                }
                cache.last_kid_refetch = Some(Instant::now());
                tracing::info!(kid, "token signed by an unknown key; refetching the JWKS");
            }
        }
        self.refresh().await.map_err(|()| JwtError::ProviderUnavailable)?;
        let cache = self.cache();
        match lookup(&cache, kid, alg)? {
            Lookup::Found(key) => Ok((key, cache.issuer.clone())),
            Lookup::Unknown => Err(unknown_key(kid)),
        }
    }

    /// Fetches discovery + JWKS into the cache; the caller holds `fetching`. Logs failures; on
    /// failure the cache keeps what it had and `last_failure` starts the backoff.
    async fn refresh(&self) -> Result<(), ()> {
        let result = self.fetch().await;
        let mut cache = self.cache();
        cache.attempts += 1;
        match result {
            Ok((issuer, keys)) => {
                tracing::info!(issuer = ?issuer, keys = keys.len(), "fetched the identity provider's signing keys");
                cache.issuer = issuer;
                cache.keys = Some(keys);
                cache.fetched_at = Some(Instant::now());
                cache.last_failure = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer = ?self.0.issuer, "cannot fetch the identity provider's signing keys: {e}");
                cache.last_failure = Some(Instant::now());
                Err(())
            }
        }
    }

    async fn fetch(&self) -> Result<(String, Vec<Key>), String> {
        let discovery: Discovery = self.get_json(self.0.discovery_url.clone()).await?;
        if discovery.issuer.trim_end_matches('/') != self.0.issuer.trim_end_matches('/') {
            return Err(format!(
                "the discovery document names issuer {:?}, not the configured {:?}",
                discovery.issuer, self.0.issuer
            ));
        }
        let jwks_uri =
            Url::parse(&discovery.jwks_uri).map_err(|_| format!("bad jwks_uri {:?}", discovery.jwks_uri))?;
        if !(jwks_uri.scheme() == "https" || jwks_uri.scheme() == "http" && is_loopback(&jwks_uri)) {
            return Err(format!("refusing jwks_uri {jwks_uri}: not https"));
        }
        let raw: RawJwks = self.get_json(jwks_uri.clone()).await?;
        let keys: Vec<Key> = raw.keys.into_iter().filter_map(parse_key).collect();
        if keys.is_empty() {
            return Err(format!("{jwks_uri} holds no usable signing key"));
        }
        Ok((discovery.issuer, keys))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, String> {
        let mut resp = self
            .0
            .http
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {}", error_chain(&e)))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("GET {url}: response larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }
}

/// The error and its causes, on one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn unknown_key(kid: Option<&str>) -> JwtError {
    match kid {
        Some(_) => JwtError::Invalid("unknown signing key"),
        None => JwtError::Invalid("no key id and no single matching key"),
    }
}

/// Picks the key for a token: by `kid` when it has one, else the only key that fits `alg`.
fn lookup(cache: &Cache, kid: Option<&str>, alg: Algorithm) -> Result<Lookup, JwtError> {
    let keys = cache.keys.as_deref().unwrap_or_default();
    match kid {
        Some(kid) => match keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            Some(k) if k.accepts(alg) => Ok(Lookup::Found(k.key.clone())),
            Some(_) => Err(JwtError::Invalid("signature algorithm does not match the key")),
            None => Ok(Lookup::Unknown),
        },
        None => {
            let mut fitting = keys.iter().filter(|k| k.accepts(alg));
            match (fitting.next(), fitting.next()) {
                (Some(k), None) => Ok(Lookup::Found(k.key.clone())),
                _ => Ok(Lookup::Unknown),
            }
        }
    }
}

/// One JWK → a verification key, or `None` (logged) for keys we never verify with: encryption
/// keys, symmetric keys, unknown types or curves.
fn parse_key(value: serde_json::Value) -> Option<Key> {
    let jwk: Jwk = match serde_json::from_value(value) {
        Ok(j) => j,
        Err(e) => {
            tracing::debug!("skipping a JWK we cannot read: {e}");
            return None;
        }
    };
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithms: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return None,
        },
        _ => return None, // symmetric (`oct`) keys and unknown types
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => match Algorithm::try_from(a) {
            Ok(a) if algorithms.contains(&a) => Some(a),
            _ => return None,
        },
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(Key { kid: jwk.common.key_id, alg, algorithms, key })
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn read_header(token: &str) -> Result<RawHeader, JwtError> {
    let malformed = JwtError::Invalid("malformed");
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed.clone())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed)
}

/// A fixed, token-free reason for a `jsonwebtoken` error.
fn reason(e: jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    JwtError::Invalid(match e.kind() {
        K::InvalidSignature => "bad signature",
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(c) => match c.as_str() {
            "exp" => "missing exp",
            "iss" => "missing iss",
            "aud" => "missing aud",
            "sub" => "missing sub",
            _ => "missing a required claim",
        },
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "signature algorithm not allowed",
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => "malformed",
        _ => "rejected",
    })
}

/// Selects aws-lc-rs for `jsonwebtoken` unless the process already chose a provider (if some
/// other crate in the build turns on `rust_crypto` too, automatic selection would panic).
fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers() {
        assert!(parse_issuer("https://id.example.com").is_ok());
        assert!(parse_issuer("https://id.example.com/realms/x/").is_ok());
        assert!(parse_issuer("http://127.0.0.1:5556").is_ok());
        assert!(parse_issuer("http://localhost:5556/dex").is_ok());
        assert!(parse_issuer("http://[::1]:8080").is_ok());
        assert!(matches!(parse_issuer("http://id.example.com"), Err(ConfigError::InsecureIssuer(_))));
        for bad in ["id.example.com", "ftp://x", "https://x/?a=b", "https://u:p@x/", "https://x/#f"] {
            assert!(matches!(parse_issuer(bad), Err(ConfigError::BadIssuer(_))), "{bad}");
        }
    }

    #[test]
    fn bearer_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer   ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "bearer a.b.c ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("a.b.c"));
    }

    #[test]
    fn header_parsing_never_echoes_the_token() {
        for bad in ["", "a.b", "a.b.c.d", "!!!.b.c", "e30.b.c"] {
            let e = read_header(bad).err().expect(bad);
            assert_eq!(e.to_string(), "invalid token: malformed");
        }
    }

    #[test]
    fn discovery_url_of_issuer() {
        let v = JwtValidator::new("http://127.0.0.1:1/realm", "aud").unwrap();
        assert_eq!(v.0.discovery_url.as_str(), "http://127.0.0.1:1/realm/.well-known/openid-configuration");
        let v = JwtValidator::new("http://127.0.0.1:1/", "aud").unwrap();
        assert_eq!(v.0.discovery_url.as_str(), "http://127.0.0.1:1/.well-known/openid-configuration");
        assert!(matches!(JwtValidator::new("http://127.0.0.1:1", " "), Err(ConfigError::EmptyAudience)));
    }
}
