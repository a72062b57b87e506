//! OpenID Connect peers for the sign-in tests, real ones, on loopback:
//!
//! - [`Provider`]: node-oidc-provider (OpenID Certified), `tests/oidc/provider.mjs`, with one public
//!   native client (`sandbox-forward`, PKCE S256, loopback redirect `http://127.0.0.1/callback` on
//!   any port, refresh tokens rotated on every use) and RS256 JWT access tokens for the audience
//!   `sandbox-api`. Its devInteractions login and consent pages are plain HTML forms, which
//!   [`Provider::complete_login`] fills in as the user's browser would.
//! - [`OidcGateway`]: Apache httpd with mod_auth_openidc as an OAuth 2.0 resource server. It admits
//!   a request only with a bearer JWT signed by the provider's key, unexpired, with `iss` = the
//!   provider and `aud` = the audience; it sets `X-Forwarded-Sub` from `sub` (dropping whatever the
//!   client sent, and `X-Forwarded-User`/`-Groups` too) and proxies HTTP and WebSocket to the agent.
//!   Anything else gets `401` with the body `unauthorized` and a `WWW-Authenticate: Bearer ...`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::process::{eventually, free_port, Guard};

/// The client every test uses.
pub const CLIENT_ID: &str = "sandbox-forward";
/// The audience of access tokens, which the gateway requires.
pub const AUDIENCE: &str = "sandbox-api";
/// The resource indicator (RFC 8707) of [`AUDIENCE`]; the provider's default resource, so clients
/// never need to send it.
pub const RESOURCE: &str = "urn:sandbox-api";
/// A second audience the provider issues tokens for when asked (`resource=urn:other-api`): a
/// correctly signed token that the gateway must refuse.
pub const OTHER_AUDIENCE: &str = "other-api";
/// The scopes [`Provider::tokens_for`] asks for.
pub const SCOPE: &str = "openid offline_access profile email";

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The project's `tests/oidc` directory (provider.mjs, package.json, package-lock.json).
pub fn oidc_dir() -> PathBuf {
    // Found from the package under test at run time (any package of the workspace), then from
    // this crate's compile-time place: a build cache shared between checkouts may hold a binary
    // compiled in another checkout, whose compile-time path is gone.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tested = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let found = tested
        .iter()
        .map(PathBuf::as_path)
        .chain([here])
        .flat_map(Path::ancestors)
        .map(|dir| dir.join("tests/oidc"))
        .find(|dir| dir.join("provider.mjs").is_file());
    found.unwrap_or_else(|| here.join("../../tests/oidc"))
}

/// Runs `npm ci` in `tests/oidc` once per test process when `node_modules` lacks oidc-provider.
fn ensure_node_modules() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = oidc_dir();
    if !dir.join("node_modules/oidc-provider/package.json").is_file() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run `npm ci` in tests/oidc (is Node.js 20+ with npm installed? scripts/setup-deps.sh)");
        assert!(
            out.status.success(),
            "npm ci in {} failed: {}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *done = true;
}

/// A blocking HTTP client that neither follows redirects nor keeps cookies, nor uses a proxy, nor
/// turns 4xx/5xx into errors.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into()
}

/// Status and body of a response.
fn finish(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> (u16, String) {
    let mut resp = resp.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("{what}: reading body: {e}"));
    (status, body)
}

/// A minimal browser cookie jar: one host, names → values (paths are ignored: sending a cookie to
/// more paths than its `Path` says is harmless to the provider).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn store(&mut self, resp: &ureq::http::Response<ureq::Body>) {
        for h in resp.headers().get_all("set-cookie") {
            let Ok(h) = h.to_str() else { continue };
            let mut parts = h.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { continue };
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970")
            });
            if expired || value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

/// A random PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    use rand_core::RngCore;
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(bytes);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A random URL-safe string (state, nonce).
fn random_token() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The decoded payload (claims) of a JWT, unverified.
pub fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

/// The decoded header of a JWT, unverified.
pub fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0)
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap_or_else(|| panic!("not a JWT: {jwt:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("JWT part {i} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {i} is not JSON: {e}"))
}

/// Unescapes the few HTML entities oidc-provider's pages use in attribute values.
fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&#x2F;", "/").replace("&#47;", "/").replace("&quot;", "\"")
}

/// The first `<form ... action="...">` of a page.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let rest = &form[form.find("action=\"")? + "action=\"".len()..];
    Some(html_unescape(&rest[..rest.find('"')?]))
}

/// A running node-oidc-provider.
pub struct Provider {
    pub guard: Guard,
    /// `http://127.0.0.1:PORT` (no trailing slash), as in tokens' `iss` and the callback's `iss`.
    pub issuer: String,
    pub port: u16,
    pub client_id: String,
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// `jwks.json`, `signing-key.pem` (SPKI) and `signing-cert.pem` (self-signed X.509) of the
    /// RS256 signing key.
    pub keys_dir: PathBuf,
    /// The signing key's `kid`.
    pub kid: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    /// Starts oidc-provider (running `npm ci` in tests/oidc first if node_modules is missing):
    /// client_id "sandbox-forward", audience "sandbox-api", access-token TTL in seconds.
    pub fn start(access_token_ttl_secs: u64) -> Provider {
        ensure_node_modules();
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let log = dir.path().join("provider.log");
        let mut child = Command::new("node")
            .arg(oidc_dir().join("provider.mjs"))
            .args(["--port", "0", "--client-id", CLIENT_ID, "--audience", AUDIENCE, "--resource", RESOURCE])
            .args(["--other-audiences", OTHER_AUDIENCE])
            .arg("--access-token-ttl")
            .arg(access_token_ttl_secs.to_string())
            .arg("--keys-dir")
            .arg(&keys_dir)
            .current_dir(oidc_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn node (Node.js 20+ needed: scripts/setup-deps.sh)");
        let stdout = child.stdout.take().unwrap();
        let guard = Guard { child, name: "oidc-provider" };

        // First stdout line, with a deadline; then keep draining so the pipe never fills or breaks.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let issuer = match line.trim().strip_prefix("issuer ") {
            Some(i) => i.to_owned(),
            None => panic!(
                "oidc-provider did not start (said {line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(keys_dir.join("jwks.json")).unwrap()).unwrap();
        let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
        Provider {
            guard,
            issuer,
            port,
            client_id: CLIENT_ID.to_owned(),
            audience: AUDIENCE.to_owned(),
            access_token_ttl: access_token_ttl_secs,
            keys_dir,
            kid,
            log,
            _dir: dir,
        }
    }

    /// The provider's stderr so far (warnings, and one line per authorization/grant error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ISSUER/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// The revocation endpoint (RFC 7009).
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }

    /// The self-signed X.509 certificate of the signing key (what the gateway verifies with).
    pub fn signing_cert(&self) -> PathBuf {
        self.keys_dir.join("signing-cert.pem")
    }

    /// An authorization URL as our CLI builds it (code + PKCE S256, state, nonce, [`SCOPE`]).
    pub fn authorization_url(&self, redirect_uri: &str, state: &str, nonce: &str, challenge: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/auth", self.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPE)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// Acts as the user's browser: follows the authorization URL, submits the devInteractions
    /// login form as `login`, confirms consent, follows redirects by hand with a cookie jar until
    /// the Location is the loopback redirect URI, then performs that final GET against our CLI's
    /// loopback listener and returns (status, body) of it.
    pub fn complete_login(&self, authorization_url: &str, login: &str) -> (u16, String) {
        let callback = self.authorize_until_callback(authorization_url, login);
        finish(http().get(&callback).call(), &format!("GET {callback} (the CLI's loopback listener)"))
    }

    /// Same, but returns the final callback URL WITHOUT requesting it (so tests can tamper with
    /// state/iss/code). Panics when the provider shows an error page instead of redirecting.
    pub fn authorize_until_callback(&self, authorization_url: &str, login: &str) -> String {
        self.try_authorize_until_callback(authorization_url, login)
            .unwrap_or_else(|e| panic!("{e}\nprovider log:\n{}", self.log()))
    }

    /// Same, but an error page (e.g. for an unregistered redirect URI, which the provider must
    /// not redirect to) is `Err("STATUS: BODY")`.
    pub fn try_authorize_until_callback(
        &self,
        authorization_url: &str,
        login: &str,
    ) -> Result<String, String> {
        let start = url::Url::parse(authorization_url).map_err(|e| format!("bad authorization URL: {e}"))?;
        let redirect_uri = start
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned())
            .ok_or("authorization URL has no redirect_uri")?;
        let redirect = url::Url::parse(&redirect_uri).map_err(|e| format!("bad redirect_uri: {e}"))?;
        let is_callback = |u: &url::Url| {
            u.scheme() == redirect.scheme()
                && u.host_str() == redirect.host_str()
                && u.port_or_known_default() == redirect.port_or_known_default()
                && u.path() == redirect.path()
        };

        let agent = http();
        let mut jar = Jar::default();
        let mut url = start;
        let mut form: Option<(url::Url, Vec<(&str, String)>)> = None;
        for _ in 0..20 {
            let mut resp = match form.take() {
                None => agent.get(url.as_str()).header("Cookie", jar.header()).call(),
                Some((action, fields)) => {
                    url = action;
                    agent.post(url.as_str()).header("Cookie", jar.header()).send_form(fields)
                }
            }
            .map_err(|e| format!("{url}: {e}"))?;
            jar.store(&resp);
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| format!("{status} without Location from {url}"))?;
                url = url.join(location).map_err(|e| format!("bad Location {location:?}: {e}"))?;
                if is_callback(&url) {
                    return Ok(url.into());
                }
                continue;
            }
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            if status != 200 {
                return Err(format!("{status} from {url}: {body}"));
            }
            let action = form_action(&body).ok_or_else(|| format!("no form on {url}: {body}"))?;
            let action = url.join(&action).map_err(|e| format!("bad form action {action:?}: {e}"))?;
            let fields = if body.contains("name=\"login\"") {
                vec![
                    ("prompt", "login".to_owned()),
                    ("login", login.to_owned()),
                    ("password", "any".to_owned()),
                ]
            } else if body.contains("value=\"consent\"") {
                vec![("prompt", "consent".to_owned())]
            } else {
                return Err(format!("neither a login nor a consent form on {url}: {body}"));
            };
            form = Some((action, fields));
        }
        Err(format!("no redirect to {redirect_uri} after 20 steps (last: {url})"))
    }

    /// Obtains tokens directly (for tests of the agent/gateway): runs a full code+PKCE flow against a
    /// throwaway local redirect and returns the token endpoint JSON (access_token, refresh_token,
    /// id_token, expires_in).
    pub fn tokens_for(&self, login: &str) -> Value {
        self.tokens_for_resource(login, None)
    }

    /// [`Provider::tokens_for`] for another resource, e.g. `Some("urn:other-api")`: a correctly
    /// signed access token whose `aud` is `other-api`.
    pub fn tokens_for_resource(&self, login: &str, resource: Option<&str>) -> Value {
        let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
        let (verifier, challenge) = pkce_pair();
        let state = random_token();
        let mut auth = self.authorization_url(&redirect_uri, &state, &random_token(), &challenge);
        if let Some(r) = resource {
            auth = format!(
                "{auth}&resource={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            );
        }
        let callback = url::Url::parse(&self.authorize_until_callback(&auth, login)).unwrap();
        let q: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        assert_eq!(q.get("state"), Some(&state), "callback {callback}");
        assert_eq!(q.get("iss"), Some(&self.issuer), "callback {callback}");
        let code = q.get("code").unwrap_or_else(|| panic!("no code in {callback}"));
        let (status, json) = self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
            ("client_id", &self.client_id),
        ]);
        assert_eq!(status, 200, "token endpoint: {json}\nprovider log:\n{}", self.log());
        json
    }

    /// POSTs a form to the token endpoint: (status, JSON body).
    pub fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let (status, body) =
            finish(http().post(&self.token_endpoint()).send_form(form.iter().copied()), "POST /token");
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("token endpoint said {status}: {body}")),
        )
    }

    /// The refresh-token grant: (status, JSON body). A rotated-away token gives 400
    /// `invalid_grant` and revokes the whole grant, the newest refresh token included.
    pub fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.client_id),
        ])
    }

    /// Revokes a token at the revocation endpoint (as `logout` would); returns the status (200 even
    /// for unknown tokens, per RFC 7009). Revoking a refresh token revokes its grant.
    pub fn revoke(&self, token: &str, hint: Option<&str>) -> u16 {
        let mut form = vec![("token", token), ("client_id", self.client_id.as_str())];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        finish(http().post(&self.revocation_endpoint()).send_form(form), "POST /token/revocation").0
    }

    /// Test-only admin route: revokes every grant of `sub` (refresh tokens, codes; JWT access
    /// tokens stay valid until they expire — they are stateless). Returns how many grants.
    pub fn revoke_all(&self, sub: &str) -> u64 {
        let url = format!("{}/test-admin/revoke?sub={sub}", self.issuer);
        let (status, body) = finish(http().post(&url).send_empty(), "POST /test-admin/revoke");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["revoked_grants"].as_u64().unwrap()
    }

    /// Test-only admin route: ids of the grants of `sub` still alive.
    pub fn live_grants(&self, sub: &str) -> Vec<String> {
        let url = format!("{}/test-admin/grants?sub={sub}", self.issuer);
        let (status, body) = finish(http().get(&url).call(), "GET /test-admin/grants");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Apache httpd (Debian's apache2 + libapache2-mod-auth-openidc) as the routing service.
pub struct OidcGateway {
    pub guard: Guard,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl OidcGateway {
    /// Proxies HTTP and WebSocket to `127.0.0.1:upstream_port`, admitting only bearer JWTs signed
    /// by `provider`, issued by it, unexpired, for `audience`; sets `X-Forwarded-Sub` from `sub`.
    pub fn start(upstream_port: u16, provider: &Provider, audience: &str) -> OidcGateway {
        let httpd = ["/usr/sbin/apache2", "/usr/sbin/httpd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("apache2 is not installed: run scripts/setup-deps.sh");
        let modules = "/usr/lib/apache2/modules";
        assert!(
            Path::new(modules).join("mod_auth_openidc.so").exists(),
            "mod_auth_openidc is not installed: run scripts/setup-deps.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let passphrase = random_token();
        let cert = provider.signing_cert();
        assert!(cert.is_file(), "the provider wrote no X.509 certificate (is `openssl` installed?)");
        let (cert, kid, issuer) = (cert.display(), &provider.kid, &provider.issuer);
        // httpd refuses to run its workers as root; in -X mode it never switches user, but as root
        // it still resolves `User` at start-up, and the default (#-1) has no name.
        #[cfg(unix)]
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        #[cfg(not(unix))]
        let root = false;
        let user = if root { "User nobody\nGroup nogroup\n" } else { "" };
        let conf = format!(
            r#"# Generated by sandbox-test-support (oidc/node.rs). Run with `apache2 -X -f THIS` (one process, no detach).
ServerName 127.0.0.1
ServerRoot {d}
Listen 127.0.0.1:{port}
PidFile {d}/httpd.pid
DefaultRuntimeDir {d}
Mutex file:{d} default
ErrorLog {d}/error.log
LogLevel warn
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
LoadModule proxy_wstunnel_module {modules}/mod_proxy_wstunnel.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so

# One process (-X), many threads: every WebSocket tunnel holds one.
ServerLimit 1
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 64
Timeout 3600
KeepAliveTimeout 5

# OAuth 2.0 resource server: verify the bearer JWT's RS256 signature with the provider's key
# (mod_auth_openidc only fetches a JWKS over https, hence the certificate file), its exp, and
# below its iss and aud.
OIDCCryptoPassphrase {passphrase}
OIDCOAuthVerifyCertFiles {kid}#{cert}
OIDCOAuthAcceptTokenAs header
OIDCOAuthRemoteUserClaim sub
OIDCPassClaimsAs none
OIDCUnAutzAction 401

# Identity headers come from the gateway only: drop the client's before anything else runs.
RequestHeader unset X-Forwarded-Sub early
RequestHeader unset X-Forwarded-User early
RequestHeader unset X-Forwarded-Groups early

ErrorDocument 401 "unauthorized"
# mod_auth_openidc sends the RFC 6750 challenge for missing/invalid/expired tokens, but not when
# a valid token fails the claim checks below (wrong aud or iss): add it there.
Header always setifempty WWW-Authenticate "Bearer error=\"invalid_token\", error_description=\"token not issued for this resource\"" "expr=%{{REQUEST_STATUS}} == 401"
ErrorDocument 403 "forbidden"

<Location />
    AuthType oauth20
    <RequireAll>
        Require valid-user
        Require claim iss:{issuer}
        Require claim aud:{audience}
    </RequireAll>
    RequestHeader set X-Forwarded-Sub "expr=%{{REMOTE_USER}}"
    RequestHeader unset Authorization
</Location>

ProxyRequests Off
ProxyPass / http://127.0.0.1:{upstream_port}/ upgrade=websocket timeout=3600 flushpackets=on
"#
        );
        let conf_path = dir.path().join("httpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(httpd)
            .arg("-X")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn apache2");
        let mut guard = Guard { child, name: "apache2" };
        let up = eventually(Duration::from_secs(20), || {
            if let Ok(Some(_)) = guard.child.try_wait() {
                return true;
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let mut gw = OidcGateway { guard, port, dir };
        if !up || matches!(gw.guard.child.try_wait(), Ok(Some(_))) {
            let read = |f: &str| std::fs::read_to_string(gw.dir.path().join(f)).unwrap_or_default();
            panic!("apache2 did not start\nstderr: {}\nerror.log: {}", read("stderr.log"), read("error.log"));
        }
        gw
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// httpd's error log so far (mod_auth_openidc says there why it refused a token).
    pub fn error_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("error.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}
