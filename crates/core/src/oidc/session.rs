//! One sandbox's sign-in as every process sees it: a valid access token on demand, refreshed
//! near expiry under a cross-process file lock, so that twenty ProxyCommands started at once
//! cause one refresh — a second use of a rotated refresh token would revoke the whole grant.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use super::provider::{self, LoginOptions, Refreshed};
use super::token_store::{TokenKey, TokenSet, TokenStore};
use super::{OidcError, OidcSettings};
use crate::fsutil;
use crate::name::SandboxName;
use crate::net::TlsSettings;

/// A sandbox's sign-in.
#[derive(Debug, Clone)]
pub struct Session {
    name: SandboxName,
    /// Where the tokens are: the sandbox at this issuer with this client.
    key: TokenKey,
    settings: OidcSettings,
    tls: TlsSettings,
    store: TokenStore,
    lock_path: PathBuf,
}

/// What `logout` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logout {
    /// Stored tokens existed and were deleted.
    pub had_tokens: bool,
    /// The refresh token was revoked at the provider.
    pub revoked: bool,
}

impl Session {
    /// The sign-in of `name`; `lock_dir` holds the per-sandbox refresh lock files.
    pub fn new(
        name: SandboxName,
        settings: OidcSettings,
        tls: TlsSettings,
        store: TokenStore,
        lock_dir: PathBuf,
    ) -> Self {
        let lock_path = lock_dir.join(format!("{name}.lock"));
        let key = TokenKey::new(&name, &settings.issuer, &settings.client_id);
        Session { name, key, settings, tls, store, lock_path }
    }

    /// The provider settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Where the tokens are kept (keychain entry or file), for `status`.
    pub fn store_description(&self) -> String {
        self.store.describe(&self.key)
    }

    /// Deletes the stored tokens without contacting the provider (the sandbox moved to another
    /// server or issuer: its tokens must not follow). True if there were any.
    pub fn forget_tokens(&self) -> Result<bool, OidcError> {
        self.drop_unkeyed();
        Ok(self.store.delete(&self.key)?)
    }

    /// The stored tokens, if any (for status displays; never print the secrets).
    pub fn stored(&self) -> Result<Option<TokenSet>, OidcError> {
        Ok(self.store.load(&self.key)?)
    }

    /// Whether a stored sign-in can supply a token without the browser: a fresh access token,
    /// or a refresh token to renew it with.
    pub fn signed_in(&self) -> bool {
        matches!(self.stored(), Ok(Some(t)) if t.usable() || t.refresh_token.is_some())
    }

    /// Stores `tokens` as if a sign-in had happened (tests of what builds on a session).
    #[cfg(test)]
    pub(crate) fn store_for_test(&self, tokens: &TokenSet) {
        self.store.save(&self.key, tokens).unwrap();
    }

    /// Runs the browser login and stores the tokens.
    pub async fn login(
        &self,
        open_browser: &(dyn Fn(&str) + Sync),
        timeout: Duration,
    ) -> Result<TokenSet, OidcError> {
        let tokens =
            provider::login(LoginOptions { settings: &self.settings, tls: &self.tls, open_browser, timeout })
                .await?;
        self.store.save(&self.key, &tokens)?;
        self.drop_unkeyed();
        Ok(tokens)
    }

    /// Revokes the refresh token where the provider supports it, then deletes the stored tokens
    /// (also when revocation fails: signing out locally must always work).
    pub async fn logout(&self) -> Result<Logout, OidcError> {
        self.drop_unkeyed();
        let Some(tokens) = self.store.load(&self.key)? else {
            return Ok(Logout { had_tokens: false, revoked: false });
        };
        let revoked = match &tokens.refresh_token {
            Some(rt) => match provider::revoke(&self.settings, &self.tls, rt).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("could not revoke the refresh token: {e}");
                    false
                }
            },
            None => false,
        };
        self.store.delete(&self.key)?;
        Ok(Logout { had_tokens: true, revoked })
    }

    /// A valid access token: the stored one while usable, else a refreshed one.
    pub async fn access_token(&self) -> Result<String, OidcError> {
        if let Some(t) = self.store.load(&self.key)? {
            if t.usable() {
                return Ok(t.access_token);
            }
        }
        let _lock = self.lock().await?;
        // Whoever held the lock before us may have refreshed already.
        let Some(tokens) = self.store.load(&self.key)? else {
            return Err(self.login_required("no stored sign-in"));
        };
        if tokens.usable() {
            return Ok(tokens.access_token);
        }
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(self.login_required("the access token expired and there is no refresh token"));
        };
        match provider::refresh(&self.settings, &self.tls, &tokens, &refresh_token).await? {
            Refreshed::Tokens(new) => {
                self.store.save(&self.key, &new)?;
                tracing::info!(sandbox = %self.name, "refreshed the sign-in");
                Ok(new.access_token)
            }
            Refreshed::Invalid(why) => {
                let _ = self.store.delete(&self.key);
                Err(self.login_required(&format!("the provider refused the refresh token: {why}")))
            }
        }
    }

    /// Removes tokens an older version stored under the name alone (best effort: they are
    /// never read, so a failure only leaves dead data behind).
    fn drop_unkeyed(&self) {
        if let Err(e) = self.store.delete_unkeyed(&self.name) {
            tracing::warn!("could not remove the old sign-in of {}: {e}", self.name);
        }
    }

    fn login_required(&self, why: &str) -> OidcError {
        OidcError::LoginRequired { name: self.name.to_string(), why: why.to_owned() }
    }

    /// Takes the sandbox's refresh lock (blocking in a worker thread; released on drop).
    async fn lock(&self) -> Result<File, OidcError> {
        let path = self.lock_path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                fsutil::create_private_dir(dir)?;
            }
            let file = File::options().create(true).truncate(false).write(true).open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| OidcError::Io(e.to_string()))?
        .map_err(|e| OidcError::Io(format!("cannot take the sign-in lock {}: {e}", self.lock_path.display())))
    }
}

impl crate::api::BearerSource for Session {
    fn bearer(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move { self.access_token().await.map_err(|e| e.to_string()) })
    }

    fn reauth_hint(&self) -> String {
        format!("sign in again with `sandbox-forward login {}`", self.name)
    }
}
