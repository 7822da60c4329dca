//! The mail transaction: MAIL, RCPT (relay and mailbox checks), DATA and BDAT, delivery into
//! quarantine with a Postfix queue ID, and VRFY, which answers from the same checks.

use decnet_store::Severity;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{
    LOCAL_USERS, MAX_MESSAGE, MAX_RECIPIENTS, Mode, SmtpSession, after_keyword, bare_address,
    body::{self, DotReader, Message},
    clip, hex, split_address,
};
use crate::session::Step;

impl SmtpSession {
    pub(super) fn mail(&mut self, rest: &str, step: &mut Step) {
        if self.chunks.is_some() {
            self.fail(step, "503 5.5.1 Error: MAIL after BDAT");
            return;
        }
        if self.sender.is_some() {
            self.fail(step, "503 5.5.1 Error: nested MAIL command");
            return;
        }
        let Some(arg) = after_keyword(rest, "FROM:") else {
            self.fail(step, "501 5.5.4 Syntax: MAIL FROM:<address>");
            return;
        };
        let (token, params) = split_address(arg);
        let Some(address) = bare_address(token) else {
            self.fail(step, "501 5.1.7 Bad sender address syntax");
            return;
        };
        for param in params.split_whitespace() {
            let upper = param.to_ascii_uppercase();
            let (key, value) = upper.split_once('=').unwrap_or((&upper, ""));
            let problem = match key {
                "BODY" if matches!(value, "8BITMIME" | "7BIT") => None,
                "SIZE" if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) => {
                    Some("501 5.5.4 Bad message size syntax".to_owned())
                }
                "SIZE"
                    if value.len() > 12
                        || value.parse::<u64>().unwrap_or(u64::MAX) > MAX_MESSAGE as u64 =>
                {
                    Some("552 5.3.4 Message size exceeds fixed limit".to_owned())
                }
                "SIZE" | "AUTH" | "ENVID" | "SMTPUTF8" => None,
                "RET" if matches!(value, "FULL" | "HDRS") => None,
                "RET" => Some("501 5.5.4 Bad RET parameter syntax".to_owned()),
                _ => Some(format!("555 5.5.4 Unsupported option: {}", clip(param))),
            };
            if let Some(problem) = problem {
                self.fail(step, &problem);
                return;
            }
        }
        step.event("mail_from", Severity::Info, &[("address", &clip(&address))]);
        self.sender = Some(address);
        self.reply(step, "250 2.1.0 Ok");
    }

    /// Why a recipient would be refused, as Postfix words it (`None`: accepted).
    fn recipient_problem(&self, address: &str) -> Option<String> {
        if self.config.relay || self.authenticated {
            return None;
        }
        let (user, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let local = domain.is_empty()
            || domain == self.config.hostname.to_ascii_lowercase()
            || domain == "localhost"
            || domain == "localhost.localdomain";
        if !local {
            return Some(format!("454 4.7.1 <{address}>: Relay access denied"));
        }
        if LOCAL_USERS.iter().any(|u| u.eq_ignore_ascii_case(user)) {
            None
        } else {
            Some(format!(
                "550 5.1.1 <{address}>: Recipient address rejected: User unknown in local \
                 recipient table"
            ))
        }
    }

    pub(super) fn rcpt(&mut self, rest: &str, step: &mut Step) {
        if self.chunks.is_some() {
            self.fail(step, "503 5.5.1 Error: RCPT after BDAT");
            return;
        }
        if self.sender.is_none() {
            self.fail(step, "503 5.5.1 Error: need MAIL command");
            return;
        }
        let Some(arg) = after_keyword(rest, "TO:") else {
            self.fail(step, "501 5.5.4 Syntax: RCPT TO:<address>");
            return;
        };
        let (token, params) = split_address(arg);
        let Some(address) = bare_address(token).filter(|a| !a.is_empty()) else {
            self.fail(step, "501 5.1.3 Bad recipient address syntax");
            return;
        };
        for param in params.split_whitespace() {
            let upper = param.to_ascii_uppercase();
            if !(upper.starts_with("NOTIFY=") || upper.starts_with("ORCPT=")) {
                self.fail(
                    step,
                    &format!("555 5.5.4 Unsupported option: {}", clip(param)),
                );
                return;
            }
        }
        if self.recipients.len() >= MAX_RECIPIENTS {
            self.reply(step, "452 4.5.3 Error: too many recipients");
            return;
        }
        match self.recipient_problem(&address) {
            None => {
                step.event("rcpt_to", Severity::Info, &[("address", &clip(&address))]);
                self.recipients.push(address);
                self.reply(step, "250 2.1.5 Ok");
            }
            Some(problem) => {
                step.event(
                    "rcpt_denied",
                    Severity::Notice,
                    &[("address", &clip(&address)), ("reply", &clip(&problem))],
                );
                self.fail(step, &problem);
            }
        }
    }

    /// DATA or BDAT without (valid) recipients: Postfix's two refusals.
    fn no_recipients(&mut self, step: &mut Step) -> bool {
        if !self.recipients.is_empty() {
            return false;
        }
        if self.sender.is_none() {
            self.fail(step, "503 5.5.1 Error: need RCPT command");
        } else {
            step.event(
                "data_rejected",
                Severity::Notice,
                &[("reason", "no valid recipients")],
            );
            self.fail(step, "554 5.5.1 Error: no valid recipients");
        }
        true
    }

    pub(super) fn data_cmd(&mut self, args: &[&str], step: &mut Step) {
        if self.chunks.is_some() {
            self.fail(step, "503 5.5.1 Error: DATA after BDAT");
            return;
        }
        if self.no_recipients(step) {
            return;
        }
        if !args.is_empty() {
            self.fail(step, "501 5.5.4 Syntax: DATA");
            return;
        }
        self.reply(step, "354 End data with <CR><LF>.<CR><LF>");
        self.mode = Mode::Data(DotReader::new(MAX_MESSAGE));
    }

    pub(super) fn bdat(&mut self, args: &[&str], step: &mut Step) {
        let Some(left) = args
            .first()
            .filter(|c| c.len() <= 12 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u64>().ok())
        else {
            // Without a count the chunk boundary is lost: nothing sane can follow.
            self.hang_up(step, "521 5.5.4 Syntax: BDAT count [LAST]");
            return;
        };
        let last = match args {
            [_] => false,
            [_, l] if l.eq_ignore_ascii_case("LAST") => true,
            _ => {
                self.fail(step, "501 5.5.4 Syntax: BDAT count [LAST]");
                return;
            }
        };
        if left == 0 && !last {
            self.fail(step, "551 5.7.1 Null BDAT request");
            return;
        }
        // The chunk is read either way; whether it counts is decided when it has arrived.
        self.chunks_rejected = self.recipients.is_empty();
        if !self.chunks_rejected && self.chunks.is_none() {
            self.chunks = Some(Message::new(MAX_MESSAGE));
        }
        self.mode = Mode::Chunk { left, last };
        if left == 0 {
            self.chunk_done(last, step);
        }
    }

    pub(super) fn chunk_done(&mut self, last: bool, step: &mut Step) {
        self.mode = Mode::Command;
        if self.chunks_rejected {
            self.chunks_rejected = false;
            self.no_recipients(step);
            return;
        }
        if last {
            let message = self.chunks.take().unwrap_or_default();
            self.deliver(message, step);
        } else {
            let size = self.chunks.as_ref().map_or(0, |m| m.total);
            self.reply(step, &format!("250 2.0.0 Ok: {size} bytes"));
        }
    }

    /// A Postfix short queue ID: microseconds and inode number in upper-case hex.
    fn queue_id(&mut self) -> String {
        let micros: u32 = self.rng.random_range(0..0x10_0000);
        let inode: u32 = self.rng.random_range(0x1_0000..0x100_0000);
        format!("{micros:05X}{inode:X}")
    }

    pub(super) fn deliver(&mut self, message: Message, step: &mut Step) {
        let sender = self.sender.take().unwrap_or_default();
        let recipients = std::mem::take(&mut self.recipients);
        self.reset_transaction();
        if message.too_big() {
            step.event(
                "data_rejected",
                Severity::Notice,
                &[
                    ("reason", "message too big"),
                    ("size", &message.total.to_string()),
                ],
            );
            self.fail(step, "552 5.3.4 Error: message file too big");
            return;
        }
        let sha = hex(&Sha256::digest(&message.bytes));
        let stored_as = if self.config.quarantine {
            format!("{sha}.eml")
        } else {
            String::new()
        };
        let queue_id = self.queue_id();
        let (size, rcpt_count) = (message.total.to_string(), recipients.len().to_string());
        let subject = body::subject(&message.bytes).unwrap_or_default();
        let mut fields = vec![
            ("mail_from", clip(&sender)),
            ("rcpt_to", clip(&recipients.join(","))),
            ("rcpt_count", rcpt_count),
            ("size", size),
            ("sha256", sha),
            ("subject", subject),
            ("queue_id", queue_id.clone()),
            ("stored_as", stored_as.clone()),
        ];
        // The service's memory was spent (see `memory`): the digest covers the kept part.
        if message.truncated() {
            fields.push(("truncated", "true".to_owned()));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        step.event("message_accepted", Severity::Warning, &fields);
        if self.config.quarantine {
            step.store(&stored_as, message.bytes);
        }
        // A delivered message forgives the client's earlier errors.
        self.errors = 0;
        self.reply(step, &format!("250 2.0.0 Ok: queued as {queue_id}"));
    }

    pub(super) fn vrfy(&mut self, rest: &str, step: &mut Step) {
        if rest.is_empty() {
            self.fail(step, "501 5.5.4 Syntax: VRFY address");
            return;
        }
        let Some(address) = bare_address(rest).filter(|a| !a.is_empty()) else {
            self.fail(step, "501 5.1.3 Bad recipient address syntax");
            return;
        };
        let problem = self.recipient_problem(&address);
        step.event(
            "vrfy",
            Severity::Info,
            &[
                ("address", &clip(&address)),
                ("exists", if problem.is_none() { "true" } else { "false" }),
            ],
        );
        match problem {
            None => self.reply(step, &format!("252 2.0.0 {}", clip(rest))),
            Some(problem) => self.fail(step, &problem),
        }
    }
}
