//! redis: a Redis 7 server persona over RESP2, with a per-host bait keyspace.
//!
//! No password is configured (the state real exposed instances are found in), so every
//! command works and is recorded; `AUTH` gets Redis 7's own "no password configured" error
//! while its arguments are captured. Classic exploitation steps (`CONFIG SET dir`,
//! `SLAVEOF`, `MODULE LOAD`, `EVAL`) answer as a real server would and are flagged.

use std::collections::BTreeMap;

use super::wait::Wait;

use decnet_store::Severity;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    persona::Persona,
    protocols::glob,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
};

const MAX_ARGS: usize = 1024;
const MAX_BULK: usize = 512 * 1024;
const MAX_INLINE: usize = 64 * 1024;
/// Keys a client may add with SET in one connection (kept per session only).
const MAX_WRITES: usize = 1000;
/// Longest key a client's SET keeps, and longest KEYS/SCAN pattern matched: matching costs
/// pattern × key length per key, and 512 KiB of each once cost a minute per command.
const MAX_KEY: usize = 1024;
/// Arguments recorded per command event, and bytes per argument.
const LOGGED_ARGS: usize = 8;
const LOGGED_ARG_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Hash(Vec<(String, String)>),
    List(Vec<String>),
}

/// The service as configured for one host.
#[derive(Debug, Clone)]
pub struct Redis {
    version: String,
    os: String,
    keys: BTreeMap<String, Value>,
    run_id: String,
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn alnum(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Stable per-host seed: the same host always shows the same bait, different hosts differ.
fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Redis {
    pub fn from_persona(p: &Persona) -> Self {
        let mut rng = StdRng::seed_from_u64(seed_of(p.hostname()));
        let kernel = p.get_or("KERNEL", "6.1.0-27-amd64");
        let os = p
            .get("REDIS_OS")
            .map_or_else(|| format!("Linux {kernel} x86_64"), str::to_owned);
        let domain = p
            .hostname()
            .split('.')
            .skip(1)
            .collect::<Vec<_>>()
            .join(".");
        let domain = if domain.is_empty() {
            "corp.local".to_owned()
        } else {
            domain
        };
        let mut keys = BTreeMap::new();
        let mut put = |k: String, v: Value| {
            keys.insert(k, v);
        };
        for _ in 0..3 {
            put(
                format!("session:{}", hex(&mut rng, 16)),
                Value::Str(format!(
                    "{{\"user_id\":{},\"role\":\"user\"}}",
                    rng.random_range(1000..9999)
                )),
            );
        }
        put(
            "api_key".into(),
            Value::Str(format!("sk_live_{}", hex(&mut rng, 12))),
        );
        put("jwt_secret".into(), Value::Str(hex(&mut rng, 32)));
        put(
            "db:password".into(),
            Value::Str(format!(
                "{}!{}",
                alnum(&mut rng, 6).to_lowercase(),
                rng.random_range(10..99)
            )),
        );
        put(
            "aws:access_key_id".into(),
            Value::Str(format!("AKIA{}", alnum(&mut rng, 16))),
        );
        put(
            "aws:secret_access_key".into(),
            Value::Str(hex(&mut rng, 20)),
        );
        put(
            "user:1001".into(),
            Value::Hash(vec![
                ("username".into(), "admin".into()),
                ("email".into(), format!("admin@{domain}")),
                (
                    "password_hash".into(),
                    format!("$2y$10${}", alnum(&mut rng, 53)),
                ),
            ]),
        );
        put(
            "queue:emails".into(),
            Value::List(vec![
                format!("{{\"to\":\"finance@{domain}\",\"subject\":\"Q3 invoices\"}}"),
                format!("{{\"to\":\"it@{domain}\",\"subject\":\"VPN reset\"}}"),
            ]),
        );
        put(
            "config:smtp".into(),
            Value::Str(format!(
                "smtp://mailer:{}@mail.{domain}:587",
                alnum(&mut rng, 10)
            )),
        );
        Self {
            version: p.get_or("REDIS_VERSION", "7.2.7").to_owned(),
            os,
            keys,
            run_id: hex(&mut rng, 20),
        }
    }
}

impl Protocol for Redis {
    fn slug(&self) -> &'static str {
        "redis"
    }

    fn default_ports(&self) -> &'static [u16] {
        &[6379]
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(RedisSession {
            server: self.clone(),
            buf: Vec::new(),
            wait: None,
            #[cfg(test)]
            parses: 0,
            writes: BTreeMap::new(),
            peer: conn.peer.to_string(),
            closed: false,
        })
    }
}

/// One client connection.
#[derive(Debug)]
pub struct RedisSession {
    server: Redis,
    buf: Vec<u8>,
    /// What the buffered, incomplete command waits for before it is parsed again.
    wait: Option<Wait>,
    /// Times the buffer was parsed, for the tests that bound it.
    #[cfg(test)]
    parses: usize,
    writes: BTreeMap<String, Value>,
    peer: String,
    closed: bool,
}

enum Parse {
    Command(Vec<Vec<u8>>, usize),
    /// Parsing again before this arrives cannot succeed.
    Incomplete(Wait),
    Error(&'static str),
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

fn parse_len(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parse one command (RESP array of bulk strings, or an inline line) from the buffer.
fn parse(buf: &[u8]) -> Parse {
    if buf.first() != Some(&b'*') {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_INLINE {
                Parse::Error("too big inline request")
            } else {
                Parse::Incomplete(Wait::Line { limit: MAX_INLINE })
            };
        };
        let line = String::from_utf8_lossy(&buf[..end]);
        let args = line
            .split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        return Parse::Command(args, end + 1);
    }
    let Some(eol) = find_crlf(buf, 1) else {
        return if buf.len() > MAX_INLINE {
            Parse::Error("too big mbulk count string")
        } else {
            Parse::Incomplete(Wait::Line { limit: MAX_INLINE })
        };
    };
    let Some(count) = parse_len(&buf[1..eol]) else {
        return Parse::Error("invalid multibulk length");
    };
    if count <= 0 {
        return Parse::Command(Vec::new(), eol + 2);
    }
    if count > MAX_ARGS as i64 {
        return Parse::Error("invalid multibulk length");
    }
    let mut pos = eol + 2;
    // Where each argument lies; copied once the whole command is in (copying them on every
    // read of an unfinished command re-copied everything received so far, each time).
    let mut args: Vec<(usize, usize)> = Vec::new();
    for _ in 0..count {
        match buf.get(pos) {
            None => return Parse::Incomplete(Wait::Len(pos + 1)),
            Some(b'$') => {}
            Some(_) => return Parse::Error("expected '$'"),
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            return if buf.len() - pos > 32 {
                Parse::Error("invalid bulk length")
            } else {
                Parse::Incomplete(Wait::Line { limit: pos + 32 })
            };
        };
        let len = match parse_len(&buf[pos + 1..eol]) {
            Some(n) if (0..=MAX_BULK as i64).contains(&n) => usize::try_from(n).unwrap_or(0),
            _ => return Parse::Error("invalid bulk length"),
        };
        let start = eol + 2;
        if buf.len() < start + len + 2 {
            return Parse::Incomplete(Wait::Len(start + len + 2));
        }
        args.push((start, len));
        pos = start + len + 2;
    }
    let args = args
        .into_iter()
        .map(|(start, len)| buf[start..start + len].to_vec())
        .collect();
    Parse::Command(args, pos)
}

fn bulk(out: &mut Step, s: &str) {
    out.send(format!("${}\r\n{s}\r\n", s.len()).as_bytes());
}

fn array(out: &mut Step, items: &[String]) {
    out.send(format!("*{}\r\n", items.len()).as_bytes());
    for i in items {
        bulk(out, i);
    }
}

const CONFIG: &[(&str, &str)] = &[
    ("dir", "/var/lib/redis"),
    ("dbfilename", "dump.rdb"),
    ("requirepass", ""),
    ("masterauth", ""),
    ("maxmemory", "0"),
    ("appendonly", "no"),
    ("protected-mode", "no"),
    ("bind", "* -::*"),
    ("port", "6379"),
    ("save", "3600 1 300 100 60 10000"),
    ("databases", "16"),
];

impl RedisSession {
    fn value(&self, key: &str) -> Option<&Value> {
        self.writes.get(key).or_else(|| self.server.keys.get(key))
    }

    /// Keys in the database, counted without copying them (DBSIZE, INFO).
    fn key_count(&self) -> usize {
        let added = self
            .writes
            .keys()
            .filter(|k| !self.server.keys.contains_key(*k))
            .count();
        self.server.keys.len() + added
    }

    /// Keys matching `pattern`, sorted; none for a pattern longer than any kept key could
    /// need.
    fn matching_keys(&self, pattern: &[u8]) -> Vec<String> {
        if pattern.len() > MAX_KEY {
            return Vec::new();
        }
        self.all_keys()
            .into_iter()
            .filter(|k| glob::glob(pattern, k.as_bytes()))
            .collect()
    }

    fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .server
            .keys
            .keys()
            .chain(self.writes.keys())
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn info(&self, section: Option<&str>) -> String {
        let s = &self.server;
        let server = format!(
            "# Server\r\nredis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n\
             redis_build_id:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\n\
             multiplexing_api:epoll\r\ngcc_version:12.2.0\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             tcp_port:6379\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:10\r\n\
             executable:/usr/bin/redis-server\r\nconfig_file:/etc/redis/redis.conf\r\n",
            s.version,
            &s.run_id[..16],
            s.os,
            700 + (seed_of(&s.run_id) % 300),
            s.run_id,
            1_814_400 + (seed_of(&s.os) % 86_400),
            21
        );
        let rest = format!(
            "# Clients\r\nconnected_clients:1\r\nblocked_clients:0\r\n\r\n# Memory\r\n\
             used_memory:1183744\r\nused_memory_human:1.13M\r\nmaxmemory:0\r\n\
             maxmemory_policy:noeviction\r\n\r\n# Persistence\r\nloading:0\r\n\
             rdb_changes_since_last_save:0\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\n\r\n\
             # Stats\r\ntotal_connections_received:1841\r\ntotal_commands_processed:90117\r\n\r\n\
             # Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n# CPU\r\n\
             used_cpu_sys:211.402911\r\nused_cpu_user:318.925503\r\n\r\n# Keyspace\r\n\
             db0:keys={},expires=0,avg_ttl=0\r\n",
            self.key_count()
        );
        match section.map(str::to_ascii_lowercase).as_deref() {
            Some("server") => server,
            Some("keyspace") => format!(
                "# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
                self.key_count()
            ),
            _ => format!("{server}\r\n{rest}"),
        }
    }

    fn execute(&mut self, args: &[Vec<u8>], out: &mut Step) {
        let Some(first) = args.first() else { return };
        let cmd = String::from_utf8_lossy(first).to_ascii_lowercase();
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let arg = |i: usize| text.get(i).map(String::as_str);
        let logged: Vec<String> = text
            .iter()
            .skip(1)
            .take(LOGGED_ARGS)
            .map(|a| a.chars().take(LOGGED_ARG_BYTES).collect())
            .collect();
        let joined = logged.join(" ");
        let risky = matches!(
            cmd.as_str(),
            "config"
                | "slaveof"
                | "replicaof"
                | "module"
                | "eval"
                | "evalsha"
                | "flushall"
                | "flushdb"
                | "save"
                | "bgsave"
        ) && !(cmd == "config"
            && arg(1).is_some_and(|a| a.eq_ignore_ascii_case("get")));
        if cmd == "auth" {
            let (user, pass) = match (arg(1), arg(2)) {
                (Some(u), Some(p)) => (u, p),
                (Some(p), None) => ("default", p),
                _ => ("", ""),
            };
            out.event(
                "auth",
                Severity::Warning,
                &[("username", user), ("password", pass)],
            );
        } else {
            let sev = if risky {
                Severity::Warning
            } else {
                Severity::Info
            };
            out.event("command", sev, &[("cmd", &cmd), ("args", &joined)]);
        }
        let arity = |n: usize, out: &mut Step| -> bool {
            if args.len() < n {
                out.send(
                    format!("-ERR wrong number of arguments for '{cmd}' command\r\n").as_bytes(),
                );
                false
            } else {
                true
            }
        };
        match cmd.as_str() {
            "ping" => match arg(1) {
                Some(m) => bulk(out, m),
                None => out.send(b"+PONG\r\n"),
            },
            "echo" if arity(2, out) => bulk(out, arg(1).unwrap_or_default()),
            "auth" if arity(2, out) => out.send(
                b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
            ),
            "hello" => {
                if arg(1).is_some_and(|v| v != "2" && v != "3") {
                    out.send(b"-NOPROTO unsupported protocol version\r\n");
                } else {
                    out.send(b"*14\r\n");
                    for (k, v) in [("server", "redis"), ("version", self.server.version.as_str())] {
                        bulk(out, k);
                        bulk(out, v);
                    }
                    bulk(out, "proto");
                    out.send(b":2\r\n");
                    bulk(out, "id");
                    out.send(b":12\r\n");
                    for (k, v) in [("mode", "standalone"), ("role", "master")] {
                        bulk(out, k);
                        bulk(out, v);
                    }
                    bulk(out, "modules");
                    out.send(b"*0\r\n");
                }
            }
            "info" => {
                let info = self.info(arg(1));
                bulk(out, &info);
            }
            "keys" if arity(2, out) => {
                let pattern = arg(1).unwrap_or("*").as_bytes().to_vec();
                let keys = self.matching_keys(&pattern);
                array(out, &keys);
            }
            "scan" if arity(2, out) => {
                let pattern = text
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case("match"))
                    .and_then(|i| text.get(i + 1))
                    .map_or_else(|| b"*".to_vec(), |p| p.as_bytes().to_vec());
                let keys = self.matching_keys(&pattern);
                out.send(b"*2\r\n");
                bulk(out, "0");
                array(out, &keys);
            }
            "dbsize" => out.send(format!(":{}\r\n", self.key_count()).as_bytes()),
            "get" if arity(2, out) => match self.value(arg(1).unwrap_or_default()) {
                Some(Value::Str(v)) => {
                    let v = v.clone();
                    bulk(out, &v);
                }
                Some(_) => out.send(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
                None => out.send(b"$-1\r\n"),
            },
            "set" if arity(3, out) => {
                if self.writes.len() < MAX_WRITES && text[1].len() <= MAX_KEY {
                    self.writes.insert(text[1].clone(), Value::Str(text[2].chars().take(4096).collect()));
                }
                out.send(b"+OK\r\n");
            }
            "exists" | "del" | "unlink" if arity(2, out) => {
                let n = text[1..].iter().filter(|k| self.value(k).is_some()).count();
                out.send(format!(":{n}\r\n").as_bytes());
            }
            "type" if arity(2, out) => {
                let t = match self.value(arg(1).unwrap_or_default()) {
                    Some(Value::Str(_)) => "string",
                    Some(Value::Hash(_)) => "hash",
                    Some(Value::List(_)) => "list",
                    None => "none",
                };
                out.send(format!("+{t}\r\n").as_bytes());
            }
            "ttl" | "pttl" if arity(2, out) => {
                let n = if self.value(arg(1).unwrap_or_default()).is_some() { -1 } else { -2 };
                out.send(format!(":{n}\r\n").as_bytes());
            }
            "hgetall" if arity(2, out) => match self.value(arg(1).unwrap_or_default()) {
                Some(Value::Hash(h)) => {
                    let flat: Vec<String> = h.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
                    array(out, &flat);
                }
                Some(_) => out.send(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
                None => out.send(b"*0\r\n"),
            },
            "lrange" if arity(4, out) => match self.value(arg(1).unwrap_or_default()) {
                Some(Value::List(l)) => {
                    let l = l.clone();
                    array(out, &l);
                }
                Some(_) => out.send(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
                None => out.send(b"*0\r\n"),
            },
            "select" if arity(2, out) => match arg(1).and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if n < 16 => out.send(b"+OK\r\n"),
                Some(_) => out.send(b"-ERR DB index is out of range\r\n"),
                None => out.send(b"-ERR value is not an integer or out of range\r\n"),
            },
            "config" if arity(2, out) => match arg(1).map(str::to_ascii_lowercase).as_deref() {
                Some("get") if arity(3, out) => {
                    let pattern = arg(2).unwrap_or_default().as_bytes().to_vec();
                    let flat: Vec<String> = CONFIG
                        .iter()
                        .filter(|(k, _)| pattern.len() <= MAX_KEY && glob::glob(&pattern, k.as_bytes()))
                        .flat_map(|(k, v)| [(*k).to_owned(), (*v).to_owned()])
                        .collect();
                    array(out, &flat);
                }
                Some("set") if arity(4, out) => out.send(b"+OK\r\n"),
                Some("resetstat" | "rewrite") => out.send(b"+OK\r\n"),
                Some(_) => out.send(format!("-ERR unknown subcommand '{}'. Try CONFIG HELP.\r\n", arg(1).unwrap_or_default()).as_bytes()),
                None => {}
            },
            "save" | "flushall" | "flushdb" => out.send(b"+OK\r\n"),
            "bgsave" => out.send(b"+Background saving started\r\n"),
            "slaveof" | "replicaof" if arity(3, out) => out.send(b"+OK\r\n"),
            "module" => out.send(b"-ERR Error loading the extension. Please check the server logs.\r\n"),
            "eval" if arity(3, out) => out.send(b"$-1\r\n"),
            "evalsha" if arity(3, out) => out.send(b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
            "client" => match arg(1).map(str::to_ascii_lowercase).as_deref() {
                Some("list") => {
                    let line = format!("id=12 addr={} laddr=0.0.0.0:6379 fd=8 name= age=0 idle=0 flags=N db=0 cmd=client|list\n", self.peer);
                    bulk(out, &line);
                }
                Some("id") => out.send(b":12\r\n"),
                Some("getname") => out.send(b"$-1\r\n"),
                _ => out.send(b"+OK\r\n"),
            },
            "command" => match arg(1).map(str::to_ascii_lowercase).as_deref() {
                Some("count") => out.send(b":240\r\n"),
                _ => out.send(b"*0\r\n"),
            },
            "quit" => {
                out.send(b"+OK\r\n");
                out.close();
            }
            "echo" | "auth" | "keys" | "scan" | "get" | "set" | "exists" | "del" | "unlink" | "type" | "ttl"
            | "pttl" | "hgetall" | "lrange" | "select" | "config" | "slaveof" | "replicaof" | "eval" | "evalsha" => {
                // arity error already sent
            }
            _ => {
                let mut msg = format!("-ERR unknown command '{}', with args beginning with: ", text[0].chars().take(128).collect::<String>());
                for a in text.iter().skip(1).take(8) {
                    msg.push_str(&format!("'{}' ", a.chars().take(128).collect::<String>()));
                }
                msg.push_str("\r\n");
                out.send(msg.as_bytes());
            }
        }
    }
}

impl Session for RedisSession {
    fn start(&mut self, _step: &mut Step) {}

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.wait.is_some_and(|w| !w.met(data, self.buf.len())) {
            return;
        }
        self.wait = None;
        // Commands are cut from the front once, after the loop: cutting each as it was read
        // moved the rest of a pipelined burst once per command.
        let mut at = 0;
        loop {
            #[cfg(test)]
            {
                self.parses += 1;
            }
            match parse(&self.buf[at..]) {
                Parse::Incomplete(wait) => {
                    self.wait = Some(wait);
                    break;
                }
                Parse::Command(args, used) => {
                    at += used;
                    self.execute(&args, step);
                    if step.close {
                        self.closed = true;
                        break;
                    }
                }
                Parse::Error(what) => {
                    step.send(format!("-ERR Protocol error: {what}\r\n").as_bytes());
                    step.event("protocol_error", Severity::Notice, &[("error", what)]);
                    step.close();
                    self.closed = true;
                    self.buf.clear();
                    return;
                }
            }
        }
        self.buf.drain(..at);
    }
}

#[cfg(test)]
mod tests;
