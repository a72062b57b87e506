//! Talking to the OpenID provider: discovery, the browser login, refresh and revocation, with
//! `openidconnect` doing PKCE, state, nonce and id_token verification.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::http;
use super::loopback::Loopback;
use super::token_store::{now_secs, TokenSet};
use super::{OidcError, OidcSettings};
use crate::net::TlsSettings;
use crate::untrusted;

/// Discovery fields beyond the core set that we use.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    /// RFC 9207: the provider puts `iss` on the authorization response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for Extra {}

type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A discovered provider and the client to talk to it with.
struct Provider {
    metadata: Metadata,
    http: http::OidcHttp,
    settings: OidcSettings,
}

impl Provider {
    async fn discover(settings: &OidcSettings, tls: &TlsSettings) -> Result<Provider, OidcError> {
        let fail = |detail: String| OidcError::Discovery { issuer: settings.issuer.clone(), detail };
        let http = http::client(tls).map_err(fail)?;
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| fail(e.to_string()))?;
        http.check(issuer.url()).map_err(|e| OidcError::Rejected(e.to_string()))?;
        let metadata = Metadata::discover_async(issuer, &|r| http::send(http.clone(), r))
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        Ok(Provider { metadata, http, settings: settings.clone() })
    }

    fn client(&self, redirect: Option<String>) -> Result<Client, OidcError> {
        let mut client = CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            None,
        );
        if let Some(uri) = redirect {
            client =
                client.set_redirect_uri(RedirectUrl::new(uri).map_err(|e| OidcError::Io(e.to_string()))?);
        }
        Ok(client)
    }

    fn token_set(
        &self,
        resp: &CoreTokenResponse,
        subject: String,
        previous_refresh: Option<&str>,
    ) -> TokenSet {
        let lifetime = resp.expires_in().unwrap_or(Duration::from_secs(300));
        TokenSet {
            access_token: resp.access_token().secret().clone(),
            // Providers that do not rotate send no new refresh token: keep the old one.
            refresh_token: resp
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| previous_refresh.map(str::to_owned)),
            id_token: resp.id_token().map(|t| t.to_string()),
            issued_at: now_secs(),
            expires_at: now_secs() + lifetime.as_secs(),
            // Shown in messages and the app: the provider's text, made printable.
            subject: untrusted::printable(&subject),
        }
    }
}

type Client = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// How to run a browser login.
pub struct LoginOptions<'a> {
    /// Provider and client.
    pub settings: &'a OidcSettings,
    /// Trust for the provider's TLS.
    pub tls: &'a TlsSettings,
    /// Opens the authorization URL for the user (system browser, `$BROWSER`, the app's opener).
    pub open_browser: &'a (dyn Fn(&str) + Sync),
    /// How long to wait for the user.
    pub timeout: Duration,
}

/// Signs in through the system browser: authorization code + PKCE (S256) with state and nonce,
/// redirected to a one-shot listener on 127.0.0.1; verifies the id_token (signature by the
/// provider's JWKS, issuer, audience, nonce, expiry).
pub async fn login(opts: LoginOptions<'_>) -> Result<TokenSet, OidcError> {
    let provider = Provider::discover(opts.settings, opts.tls).await?;
    let loopback = Loopback::bind().await?;
    let client = provider.client(Some(loopback.redirect_uri()))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in opts.settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if let Some(audience) = &opts.settings.audience {
        // RFC 8707 names a resource by absolute URI; Auth0-style providers take `audience`.
        let key = if url::Url::parse(audience).is_ok() { "resource" } else { "audience" };
        request = request.add_extra_param(key, audience.clone());
    }
    let (url, state, nonce) = request.url();
    (opts.open_browser)(url.as_str());

    let callback = loopback.wait(opts.timeout).await?;
    let params = &callback.params;
    if let Some(error) = params.get("error") {
        let detail =
            params.get("error_description").map(|d| format!("{error}: {d}")).unwrap_or(error.clone());
        let detail = untrusted::one_line(&detail, 200);
        callback.finish(false, &format!("Sign-in failed: {detail}")).await;
        return Err(OidcError::NotCompleted(format!("the provider answered {detail}")));
    }
    if let Err(e) = check_callback(params, state.secret(), &provider) {
        callback
            .finish(false, "Sign-in was rejected: the response did not match this sign-in. Try again.")
            .await;
        return Err(e);
    }
    let code = params.get("code").cloned().unwrap_or_default();
    let exchanged = async {
        let resp = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Rejected(e.to_string()))?
            .set_pkce_verifier(verifier)
            .request_async(&|r| http::send(provider.http.clone(), r))
            .await
            .map_err(|e| OidcError::Rejected(format!("the code exchange failed: {}", token_error(&e))))?;
        let id_token = resp.id_token().ok_or_else(|| {
            OidcError::Rejected("the provider returned no id_token (is `openid` in the scopes?)".into())
        })?;
        let claims = id_token.claims(&client.id_token_verifier(), &nonce).map_err(|e| {
            OidcError::Rejected(format!(
                "the id_token failed verification: {}",
                untrusted::one_line(&e.to_string(), 300)
            ))
        })?;
        Ok::<_, OidcError>(provider.token_set(&resp, claims.subject().to_string(), None))
    }
    .await;
    match &exchanged {
        Ok(t) => {
            let msg =
                format!("Signed in as {}. You can close this tab and return to Sandbox Forward.", t.subject);
            callback.finish(true, &msg).await;
        }
        Err(e) => callback.finish(false, &format!("Sign-in failed: {e}")).await,
    }
    exchanged
}

/// The callback must carry our `state` (CSRF) and, per RFC 9207, the issuer we talk to (mix-up
/// attacks) whenever the provider says it sends one.
fn check_callback(
    params: &std::collections::HashMap<String, String>,
    state: &str,
    provider: &Provider,
) -> Result<(), OidcError> {
    let got = params.get("state").map(String::as_str).unwrap_or("");
    if !constant_time_eq(got.as_bytes(), state.as_bytes()) {
        return Err(OidcError::Rejected(
            "the callback's state does not match this sign-in (a stale tab, or a forged request); run login again".into(),
        ));
    }
    let issuer = provider.metadata.issuer().as_str();
    let iss_promised = provider.metadata.additional_metadata().authorization_response_iss_parameter_supported;
    match params.get("iss") {
        Some(iss) if iss.trim_end_matches('/') != issuer.trim_end_matches('/') => Err(OidcError::Rejected(
            format!("the callback came from issuer {iss:?}, not {issuer:?} (mix-up attack?)"),
        )),
        None if iss_promised == Some(true) => {
            Err(OidcError::Rejected("the callback lacks the `iss` parameter the provider promises".into()))
        }
        _ => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Outcome of a refresh.
pub(super) enum Refreshed {
    /// New tokens.
    Tokens(TokenSet),
    /// The provider refused the refresh token (expired, revoked, reused): sign in again.
    Invalid(String),
}

/// Exchanges a refresh token for new tokens.
pub(super) async fn refresh(
    settings: &OidcSettings,
    tls: &TlsSettings,
    previous: &TokenSet,
    refresh_token: &str,
) -> Result<Refreshed, OidcError> {
    let provider = Provider::discover(settings, tls).await?;
    let client = provider.client(None)?;
    let token = RefreshToken::new(refresh_token.to_owned());
    let request = client.exchange_refresh_token(&token).map_err(|e| OidcError::Rejected(e.to_string()))?;
    match request.request_async(&|r| http::send(provider.http.clone(), r)).await {
        Ok(resp) => {
            Ok(Refreshed::Tokens(provider.token_set(&resp, previous.subject.clone(), Some(refresh_token))))
        }
        Err(RequestTokenError::ServerResponse(e)) => {
            Ok(Refreshed::Invalid(untrusted::one_line(e.error().as_ref(), 200)))
        }
        Err(e) => Err(OidcError::Rejected(format!("refreshing the sign-in failed: {}", token_error(&e)))),
    }
}

/// Revokes a refresh token where the provider supports revocation (RFC 7009); `Ok(false)`
/// where it does not. Written out rather than through `openidconnect`, which insists on https
/// even for a provider on loopback.
pub(super) async fn revoke(
    settings: &OidcSettings,
    tls: &TlsSettings,
    refresh_token: &str,
) -> Result<bool, OidcError> {
    let provider = Provider::discover(settings, tls).await?;
    let Some(endpoint) = provider.metadata.additional_metadata().revocation_endpoint.clone() else {
        return Ok(false);
    };
    let url = url::Url::parse(&endpoint)
        .map_err(|e| OidcError::Rejected(format!("bad revocation endpoint: {e}")))?;
    provider.http.check(&url).map_err(|e| OidcError::Rejected(e.to_string()))?;
    let form = [
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
        ("client_id", settings.client_id.as_str()),
    ];
    let resp = provider
        .http
        .client
        .post(url)
        .form(&form)
        .send()
        .await
        .map_err(|e| OidcError::Rejected(format!("revocation failed: {}", error_chain(&e))))?;
    if !resp.status().is_success() {
        return Err(OidcError::Rejected(format!(
            "revocation failed: the provider answered {}",
            resp.status()
        )));
    }
    Ok(true)
}

fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    e: &RequestTokenError<RE, T>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => untrusted::one_line(&r.to_string(), 300),
        other => error_chain(other),
    }
}

/// An error and its causes on one line (no secrets travel in these errors).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    // Causes may quote the provider's answer (a body that failed to parse).
    untrusted::one_line(&s, 500)
}
