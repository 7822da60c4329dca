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

/// Whether the client takes a gzip body (`Accept-Encoding`, RFC 9110 §12.5.3): `gzip` (or
/// `x-gzip`) with a non-zero weight, or else `*` with a non-zero weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptsGzip(pub bool);

impl AcceptsGzip {
    fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let (mut gzip, mut any) = (None, None);
        for value in headers.get_all(axum::http::header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                // A weight that does not parse counts as none given (1), as most servers do.
                let weight = parts
                    .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    gzip = Some(weight);
                } else if coding == "*" {
                    any = Some(weight);
                }
            }
        }
        Self(gzip.or(any).is_some_and(|w| w > 0.0))
    }
}

impl<S: Sync> FromRequestParts<S> for AcceptsGzip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::{HeaderMap, HeaderValue, header::ACCEPT_ENCODING};

    use super::AcceptsGzip;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        AcceptsGzip::from_headers(&headers).0
    }

    #[test]
    fn gzip_is_taken_only_when_the_client_says_so() {
        assert!(accepts(&["gzip, deflate, br, zstd"])); // Chromium
        assert!(accepts(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts(&["identity", "x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["gzip;q=oops"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0.000, *"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzipped"]));
    }
}
