//! The files an FTP session sees: a small tree per session (shared bait plus what the client
//! made), paths resolved the way a chrooted vsftpd resolves them, and `ls -l` lines in
//! vsftpd's own layout (numeric ids, zero-padded days, GMT).

use std::{collections::BTreeMap, sync::Arc};

/// Entries a session may hold in total (bait included): MKD/STOR floods stay bounded.
pub const MAX_NODES: usize = 256;
/// Longest path and deepest nesting a client can make us resolve.
const MAX_PATH: usize = 1024;
const MAX_DEPTH: usize = 32;
/// Longest name of one path component (Linux's `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Bait, shared by every session of the host.
    Bait(Arc<[u8]>),
    /// An upload small enough to keep for the rest of the session.
    Kept(Vec<u8>),
    /// An upload listed but not kept (too large): reading it fails.
    Dropped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub dir: bool,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    /// `ls -l` permission string, type letter included.
    pub mode: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub body: Body,
    /// Made by this session (so it may delete or rename it).
    pub ours: bool,
}

impl Node {
    pub fn dir(mtime: i64, mode: &'static str, uid: u32, gid: u32, ours: bool) -> Self {
        Self {
            dir: true,
            size: 4096,
            mtime,
            mode,
            uid,
            gid,
            body: Body::Dropped,
            ours,
        }
    }
}

/// A session's tree, keyed by absolute normalised path (`/`, `/a`, `/a/b`).
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new(root: Node) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), root);
        Self { nodes }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.get(path).is_some_and(|n| n.dir)
    }

    /// Add `path` under an existing directory; false when full, orphaned or present.
    pub fn insert(&mut self, path: &str, node: Node) -> bool {
        if self.nodes.len() >= MAX_NODES
            || self.nodes.contains_key(path)
            || !self.is_dir(parent(path))
        {
            return false;
        }
        self.nodes.insert(path.to_owned(), node);
        true
    }

    /// Replace a file's node (an overwrite); false if `path` is missing or a directory.
    pub fn replace(&mut self, path: &str, node: Node) -> bool {
        match self.nodes.get_mut(path) {
            Some(old) if !old.dir => {
                *old = node;
                true
            }
            _ => false,
        }
    }

    /// Remove a file or an empty directory (never the root).
    pub fn remove(&mut self, path: &str) -> bool {
        if path == "/" || self.children(path).next().is_some() {
            return false;
        }
        self.nodes.remove(path).is_some()
    }

    /// Move `from` (and anything below it) to `to`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if from == "/"
            || self.nodes.contains_key(to)
            || !self.is_dir(parent(to))
            || to.starts_with(&format!("{from}/"))
        {
            return false;
        }
        let moved: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| *k == from || k.starts_with(&format!("{from}/")))
            .cloned()
            .collect();
        if moved.is_empty() {
            return false;
        }
        for key in moved {
            if let Some(node) = self.nodes.remove(&key) {
                let new_key = format!("{to}{}", &key[from.len()..]);
                self.nodes.insert(new_key, node);
            }
        }
        true
    }

    /// The entries directly inside directory `dir`, by name.
    pub fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let len = prefix.len();
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter_map(move |(k, v)| {
                let name = k.get(len..)?;
                (!name.is_empty() && !name.contains('/')).then_some((name, v))
            })
    }
}

/// The directory holding `path`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Resolve a client path against `cwd` inside the chroot: `~` is the root, `..` stops there.
/// `None` for paths too long or deep to be anything but an attack on the resolver.
pub fn resolve(cwd: &str, arg: &str) -> Option<String> {
    if arg.len() > MAX_PATH {
        return None;
    }
    let arg = if arg == "~" {
        "/"
    } else {
        arg.strip_prefix("~/").map_or(arg, |_| &arg[1..])
    };
    let joined = if arg.starts_with('/') {
        arg.to_owned()
    } else {
        format!("{cwd}/{arg}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => {
                // Linux's NAME_MAX: longer names are refused as vsftpd's system would.
                if parts.len() >= MAX_DEPTH || p.len() > MAX_NAME {
                    return None;
                }
                parts.push(p);
            }
        }
    }
    Some(format!("/{}", parts.join("/")))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// UTC calendar fields of Unix seconds: (year, month 1-12, day, hour, minute, second).
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = decnet_store::rfc5424::civil_from_days(secs.div_euclid(86_400));
    let field = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        year,
        field(month),
        field(day),
        field(rem / 3600),
        field(rem % 3600 / 60),
        field(rem % 60),
    )
}

/// `ls -l` date column: time of day within half a year, the year otherwise.
fn ls_date(mtime: i64, now: i64) -> String {
    let (year, month, day, hour, minute, _) = civil(mtime);
    let month = MONTHS[(month.clamp(1, 12) - 1) as usize];
    if mtime > now || now - mtime > 60 * 60 * 24 * 182 {
        format!("{month} {day:02}  {year}")
    } else {
        format!("{month} {day:02} {hour:02}:{minute:02}")
    }
}

/// MDTM's `YYYYMMDDHHMMSS`.
pub fn mdtm(mtime: i64) -> String {
    let (year, month, day, hour, minute, second) = civil(mtime);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

/// One `LIST` line as vsftpd writes it.
pub fn ls_line(name: &str, node: &Node, now: i64) -> String {
    let links = if node.dir { 2 } else { 1 };
    format!(
        "{} {links:>4} {:<8} {:<8} {:>8} {} {name}\r\n",
        node.mode,
        node.uid,
        node.gid,
        node.size,
        ls_date(node.mtime, now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Node {
        Node {
            dir: false,
            size,
            mtime: 1_718_000_000,
            mode: "-rw-r--r--",
            uid: 0,
            gid: 0,
            body: Body::Dropped,
            ours: false,
        }
    }

    #[test]
    fn resolves_inside_the_chroot() {
        assert_eq!(resolve("/", "a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(resolve("/pub", "../../..").as_deref(), Some("/"));
        assert_eq!(
            resolve("/pub", "/etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(resolve("/pub", "~").as_deref(), Some("/"));
        assert_eq!(resolve("/pub", "~/x").as_deref(), Some("/x"));
        assert_eq!(resolve("/", &"a/".repeat(100)), None);
    }

    #[test]
    fn ls_lines_match_vsftpd() {
        let now = 1_718_100_000;
        assert_eq!(
            ls_line("db_dump.sql", &file(48_213), now),
            "-rw-r--r--    1 0        0           48213 Jun 10 06:13 db_dump.sql\r\n"
        );
        let old = Node {
            mtime: 1_600_000_000,
            ..file(7)
        };
        assert_eq!(
            ls_line("x", &old, now),
            "-rw-r--r--    1 0        0               7 Sep 13  2020 x\r\n"
        );
        assert_eq!(mdtm(1_718_000_000), "20240610061320");
    }

    #[test]
    fn tree_operations() {
        let mut t = Tree::new(Node::dir(0, "drwxr-xr-x", 0, 0, false));
        assert!(t.insert("/a", Node::dir(0, "drwxr-xr-x", 0, 0, true)));
        assert!(t.insert("/a/f", file(1)));
        assert!(!t.insert("/missing/f", file(1)));
        assert!(!t.remove("/a"), "not empty");
        assert!(t.rename("/a", "/b"));
        assert!(t.get("/b/f").is_some() && t.get("/a/f").is_none());
        let names: Vec<&str> = t.children("/").map(|(n, _)| n).collect();
        assert_eq!(names, ["b"]);
        assert!(t.remove("/b/f") && t.remove("/b"));
    }
}
