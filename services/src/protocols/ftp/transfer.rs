//! The commands that move data: PASV/EPSV/PORT/EPRT set up the runtime's data channel, and
//! RETR, LIST/NLST and STOR/STOU/APPE use it, answering 150/226/425/426 as the channel
//! opens, finishes or fails.

use std::net::IpAddr;

use decnet_store::Severity;
use sha2::{Digest, Sha256};

use super::{
    FTP_GID, FTP_UID, FtpSession, KEEP_FILE, KEEP_TOTAL, MAX_UPLOAD, USER_UID, atoi, clip, fs,
    fs::{Body, Node, resolve},
    hex,
};
use crate::session::{DataEvent, DataOp, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upload {
    Store,
    Append,
    Unique,
}

#[derive(Debug)]
pub(super) enum Work {
    Listing { done: &'static str },
    Download,
    Upload { path: String, how: Upload },
}

/// The transfer in flight: its 150 text, whether the channel opened, what it is for.
#[derive(Debug)]
pub(super) struct Transfer {
    mark: String,
    opened: bool,
    work: Work,
    cmd: &'static str,
    arg: String,
}

/// `h1,h2,h3,h4,p1,p2` with every field a decimal byte.
fn parse_port(arg: &str) -> Option<([u8; 4], u16)> {
    let fields: Vec<u8> = arg
        .split(',')
        .map(|f| {
            if f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                f.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = fields.as_slice() else {
        return None;
    };
    Some(([*a, *b, *c, *d], u16::from_be_bytes([*p1, *p2])))
}

impl FtpSession {
    pub(super) fn pasv(&mut self, epsv: bool, step: &mut Step) {
        self.channel = false;
        self.listening = Some(epsv);
        step.data(DataOp::Listen);
    }

    pub(super) fn epsv(&mut self, arg: &str, step: &mut Step) {
        if !arg.is_empty() {
            if arg.eq_ignore_ascii_case("ALL") {
                self.epsv_all = true;
                Self::reply(step, 200, "EPSV ALL ok.");
                return;
            }
            let proto = atoi(arg);
            if !(1..=2).contains(&proto) || (proto == 2 && self.local.is_ipv4()) {
                Self::reply(step, 522, "Bad network protocol.");
                return;
            }
        }
        self.pasv(true, step);
    }

    fn passive_reply(&self, epsv: bool, port: u16) -> String {
        if epsv {
            return format!("229 Entering Extended Passive Mode (|||{port}|)\r\n");
        }
        let ip = match self.local {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or([0; 4], |v4| v4.octets()),
        };
        format!(
            "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
            ip[0],
            ip[1],
            ip[2],
            ip[3],
            port >> 8,
            port & 0xff
        )
    }

    /// PORT/EPRT may only point back at the client itself, on an unprivileged port.
    fn connect_back(&mut self, ip: IpAddr, port: u16) -> bool {
        self.channel = false;
        self.listening = None;
        if ip != self.peer || port < 1024 {
            return false;
        }
        self.channel = true;
        true
    }

    pub(super) fn port(&mut self, arg: &str, step: &mut Step) {
        step.data(DataOp::Close);
        let Some((ip, port)) = parse_port(arg) else {
            self.channel = false;
            Self::reply(step, 500, "Illegal PORT command.");
            return;
        };
        if self.connect_back(IpAddr::from(ip), port) {
            step.data(DataOp::Connect(port));
            Self::reply(step, 200, "PORT command successful. Consider using PASV.");
        } else {
            Self::reply(step, 500, "Illegal PORT command.");
        }
    }

    pub(super) fn eprt(&mut self, arg: &str, step: &mut Step) {
        step.data(DataOp::Close);
        self.channel = false;
        let Some(("", rest)) = arg.split_once('|') else {
            Self::reply(step, 500, "Bad EPRT command.");
            return;
        };
        let (proto, rest) = rest.split_once('|').unwrap_or((rest, ""));
        let proto = atoi(proto);
        if !(1..=2).contains(&proto) || (proto == 2 && self.local.is_ipv4()) {
            Self::reply(step, 500, "Bad EPRT protocol.");
            return;
        }
        let parsed = rest.split_once('|').and_then(|(addr, rest)| {
            let ip: IpAddr = match proto {
                1 => IpAddr::V4(addr.parse().ok()?),
                _ => IpAddr::V6(addr.split('%').next()?.parse().ok()?),
            };
            let port = match rest.split_once('|') {
                Some((p, "")) if !p.is_empty() => u16::try_from(atoi(p)).ok()?,
                _ => return None,
            };
            Some((ip, port))
        });
        let Some((ip, port)) = parsed else {
            Self::reply(step, 500, "Bad EPRT command.");
            return;
        };
        if self.connect_back(ip, port) {
            step.data(DataOp::Connect(port));
            Self::reply(step, 200, "EPRT command successful. Consider using EPSV.");
        } else {
            Self::reply(step, 500, "Illegal EPRT command.");
        }
    }

    fn begin(&mut self, step: &mut Step, op: DataOp, transfer: Transfer) {
        step.data(op);
        self.transfer = Some(transfer);
    }

    pub(super) fn retr(&mut self, arg: &str, step: &mut Step) {
        let refuse = |step: &mut Step, code, text| {
            Self::event_command(step, "RETR", arg);
            Self::reply(step, code, text);
        };
        if !self.channel {
            return refuse(step, 425, "Use PORT or PASV first.");
        }
        let offset = std::mem::take(&mut self.rest);
        if self.ascii && offset != 0 {
            return refuse(step, 550, "No support for resume of ASCII transfer.");
        }
        let anonymous = self.anonymous();
        let path = resolve(&self.cwd, arg).unwrap_or_default();
        let Some(node) = self.tree.get(&path).filter(|n| !n.dir) else {
            return refuse(step, 550, "Failed to open file.");
        };
        // anon_world_readable_only: anonymous uploads (mode 600) cannot be read back.
        let readable = !anonymous || node.mode.as_bytes().get(7) == Some(&b'r');
        let bytes = match &node.body {
            Body::Bait(b) if readable => b.to_vec(),
            Body::Kept(v) if readable => v.clone(),
            _ => return refuse(step, 550, "Failed to open file."),
        };
        let size = node.size;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        step.event(
            "download",
            Severity::Warning,
            &[("path", &clip(&path)), ("size", &size.to_string())],
        );
        let mark = format!("Opening BINARY mode data connection for {arg} ({size} bytes).");
        self.begin(
            step,
            DataOp::Send(bytes[start..].to_vec()),
            Transfer {
                mark,
                opened: false,
                work: Work::Download,
                cmd: "RETR",
                arg: arg.to_owned(),
            },
        );
    }

    pub(super) fn list(&mut self, arg: &str, full: bool, step: &mut Step) {
        if !self.channel {
            Self::reply(step, 425, "Use PORT or PASV first.");
            return;
        }
        let (listing, opened) = self.listing(arg, full, false);
        let done = if opened {
            "Directory send OK."
        } else {
            "Transfer done (but failed to open directory)."
        };
        self.begin(
            step,
            DataOp::Send(listing),
            Transfer {
                mark: "Here comes the directory listing.".to_owned(),
                opened: false,
                work: Work::Listing { done },
                cmd: if full { "LIST" } else { "NLST" },
                arg: arg.to_owned(),
            },
        );
    }

    pub(super) fn upload(&mut self, cmd: &'static str, arg: &str, how: Upload, step: &mut Step) {
        let refuse = |step: &mut Step, code, text| {
            Self::event_command(step, cmd, arg);
            Self::reply(step, code, text);
        };
        if !self.channel {
            return refuse(step, 425, "Use PORT or PASV first.");
        }
        self.rest = 0;
        let mut name = arg.to_owned();
        if how == Upload::Unique {
            // wu-ftpd's scheme, as vsftpd keeps it: `name`, else `name.1`, `name.2`, ...
            let taken =
                |n: &str| resolve(&self.cwd, n).is_some_and(|p| self.tree.get(&p).is_some());
            let base = if arg.is_empty() { "STOU" } else { arg };
            if arg.is_empty() || taken(&name) {
                for n in 1..1000 {
                    name = format!("{base}.{n}");
                    if !taken(&name) {
                        break;
                    }
                }
            }
        }
        let Some(path) = resolve(&self.cwd, &name) else {
            return refuse(step, 553, "Could not create file.");
        };
        let creatable = match self.tree.get(&path) {
            Some(node) => !node.dir && !self.anonymous(),
            None => self.tree.is_dir(fs::parent(&path)) && path != "/",
        };
        if !creatable {
            return refuse(step, 553, "Could not create file.");
        }
        let mark = if how == Upload::Unique {
            format!("FILE: {name}")
        } else {
            "Ok to send data.".to_owned()
        };
        self.begin(
            step,
            DataOp::Receive { limit: MAX_UPLOAD },
            Transfer {
                mark,
                opened: false,
                work: Work::Upload { path, how },
                cmd,
                arg: arg.to_owned(),
            },
        );
    }

    fn uploaded(&mut self, path: &str, how: Upload, data: Vec<u8>, total: u64, step: &mut Step) {
        let sha = hex(&Sha256::digest(&data));
        let stored_as = if self.config.quarantine {
            sha.clone()
        } else {
            String::new()
        };
        step.event(
            "upload",
            Severity::Warning,
            &[
                ("path", &clip(path)),
                ("size", &total.to_string()),
                ("sha256", &sha),
                ("stored_as", &stored_as),
                (
                    "truncated",
                    if total > data.len() as u64 {
                        "true"
                    } else {
                        "false"
                    },
                ),
            ],
        );
        let anonymous = self.anonymous();
        let previous = self.tree.get(path).cloned();
        let appended = match (&previous, how) {
            (Some(old), Upload::Append) => Some(old),
            _ => None,
        };
        let size = appended.map_or(total, |old| old.size + total);
        let body = match appended.map(|old| &old.body) {
            None if data.len() <= KEEP_FILE && self.kept + data.len() <= KEEP_TOTAL => {
                self.kept += data.len();
                Body::Kept(data.clone())
            }
            Some(Body::Kept(old)) if self.kept + data.len() <= KEEP_TOTAL => {
                self.kept += data.len();
                let mut joined = old.clone();
                joined.extend_from_slice(&data);
                Body::Kept(joined)
            }
            _ => Body::Dropped,
        };
        let node = Node {
            dir: false,
            size,
            mtime: self.now,
            mode: if anonymous {
                "-rw-------"
            } else {
                "-rw-r--r--"
            },
            uid: if anonymous { FTP_UID } else { USER_UID },
            gid: if anonymous { FTP_GID } else { USER_UID },
            body,
            ours: true,
        };
        if previous.is_some() {
            self.tree.replace(path, node);
        } else {
            self.tree.insert(path, node);
        }
        if self.config.quarantine {
            step.store(&sha, data);
        }
        Self::reply(step, 226, "Transfer complete.");
    }

    pub(super) fn data_event(&mut self, event: DataEvent, step: &mut Step) {
        if let Some(epsv) = self.listening.take() {
            match event {
                DataEvent::Listening(port) => {
                    self.channel = true;
                    step.send(self.passive_reply(epsv, port).as_bytes());
                }
                _ => Self::reply(step, 425, "Failed to establish connection."),
            }
            return;
        }
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        if event == DataEvent::Opened {
            transfer.opened = true;
            let mark = format!("150 {}\r\n", transfer.mark);
            step.send(mark.as_bytes());
            return;
        }
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        self.channel = false;
        match (event, transfer.work) {
            (DataEvent::Sent { .. }, Work::Listing { done }) => Self::reply(step, 226, done),
            (DataEvent::Sent { .. }, Work::Download) => {
                Self::reply(step, 226, "Transfer complete.");
            }
            (DataEvent::Received { data, total }, Work::Upload { path, how }) => {
                self.uploaded(&path, how, data, total, step);
            }
            (_, work) => {
                // An upload that never started is still an attempt worth recording.
                if matches!(work, Work::Upload { .. }) {
                    Self::event_command(step, transfer.cmd, &transfer.arg);
                }
                if transfer.opened {
                    Self::reply(step, 426, "Failure writing network stream.");
                } else {
                    Self::reply(step, 425, "Failed to establish connection.");
                }
            }
        }
    }
}
