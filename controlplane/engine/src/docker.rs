//! The connection to the Docker engine.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use bollard::{BollardRequest, Docker, body_full};
use bytes::Bytes;

use crate::error::{EngineError, is_transient};

/// Request bodies to send instead of bollard's, keyed by the name of the container being
/// created. Docker 20.10 (API 1.41, what Debian 12 ships) takes a container's MAC address
/// only from the top-level `MacAddress` of the create body, a field bollard's 1.53 model no
/// longer has; without it every decky would get a vendor-less Docker MAC.
pub(crate) type BodyOverrides = Arc<Mutex<HashMap<String, Bytes>>>;

fn override_body(overrides: &BodyOverrides, req: BollardRequest) -> BollardRequest {
    if !req.uri().path().ends_with("/containers/create") {
        return req;
    }
    let Some(name) = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .map(str::to_owned)
    else {
        return req;
    };
    let body = overrides
        .lock()
        .ok()
        .and_then(|map| map.get(&name).cloned());
    match body {
        Some(bytes) => {
            let (parts, _) = req.into_parts();
            BollardRequest::from_parts(parts, body_full(bytes))
        }
        None => req,
    }
}

/// Where the engine is expected, for error messages.
fn socket_name() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// Connect to the local engine (DOCKER_HOST or the default socket) and agree on an API
/// version it speaks.
pub(crate) async fn connect() -> Result<(Docker, BodyOverrides), EngineError> {
    let unavailable = |e: bollard::errors::Error| EngineError::DockerUnavailable {
        socket: socket_name(),
        reason: e.to_string(),
    };
    let overrides: BodyOverrides = Arc::default();
    let hook = Arc::clone(&overrides);
    let docker = Docker::connect_with_local_defaults()
        .map_err(unavailable)?
        .with_timeout(Duration::from_secs(300))
        .with_request_modifier(move |req| override_body(&hook, req));
    let docker = docker.negotiate_version().await.map_err(unavailable)?;
    docker.ping().await.map_err(unavailable)?;
    Ok((docker, overrides))
}

/// Run a Docker call, repeating it (up to 3 times, with a short backoff) only when the
/// failure is transient.
pub(crate) async fn retry<T, F, Fut>(action: &str, mut call: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 2 && is_transient(&e) => {
                attempt += 1;
                tracing::warn!(action, attempt, error = %e, "transient Docker error, retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Err(EngineError::docker(action)(e)),
        }
    }
}

/// Whether a Docker error is "no such container/network/image".
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
