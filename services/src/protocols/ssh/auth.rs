//! The user authentication protocol (RFC 4252, RFC 4256) as a stock Debian sshd answers it:
//! methods `publickey,password`, PAM's pause after a wrong password, MaxAuthTries 6. Every
//! attempt is an `auth_attempt` event; the accept policy decides which passwords open a shell.

use std::time::Duration;

use decnet_store::Severity;

use super::{
    pubkey,
    wire::{Reader, Writer},
};
use crate::session::Step;

pub const MSG_USERAUTH_REQUEST: u8 = 50;
pub const MSG_USERAUTH_FAILURE: u8 = 51;
pub const MSG_USERAUTH_SUCCESS: u8 = 52;
pub const MSG_USERAUTH_PK_OK: u8 = 60;
pub const MSG_USERAUTH_INFO_REQUEST: u8 = 60;
pub const MSG_USERAUTH_INFO_RESPONSE: u8 = 61;

/// sshd's default MaxAuthTries.
pub const MAX_AUTH_TRIES: u32 = 6;
/// sshd's default LoginGraceTime.
pub const LOGIN_GRACE: Duration = Duration::from_secs(120);
/// DISCONNECT reason sshd uses for its own protocol-level refusals.
pub const DISCONNECT_PROTOCOL_ERROR: u32 = 2;
/// Longest password or username kept in an event.
const MAX_FIELD: usize = 256;

/// Which credentials open a shell.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// `user:password` pairs that log in.
    pub credentials: Vec<(String, String)>,
    /// Accept any password once this many password attempts failed (0: never).
    pub accept_after: u32,
    /// Offer keyboard-interactive (sshd with `KbdInteractiveAuthentication yes`).
    pub keyboard_interactive: bool,
    /// Treat every offered public key as authorized: queries get PK_OK and a correctly
    /// signed request logs in (the attacker proved they hold the private key).
    pub accept_keys: bool,
    /// Pause before answering a wrong password (pam_unix's delay).
    pub failure_delay: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            accept_after: 0,
            keyboard_interactive: false,
            accept_keys: false,
            failure_delay: Duration::from_secs(2),
        }
    }
}

/// Where authentication stands after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// The user is logged in; the connection protocol starts.
    Success {
        user: String,
    },
    /// Hang up with this DISCONNECT (already decided; the caller sends it).
    Disconnect {
        reason: u32,
        description: String,
    },
}

/// One connection's authentication state.
#[derive(Debug)]
pub struct Auth {
    policy: std::sync::Arc<AuthPolicy>,
    /// (user, service) of the first request; sshd refuses to switch.
    identity: Option<(String, String)>,
    attempts: u32,
    failures: u32,
    password_failures: u32,
    /// A keyboard-interactive prompt is out for this user.
    prompting: bool,
}

fn clip(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(MAX_FIELD);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl Auth {
    pub fn new(policy: std::sync::Arc<AuthPolicy>) -> Self {
        Self {
            policy,
            identity: None,
            attempts: 0,
            failures: 0,
            password_failures: 0,
            prompting: false,
        }
    }

    fn methods(&self) -> &'static str {
        if self.policy.keyboard_interactive {
            "publickey,password,keyboard-interactive"
        } else {
            "publickey,password"
        }
    }

    /// Handle one userauth-layer payload (message 50–79). Replies go to `msgs`; events,
    /// delays go to `step`.
    pub fn handle(
        &mut self,
        payload: &[u8],
        session_id: &[u8],
        msgs: &mut Vec<Vec<u8>>,
        step: &mut Step,
    ) -> Outcome {
        let mut r = Reader::new(payload);
        match r.u8() {
            Some(MSG_USERAUTH_REQUEST) => self.request(payload, &mut r, session_id, msgs, step),
            Some(MSG_USERAUTH_INFO_RESPONSE) if self.prompting => {
                self.prompting = false;
                let user = self.identity.clone().map(|(u, _)| u).unwrap_or_default();
                let answer = match r.u32() {
                    Some(n) if n >= 1 => r.string().unwrap_or_default(),
                    _ => &[],
                };
                self.password(&user, answer, "keyboard-interactive", msgs, step)
            }
            // Anything else during authentication is ignored, as sshd's dispatcher does with
            // messages it has no handler for at this stage.
            _ => Outcome::Pending,
        }
    }

    fn request(
        &mut self,
        payload: &[u8],
        r: &mut Reader<'_>,
        session_id: &[u8],
        msgs: &mut Vec<Vec<u8>>,
        step: &mut Step,
    ) -> Outcome {
        let (Some(user), Some(service), Some(method)) = (r.string(), r.string(), r.string()) else {
            return Outcome::Disconnect {
                reason: DISCONNECT_PROTOCOL_ERROR,
                description: "Packet integrity error.".into(),
            };
        };
        let (user, service) = (clip(user), clip(service));
        match &self.identity {
            None => self.identity = Some((user.clone(), service.clone())),
            Some((u, s)) if *u != user || *s != service => {
                return Outcome::Disconnect {
                    reason: DISCONNECT_PROTOCOL_ERROR,
                    description: format!(
                        "Change of username or service not allowed: ({u},{s}) -> ({user},{service})"
                    ),
                };
            }
            Some(_) => {}
        }
        self.attempts += 1;
        self.prompting = false;
        match method {
            b"none" => self.fail("none", msgs),
            b"password" => {
                let change = r.bool().unwrap_or(false);
                let password = r.string().unwrap_or_default();
                // A password change request carries the new one too; the old one is the guess.
                let _ = change;
                self.password(&user, password, "password", msgs, step)
            }
            // OpenSSH clients sign with the host-bound variant when the server announces it.
            b"publickey" | b"publickey-hostbound-v00@openssh.com" => {
                let hostbound = method != b"publickey";
                self.publickey(payload, r, &user, hostbound, session_id, msgs, step)
            }
            b"keyboard-interactive" if self.policy.keyboard_interactive => {
                let mut w = Writer::message(MSG_USERAUTH_INFO_REQUEST);
                w.string(b"")
                    .string(b"")
                    .string(b"")
                    .u32(1)
                    .string(b"Password: ")
                    .bool(false);
                msgs.push(w.finish());
                self.prompting = true;
                Outcome::Pending
            }
            other => {
                let other = clip(other);
                step.event(
                    "auth_attempt",
                    Severity::Warning,
                    &[
                        ("username", &user),
                        ("method", &other),
                        ("success", "false"),
                    ],
                );
                self.fail(&other, msgs)
            }
        }
    }

    fn password(
        &mut self,
        user: &str,
        password: &[u8],
        method: &str,
        msgs: &mut Vec<Vec<u8>>,
        step: &mut Step,
    ) -> Outcome {
        let password = clip(password);
        let listed = self
            .policy
            .credentials
            .iter()
            .any(|(u, p)| u == user && *p == password);
        let ok = listed
            || (self.policy.accept_after > 0 && self.password_failures >= self.policy.accept_after);
        step.event(
            "auth_attempt",
            Severity::Warning,
            &[
                ("username", user),
                ("method", method),
                ("password", &password),
                ("success", if ok { "true" } else { "false" }),
            ],
        );
        if ok {
            msgs.push(vec![MSG_USERAUTH_SUCCESS]);
            return Outcome::Success {
                user: user.to_owned(),
            };
        }
        self.password_failures += 1;
        step.delay(self.policy.failure_delay);
        self.fail(method, msgs)
    }

    #[allow(clippy::too_many_arguments)] // the request's parts and the session's outputs
    fn publickey(
        &mut self,
        payload: &[u8],
        r: &mut Reader<'_>,
        user: &str,
        hostbound: bool,
        session_id: &[u8],
        msgs: &mut Vec<Vec<u8>>,
        step: &mut Step,
    ) -> Outcome {
        let signed = r.bool().unwrap_or(false);
        let (Some(algorithm), Some(blob)) = (r.string(), r.string()) else {
            return self.fail("publickey", msgs);
        };
        if hostbound {
            // The server host key the client binds its signature to; covered by the signature.
            let _ = r.string();
        }
        let algorithm = clip(algorithm);
        let key_type = pubkey::blob_type(blob).unwrap_or_else(|| algorithm.clone());
        let fingerprint = pubkey::fingerprint(blob);
        let mut fields = vec![
            ("username", user.to_owned()),
            ("method", "publickey".to_owned()),
            ("key_type", clip(key_type.as_bytes())),
            ("key_fingerprint", fingerprint),
            ("key_algorithm", algorithm),
        ];
        let mut ok = false;
        if signed {
            // The signed data is the request itself up to the signature, prefixed by the
            // session identifier (RFC 4252 §7).
            let unsigned_len = payload.len() - r.rest().len();
            let signature = r.string().unwrap_or_default();
            let mut data = Writer::new();
            data.string(session_id)
                .raw(payload.get(..unsigned_len).unwrap_or_default());
            let verdict = pubkey::verify(blob, signature, &data.finish());
            fields.push(("signature", verdict.as_str().to_owned()));
            ok = self.policy.accept_keys && verdict == pubkey::Verdict::Valid;
        } else if self.policy.accept_keys {
            // sshd answers a query for an authorized key with PK_OK and counts no failure.
            let mut w = Writer::message(MSG_USERAUTH_PK_OK);
            w.string(fields[4].1.as_bytes()).string(blob);
            msgs.push(w.finish());
            fields.push(("success", "false".to_owned()));
            emit(step, &fields);
            return Outcome::Pending;
        }
        fields.push(("success", if ok { "true" } else { "false" }.to_owned()));
        emit(step, &fields);
        if ok {
            msgs.push(vec![MSG_USERAUTH_SUCCESS]);
            return Outcome::Success {
                user: user.to_owned(),
            };
        }
        self.fail("publickey", msgs)
    }

    /// A failed attempt: count it as sshd does and answer FAILURE, or hang up at the limit.
    fn fail(&mut self, method: &str, msgs: &mut Vec<Vec<u8>>) -> Outcome {
        if self.attempts > 1 || method != "none" {
            self.failures += 1;
        }
        if self.failures >= MAX_AUTH_TRIES {
            return Outcome::Disconnect {
                reason: DISCONNECT_PROTOCOL_ERROR,
                description: "Too many authentication failures".into(),
            };
        }
        let mut w = Writer::message(MSG_USERAUTH_FAILURE);
        w.string(self.methods().as_bytes()).bool(false);
        msgs.push(w.finish());
        Outcome::Pending
    }
}

fn emit(step: &mut Step, fields: &[(&str, String)]) {
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    step.event("auth_attempt", Severity::Warning, &borrowed);
}

#[cfg(test)]
mod tests;
