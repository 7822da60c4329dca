//! What can go wrong making a fleet real, each naming the bad input and the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {socket}: {reason}. Start it (as root: `dockerd \
         --iptables=false --bridge=none &`, or `systemctl start docker`) or point DOCKER_HOST \
         at a running engine"
    )]
    DockerUnavailable { socket: String, reason: String },
    #[error("Docker {action} failed: {source}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "parent interface {0:?} does not exist on this host; pick one from `ip -br link` with \
         --interface (or `interface=` in the INI)"
    )]
    ParentMissing(String),
    #[error("the plan has no parent interface; pass --interface NAME")]
    NoParent,
    #[error(
        "subnet {subnet} clashes with the existing Docker network {network:?} ({theirs}); \
         remove it (`docker network rm {network}`) or choose another --subnet"
    )]
    SubnetClash {
        subnet: String,
        network: String,
        theirs: String,
    },
    #[error(
        "no image template for service(s) {missing}: the emulator does not serve them yet \
         (templates exist for: {available}); remove them from the fleet"
    )]
    NotEmulated { missing: String, available: String },
    #[error("cannot read the image template {path}: {reason}")]
    Template { path: PathBuf, reason: String },
    #[error(
        "the service binary {path} {reason}; build it with RUSTFLAGS='-C target-feature=+crt-static' \
         cargo build --release -p decnet-services --bin decky --target x86_64-unknown-linux-gnu \
         and pass it with --decky-bin (or DECNET_DECKY_BIN)"
    )]
    DeckyBinary { path: PathBuf, reason: String },
    #[error("building image {tag} from {context} failed: {reason}")]
    ImageBuild {
        tag: String,
        context: PathBuf,
        reason: String,
    },
    #[error("host shim interface: `{command}` failed: {reason}")]
    Shim { command: String, reason: String },
    #[error("no decky named {0:?} in the fleet; `decnet status` lists them")]
    UnknownDecky(String),
    #[error(
        "decky {0:?} was deployed before mutation existed, so its persona is not on record; \
         deploy its INI again (`decnet deploy --config FILE`) to make it mutable"
    )]
    NotMutable(String),
    #[error(
        "decky {name:?} is {state}, not running; `decnet redeploy` brings it back, then it can mutate"
    )]
    NotRunning { name: String, state: String },
    #[error("fleet state in the repository: {0}")]
    Store(#[from] decnet_store::repo::RepoError),
    #[error(
        "the stored state of decky {name:?} is unreadable ({reason}); `decnet teardown --id {name}` removes it"
    )]
    BadRecord { name: String, reason: String },
    #[error("{failed} of {total} deckies failed and were rolled back: {first}")]
    Partial {
        failed: usize,
        total: usize,
        first: String,
    },
}

impl EngineError {
    pub(crate) fn docker(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| Self::Docker { action, source }
    }
}

/// Whether a failed Docker call is worth repeating: the engine was busy or the connection
/// dropped, not a request it refused (those fail the same way every time).
pub(crate) fn is_transient(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code,
            message,
        } => {
            *status_code >= 500
                && !message.contains("already")
                && !message.contains("No such")
                && !message.contains("conflict")
                && !message.contains("invalid")
                && !message.contains("Address already in use")
        }
        E::IOError { .. } | E::HyperResponseError { .. } | E::RequestTimeoutError => true,
        _ => false,
    }
}
