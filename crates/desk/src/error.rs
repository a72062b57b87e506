//! The code of each failure that reaches a face ([`ErrorCode`] beside the core's sentence): the
//! core's and desk's typed errors mapped once, here.

use sandbox_core::api::ApiError;
use sandbox_core::forward::ForwardError;
use sandbox_core::oidc::OidcError;
use sandbox_core::profile::ProfileError;
use sandbox_core::setup::SetupError;

use crate::demo::DemoError;
use crate::desktop::AutostartError;
use crate::protocol::{ActionError, ErrorCode};
use crate::settings::SettingsFileError;
use crate::views::InvalidSettings;

/// The code of an API failure: a refused credential means signing in; the rest is the server
/// or the network.
pub(crate) fn api_code(e: &ApiError) -> ErrorCode {
    match e {
        ApiError::Unauthorized { .. } | ApiError::SignIn(_) => ErrorCode::SignInNeeded,
        ApiError::Auth(_) | ApiError::KeyRejected { .. } => ErrorCode::Failed,
        _ => ErrorCode::Unreachable,
    }
}

fn oidc_code(e: &OidcError) -> ErrorCode {
    match e {
        OidcError::LoginRequired { .. } | OidcError::Rejected(_) | OidcError::NotCompleted(_) => {
            ErrorCode::SignInNeeded
        }
        OidcError::Discovery { .. } => ErrorCode::Unreachable,
        _ => ErrorCode::Failed,
    }
}

fn profile_code(e: &ProfileError) -> ErrorCode {
    match e {
        ProfileError::Missing(_) => ErrorCode::NotFound,
        _ => ErrorCode::Failed,
    }
}

impl From<ApiError> for ActionError {
    fn from(e: ApiError) -> Self {
        ActionError::new(api_code(&e), e.to_string())
    }
}

impl From<ProfileError> for ActionError {
    fn from(e: ProfileError) -> Self {
        ActionError::new(profile_code(&e), e.to_string())
    }
}

impl From<OidcError> for ActionError {
    fn from(e: OidcError) -> Self {
        ActionError::new(oidc_code(&e), e.to_string())
    }
}

impl From<SetupError> for ActionError {
    fn from(e: SetupError) -> Self {
        let code = match &e {
            SetupError::Server(_) | SetupError::Forward(_) => ErrorCode::InvalidInput,
            SetupError::Api(api) => api_code(api),
            SetupError::Profile(profile) => profile_code(profile),
            SetupError::SignIn(oidc) => oidc_code(oidc),
            SetupError::Tunnel(_) => ErrorCode::Unreachable,
            _ => ErrorCode::Failed,
        };
        ActionError::new(code, e.to_string())
    }
}

/// The code of a forward that could not start.
pub(crate) fn forward_code(e: &ForwardError) -> ErrorCode {
    match e {
        ForwardError::PortInUse { .. } => ErrorCode::PortInUse,
        ForwardError::OwnListener { .. } => ErrorCode::InvalidInput,
        ForwardError::Api(api) => api_code(api),
        _ => ErrorCode::Failed,
    }
}

impl From<ForwardError> for ActionError {
    fn from(e: ForwardError) -> Self {
        ActionError::new(forward_code(&e), e.to_string())
    }
}

impl From<InvalidSettings> for ActionError {
    fn from(e: InvalidSettings) -> Self {
        ActionError::new(ErrorCode::InvalidInput, e.0)
    }
}

impl From<SettingsFileError> for ActionError {
    fn from(e: SettingsFileError) -> Self {
        ActionError::new(ErrorCode::Failed, e.to_string())
    }
}

impl From<DemoError> for ActionError {
    fn from(e: DemoError) -> Self {
        ActionError::new(ErrorCode::Failed, e.to_string())
    }
}

impl From<AutostartError> for ActionError {
    fn from(e: AutostartError) -> Self {
        ActionError::new(ErrorCode::Desktop, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_mean_sign_in_and_a_missing_sandbox_is_not_found() {
        let unauthorized = ApiError::Unauthorized { server: "s".into(), hint: "h".into(), reason: None };
        assert_eq!(ActionError::from(unauthorized).code, ErrorCode::SignInNeeded);
        let forbidden = ApiError::Forbidden { server: "s".into() };
        assert_eq!(ActionError::from(SetupError::Api(forbidden)).code, ErrorCode::Unreachable);
        assert_eq!(ActionError::from(ProfileError::Missing("dev".into())).code, ErrorCode::NotFound);
        let taken = ActionError::from(ForwardError::PortInUse { port: 8000 });
        assert_eq!(taken.code, ErrorCode::PortInUse);
        assert_eq!(ActionError::from(InvalidSettings("Name: required".into())).code, ErrorCode::InvalidInput);
    }
}
