//! SEARCH criteria (RFC 3501 §6.4.4) evaluated over a folder's messages.

use super::{
    fetch::{ANSWERED, DELETED, DRAFT, FLAGGED, Msg, SEEN, sequence_set},
    syntax::Arg,
};
use crate::protocols::mailbox::Mail;

/// One parsed search key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    All,
    None,
    Flag(u8, bool),
    Header(String, String),
    Body(String),
    Text(String),
    Larger(usize),
    Smaller(usize),
    /// Internal date (day precision) against a day number: before, on, since.
    Date(std::cmp::Ordering, bool, i64),
    Set(Vec<usize>),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Days since 1970-01-01 of `d-Mon-yyyy` (H. Hinnant's algorithm).
fn day_number(date: &str) -> Option<i64> {
    let mut it = date.trim_matches('"').split('-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    let d: i64 = d.parse().ok().filter(|d| (1..=31).contains(d))?;
    let m = i64::try_from(MONTHS.iter().position(|x| x.eq_ignore_ascii_case(m))?).ok()? + 1;
    let y: i64 = y.parse().ok().filter(|y| (1..=9999).contains(y))?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

struct Parser<'a> {
    args: &'a [Arg],
    pos: usize,
    msgs: &'a [Msg],
}

impl Parser<'_> {
    fn next_arg(&mut self) -> Result<&Arg, String> {
        let a = self.args.get(self.pos).ok_or("Missing argument")?;
        self.pos += 1;
        Ok(a)
    }

    fn string(&mut self) -> Result<String, String> {
        self.next_arg()?
            .astring()
            .ok_or_else(|| "Invalid search string".to_owned())
    }

    fn number(&mut self) -> Result<usize, String> {
        self.string()?
            .parse()
            .map_err(|_| "Invalid search number".to_owned())
    }

    fn date(&mut self) -> Result<i64, String> {
        let s = self.string()?;
        day_number(&s).ok_or_else(|| format!("Invalid search date parameter: {s}"))
    }

    fn key(&mut self, depth: usize) -> Result<Key, String> {
        if depth > 32 {
            return Err("Too deep search nesting".into());
        }
        let arg = self.next_arg()?.clone();
        let name = match &arg {
            Arg::List(list) => {
                let mut inner = Parser {
                    args: list,
                    pos: 0,
                    msgs: self.msgs,
                };
                let mut keys = Vec::new();
                while inner.pos < list.len() {
                    keys.push(inner.key(depth + 1)?);
                }
                return Ok(Key::And(keys));
            }
            Arg::Atom(a) => a.to_ascii_uppercase(),
            Arg::Str(_) => return Err("Invalid search key".into()),
        };
        let flag = |bit, set| Ok(Key::Flag(bit, set));
        match name.as_str() {
            "ALL" => Ok(Key::All),
            "SEEN" => flag(SEEN, true),
            "UNSEEN" => flag(SEEN, false),
            "ANSWERED" => flag(ANSWERED, true),
            "UNANSWERED" => flag(ANSWERED, false),
            "DELETED" => flag(DELETED, true),
            "UNDELETED" => flag(DELETED, false),
            "FLAGGED" => flag(FLAGGED, true),
            "UNFLAGGED" => flag(FLAGGED, false),
            "DRAFT" => flag(DRAFT, true),
            "UNDRAFT" => flag(DRAFT, false),
            // Nothing is \Recent to a second session, as on a real server.
            "NEW" | "RECENT" => Ok(Key::None),
            "OLD" => Ok(Key::All),
            "KEYWORD" => {
                self.string()?;
                Ok(Key::None)
            }
            "UNKEYWORD" => {
                self.string()?;
                Ok(Key::All)
            }
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => Ok(Key::Header(name, self.string()?)),
            "HEADER" => {
                let field = self.string()?.to_ascii_uppercase();
                Ok(Key::Header(field, self.string()?))
            }
            "BODY" => Ok(Key::Body(self.string()?)),
            "TEXT" => Ok(Key::Text(self.string()?)),
            "LARGER" => Ok(Key::Larger(self.number()?)),
            "SMALLER" => Ok(Key::Smaller(self.number()?)),
            "BEFORE" | "SENTBEFORE" => Ok(Key::Date(std::cmp::Ordering::Less, false, self.date()?)),
            "ON" | "SENTON" => Ok(Key::Date(std::cmp::Ordering::Equal, false, self.date()?)),
            "SINCE" | "SENTSINCE" => Ok(Key::Date(std::cmp::Ordering::Greater, true, self.date()?)),
            "UID" => {
                let set = self.string()?;
                sequence_set(&set, self.msgs, true)
                    .map(Key::Set)
                    .ok_or_else(|| "Invalid uidset".to_owned())
            }
            "NOT" => Ok(Key::Not(Box::new(self.key(depth + 1)?))),
            "OR" => {
                let a = self.key(depth + 1)?;
                Ok(Key::Or(Box::new(a), Box::new(self.key(depth + 1)?)))
            }
            _ if name.starts_with(|c: char| c.is_ascii_digit() || c == '*') => {
                sequence_set(&name, self.msgs, false)
                    .map(Key::Set)
                    .ok_or_else(|| "Invalid messageset".to_owned())
            }
            _ => Err(format!("Unknown argument {name}")),
        }
    }
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn matches(key: &Key, i: usize, msg: &Msg, mail: &Mail) -> bool {
    match key {
        Key::All => true,
        Key::None => false,
        Key::Flag(bit, set) => (msg.flags & bit != 0) == *set,
        Key::Header(field, text) => mail
            .header()
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .any(|(k, v)| k.eq_ignore_ascii_case(field) && contains(v, text)),
        Key::Body(text) => contains(mail.body(), text),
        Key::Text(text) => contains(&mail.raw, text),
        Key::Larger(n) => mail.size() > *n,
        Key::Smaller(n) => mail.size() < *n,
        Key::Date(ord, or_equal, day) => {
            let d = mail.date.div_euclid(86_400);
            d.cmp(day) == *ord || (*or_equal && d == *day)
        }
        Key::Set(set) => set.contains(&i),
        Key::Not(k) => !matches(k, i, msg, mail),
        Key::Or(a, b) => matches(a, i, msg, mail) || matches(b, i, msg, mail),
        Key::And(keys) => keys.iter().all(|k| matches(k, i, msg, mail)),
    }
}

/// Indexes into `msgs` matching the criteria in `args`.
pub fn search(args: &[Arg], msgs: &[Msg], mails: &[Mail]) -> Result<Vec<usize>, String> {
    let mut args = args;
    if args
        .first()
        .and_then(Arg::atom)
        .is_some_and(|a| a.eq_ignore_ascii_case("CHARSET"))
    {
        args = args.get(2..).ok_or("Missing argument")?;
    }
    if args.is_empty() {
        return Err("Missing search parameters".into());
    }
    let mut p = Parser { args, pos: 0, msgs };
    let mut keys = Vec::new();
    while p.pos < args.len() {
        keys.push(p.key(0)?);
    }
    let all = Key::And(keys);
    Ok(msgs
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            mails
                .get(m.index)
                .is_some_and(|mail| matches(&all, *i, m, mail))
        })
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(day_number("1-Jan-1970"), Some(0));
        assert_eq!(day_number("14-May-2024"), Some(19_857));
        assert_eq!(day_number("\"14-may-2024\""), Some(19_857));
        assert_eq!(day_number("32-May-2024"), None);
    }
}
