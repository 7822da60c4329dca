//! AUTH PLAIN and LOGIN, inline and as continuations: the decoded credentials are recorded,
//! then refused (`smtp`) or accepted (`smtp_relay`) with Postfix's SASL replies.

use decnet_store::Severity;

use super::{Mode, SmtpSession, clip, lossy};
use crate::{
    protocols::sasl::{b64_decode, parse_plain},
    session::Step,
};

#[derive(Debug)]
pub(super) enum Sasl {
    /// `AUTH PLAIN` without an initial response: the `334 ` prompt is out.
    Plain,
    LoginUser,
    LoginPass(String),
}

impl SmtpSession {
    pub(super) fn auth(&mut self, args: &[&str], step: &mut Step) {
        if self.authenticated {
            self.fail(step, "503 5.5.1 Error: already authenticated");
            return;
        }
        if self.sender.is_some() {
            self.fail(step, "503 5.5.1 Error: MAIL transaction in progress");
            return;
        }
        let (mechanism, initial) = match args {
            [m] => (m.to_ascii_uppercase(), None),
            [m, i] => (m.to_ascii_uppercase(), Some(*i)),
            _ => {
                self.fail(step, "501 5.5.4 Syntax: AUTH mechanism");
                return;
            }
        };
        // "=" is an empty initial response (RFC 4954).
        let initial = initial.map(|i| if i == "=" { "" } else { i });
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => {
                self.reply(step, "334 ");
                self.mode = Mode::Auth(Sasl::Plain);
            }
            ("PLAIN", Some(response)) => match b64_decode(response.as_bytes()) {
                Some(decoded) => self.plain(&decoded, step),
                None => self.auth_broken("PLAIN", "Invalid base64 data in initial response", step),
            },
            ("LOGIN", None) => {
                self.reply(step, "334 VXNlcm5hbWU6");
                self.mode = Mode::Auth(Sasl::LoginUser);
            }
            ("LOGIN", Some(response)) => match b64_decode(response.as_bytes()) {
                Some(user) => {
                    self.reply(step, "334 UGFzc3dvcmQ6");
                    self.mode = Mode::Auth(Sasl::LoginPass(lossy(&user)));
                }
                None => self.auth_broken("LOGIN", "Invalid base64 data in initial response", step),
            },
            (other, _) => self.auth_broken(other, "Invalid authentication mechanism", step),
        }
    }

    pub(super) fn auth_response(&mut self, state: Sasl, raw: &[u8], step: &mut Step) {
        let mechanism = if matches!(state, Sasl::Plain) {
            "PLAIN"
        } else {
            "LOGIN"
        };
        if raw == b"*" {
            step.event("auth_aborted", Severity::Info, &[("mechanism", mechanism)]);
            self.fail(step, "501 5.7.0 Authentication aborted");
            return;
        }
        let Some(decoded) = b64_decode(raw) else {
            self.auth_broken(mechanism, "Invalid base64 data in continued response", step);
            return;
        };
        match state {
            Sasl::Plain => self.plain(&decoded, step),
            Sasl::LoginUser => {
                self.reply(step, "334 UGFzc3dvcmQ6");
                self.mode = Mode::Auth(Sasl::LoginPass(lossy(&decoded)));
            }
            Sasl::LoginPass(user) => self.attempt("LOGIN", &user, &lossy(&decoded), "", step),
        }
    }

    fn plain(&mut self, decoded: &[u8], step: &mut Step) {
        match parse_plain(decoded) {
            Some(p) => self.attempt("PLAIN", &p.username, &p.password, &p.authzid, step),
            // Not `authzid NUL user NUL password`: record what was sent, then fail.
            None => {
                step.event(
                    "auth_attempt",
                    Severity::Warning,
                    &[
                        ("username", &clip(&lossy(decoded))),
                        ("password", ""),
                        ("mechanism", "PLAIN"),
                        ("success", "false"),
                    ],
                );
                self.fail(
                    step,
                    "535 5.7.8 Error: authentication failed: authentication failure",
                );
            }
        }
    }

    fn attempt(
        &mut self,
        mechanism: &str,
        user: &str,
        password: &str,
        authzid: &str,
        step: &mut Step,
    ) {
        let accepted = self.config.relay;
        let mut fields = vec![
            ("username", clip(user)),
            ("password", clip(password)),
            ("mechanism", mechanism.to_owned()),
            ("success", accepted.to_string()),
        ];
        if !authzid.is_empty() {
            fields.push(("authzid", clip(authzid)));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        step.event("auth_attempt", Severity::Warning, &fields);
        if accepted {
            self.authenticated = true;
            self.reply(step, "235 2.7.0 Authentication successful");
        } else {
            self.fail(
                step,
                "535 5.7.8 Error: authentication failed: authentication failure",
            );
        }
    }

    fn auth_broken(&mut self, mechanism: &str, reason: &str, step: &mut Step) {
        step.event(
            "auth_invalid",
            Severity::Notice,
            &[("mechanism", &clip(mechanism)), ("reason", reason)],
        );
        self.fail(
            step,
            &format!("535 5.7.8 Error: authentication failed: {reason}"),
        );
    }
}
