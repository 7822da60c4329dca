pub mod transport;
pub mod wire;

pub mod auth;
pub mod capture;
pub mod connection;
pub mod pubkey;
pub mod scp;
pub mod server;
pub mod sftp;
pub mod terminal;
pub mod transcript;

pub use server::{Ssh, SshConfigError, SshSession};
