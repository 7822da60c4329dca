//! How a command fails: one line on stderr and an exit code a script can act on.

use decnet_fleet::FleetError;

/// Exit code for bad configuration or arguments (clap uses 2 for usage errors too).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a runtime failure (I/O, environment).
pub const EXIT_RUNTIME: u8 = 1;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }

    /// A fleet error, prefixed with the file it came from (if any).
    pub fn fleet(source: Option<&str>, err: &FleetError) -> Self {
        match source {
            Some(path) => Self::config(format!("{path}: {err}")),
            None => Self::config(err.to_string()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Self::runtime(format!("{err:#}"))
    }
}
