//! The commands that look at or change the tree: CWD, LIST's listing, MKD, RMD, DELE,
//! RNFR/RNTO, SITE and MDTM, with vsftpd's replies and its anonymous-user restrictions.

use super::{
    FTP_GID, FTP_UID, FtpSession, USER_UID, fs,
    fs::{Node, resolve},
    quote,
};
use crate::session::Step;

impl FtpSession {
    pub(super) fn cwd(&mut self, arg: &str, step: &mut Step) {
        match resolve(&self.cwd, arg) {
            Some(path) if self.tree.is_dir(&path) => {
                self.cwd = path;
                Self::reply(step, 250, "Directory successfully changed.");
            }
            _ => Self::reply(step, 550, "Failed to change directory."),
        }
    }

    pub(super) fn file(&self, arg: &str) -> Option<&Node> {
        let path = resolve(&self.cwd, arg)?;
        self.tree.get(&path).filter(|n| !n.dir)
    }

    /// vsftpd's `handle_dir_common`: options first (`-la`), then a directory or a filter.
    pub(super) fn listing(&self, arg: &str, full: bool, stat: bool) -> (Vec<u8>, bool) {
        let (mut options, mut filter) = match arg.strip_prefix('-') {
            Some(rest) => {
                let (o, f) = rest.split_once(' ').unwrap_or((rest, ""));
                (o.to_owned(), f.to_owned())
            }
            None => (String::new(), arg.to_owned()),
        };
        let mut dir_name = ".".to_owned();
        if !filter.is_empty() {
            if resolve(&self.cwd, &filter).is_some_and(|p| self.tree.is_dir(&p)) {
                dir_name = std::mem::take(&mut filter);
            } else if let Some((dir, rest)) = filter.rsplit_once('/') {
                dir_name = if dir.is_empty() { "/" } else { dir }.to_owned();
                filter = rest.to_owned();
            }
        }
        if stat {
            options.push('a');
        }
        let all = options.contains('a') || filter.starts_with('.');
        let verbose = full || options.contains('l');
        let dir_path = resolve(&self.cwd, &dir_name).unwrap_or_default();
        let Some(dir_node) = self.tree.get(&dir_path).filter(|n| n.dir) else {
            return (Vec::new(), false);
        };
        let mut entries: Vec<(&str, &Node)> = self.tree.children(&dir_path).collect();
        if all {
            let up = self.tree.get(fs::parent(&dir_path)).unwrap_or(dir_node);
            entries.push((".", dir_node));
            entries.push(("..", up));
        }
        // Names are at most `MAX_NAME` bytes: a longer filter (which costs its length times
        // each name's to match) is matched against none of them.
        let filter_fits = filter.len() <= 2 * fs::MAX_NAME;
        entries.retain(|(name, _)| {
            (all || !name.starts_with('.'))
                && (filter.is_empty()
                    || (filter_fits
                        && crate::protocols::glob::glob(filter.as_bytes(), name.as_bytes())))
        });
        if options.contains('t') {
            entries.sort_by(|a, b| b.1.mtime.cmp(&a.1.mtime).then(a.0.cmp(b.0)));
        } else {
            entries.sort_by(|a, b| a.0.cmp(b.0));
        }
        if options.contains('r') {
            entries.reverse();
        }
        let base = match dir_name.as_str() {
            "." => String::new(),
            d if d.ends_with('/') => d.to_owned(),
            d => format!("{d}/"),
        };
        let mut out = String::new();
        for (name, node) in entries {
            if verbose {
                out.push_str(&fs::ls_line(name, node, self.now));
            } else {
                out.push_str(&format!("{base}{name}\r\n"));
            }
        }
        (out.into_bytes(), true)
    }

    pub(super) fn mkd(&mut self, arg: &str, step: &mut Step) {
        let anonymous = self.anonymous();
        let node = Node::dir(
            self.now,
            if anonymous {
                "drwx------"
            } else {
                "drwxr-xr-x"
            },
            if anonymous { FTP_UID } else { USER_UID },
            if anonymous { FTP_GID } else { USER_UID },
            true,
        );
        let made = resolve(&self.cwd, arg).is_some_and(|p| self.tree.insert(&p, node));
        if !made {
            Self::reply(step, 550, "Create directory operation failed.");
            return;
        }
        let shown = if arg.starts_with('/') {
            arg.to_owned()
        } else if self.cwd.ends_with('/') {
            format!("{}{arg}", self.cwd)
        } else {
            format!("{}/{arg}", self.cwd)
        };
        Self::reply(step, 257, &format!("\"{}\" created", quote(&shown)));
    }

    fn owned(&self, arg: &str, dir: bool) -> Option<String> {
        let path = resolve(&self.cwd, arg)?;
        let node = self.tree.get(&path)?;
        (node.dir == dir && node.ours).then_some(path)
    }

    pub(super) fn rmd(&mut self, arg: &str, step: &mut Step) {
        match self.owned(arg, true) {
            Some(path) if self.tree.remove(&path) => {
                Self::reply(step, 250, "Remove directory operation successful.");
            }
            _ => Self::reply(step, 550, "Remove directory operation failed."),
        }
    }

    pub(super) fn dele(&mut self, arg: &str, step: &mut Step) {
        match self.owned(arg, false) {
            Some(path) if self.tree.remove(&path) => {
                Self::reply(step, 250, "Delete operation successful.");
            }
            _ => Self::reply(step, 550, "Delete operation failed."),
        }
    }

    pub(super) fn rnfr(&mut self, arg: &str, step: &mut Step) {
        self.rnfr = None;
        match resolve(&self.cwd, arg).filter(|p| self.tree.get(p).is_some()) {
            Some(path) => {
                self.rnfr = Some(path);
                Self::reply(step, 350, "Ready for RNTO.");
            }
            None => Self::reply(step, 550, "RNFR command failed."),
        }
    }

    pub(super) fn rnto(&mut self, arg: &str, step: &mut Step) {
        let Some(from) = self.rnfr.take() else {
            Self::reply(step, 503, "RNFR required first.");
            return;
        };
        let ours = self.tree.get(&from).is_some_and(|n| n.ours);
        let renamed =
            ours && resolve(&self.cwd, arg).is_some_and(|to| self.tree.rename(&from, &to));
        if renamed {
            Self::reply(step, 250, "Rename successful.");
        } else {
            Self::reply(step, 550, "Rename failed.");
        }
    }

    pub(super) fn site(arg: &str, step: &mut Step) {
        let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        match sub.to_ascii_uppercase().as_str() {
            "CHMOD" => match rest.split_once(' ') {
                Some((_, file)) if !file.is_empty() => {
                    Self::reply(step, 550, "SITE CHMOD command failed.");
                }
                _ => Self::reply(step, 500, "SITE CHMOD needs 2 arguments."),
            },
            "UMASK" if rest.is_empty() => Self::reply(step, 200, "Your current UMASK is 0022"),
            "UMASK" => {
                let mask = rest
                    .bytes()
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .fold(0u32, |m, d| (m * 8 + u32::from(d - b'0')) & 0o777);
                Self::reply(step, 200, &format!("UMASK set to 0{mask:03o}"));
            }
            "HELP" => Self::reply(step, 214, "CHMOD UMASK HELP"),
            _ => Self::reply(step, 500, "Unknown SITE command."),
        }
    }

    pub(super) fn mdtm(&self, arg: &str, step: &mut Step) {
        match self.file(arg) {
            Some(node) => Self::reply(step, 213, &fs::mdtm(node.mtime)),
            None => Self::reply(step, 550, "Could not get file modification time."),
        }
    }
}
