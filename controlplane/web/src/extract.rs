//! Who is asking: the bearer token checked on every protected route, as extractors so a
//! handler cannot forget the role check (its signature states the role it needs).

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use decnet_store::repo::User;

use crate::{ApiError, AppState, auth::Claims, now_secs};

/// A valid, unrevoked token of an existing user; `must_change_password` not checked (only
/// change-password and logout take this).
#[derive(Debug)]
pub struct AnyUser {
    pub user: Arc<User>,
    pub claims: Arc<Claims>,
}

/// Any role, password already changed.
#[derive(Debug)]
pub struct Viewer(pub AnyUser);

/// The admin role, password already changed.
#[derive(Debug)]
pub struct Admin(pub AnyUser);

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AnyUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::Unauthorized("an Authorization: Bearer token is required".into())
        })?;
        let claims = state
            .verified
            .verify(&state.key, token, now_secs())
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if state.revoked.is_revoked(&claims.jti) {
            return Err(ApiError::Unauthorized(
                "the token was revoked (logged out)".into(),
            ));
        }
        // The user row is looked up on every request (in memory, dropped by every user change):
        // a deleted user or a changed role takes effect at once, not when the token expires.
        let user = state
            .users
            .get(&state.repo, &claims.sub)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
        Ok(Self { user, claims })
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = AnyUser::from_request_parts(parts, state).await?;
        if who.user.must_change_password {
            return Err(ApiError::MustChangePassword);
        }
        Ok(Self(who))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Viewer(who) = Viewer::from_request_parts(parts, state).await?;
        if who.user.role != "admin" {
            return Err(ApiError::Forbidden("this needs the admin role".into()));
        }
        Ok(Self(who))
    }
}
