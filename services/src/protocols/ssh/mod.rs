//! ssh: an OpenSSH 9.2p1 (Debian 12) persona, sans-IO in layers.
//!
//! - [`transport`]: version exchange, binary packet protocol, KEXINIT (lists and order as
//!   Debian's sshd, so hasshServer matches), every kex/cipher/MAC sshd offers, host keys derived
//!   from a seed, strict kex, EXT_INFO, rekeying, SERVICE_REQUEST. `start()` writes only the
//!   identification line; the server KEXINIT follows the client's identification, as sshd does.
//!   Upper payloads (message numbers >= 50) are delivered only after `ssh-userauth` was
//!   accepted; sending USERAUTH_SUCCESS is what starts delayed zlib compression.
//! - [`auth`] (+ [`pubkey`]): none/password/publickey/keyboard-interactive with sshd's delays,
//!   limits and messages, and the persona's accept policy.
//! - [`connection`] (+ [`terminal`]): channels, pty, the emulated shell, exec, subsystems,
//!   refused forwarding; [`sftp`] and [`scp`] capture uploads ([`capture`] budgets them);
//!   [`transcript`] records asciinema casts.
//! - [`server`]: the `Ssh` protocol and the `SshSession` gluing the layers to the runtime.

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
