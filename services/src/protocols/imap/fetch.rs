//! Message data for FETCH, SEARCH and STORE: sequence sets, fetch items, flags.

use super::syntax::{Arg, nstring, quote};
use crate::protocols::mailbox::{Addr, Mail, imap_date};

pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;
const FLAG_NAMES: &[(u8, &str)] = &[
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (SEEN, "\\Seen"),
    (DRAFT, "\\Draft"),
];

pub fn flags_text(flags: u8) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    format!("({})", names.join(" "))
}

/// The bit of a system flag name; keywords and `\Recent` are accepted and ignored.
pub fn flag_bit(name: &str) -> Option<u8> {
    FLAG_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(b, _)| *b)
        .or_else(|| (!name.starts_with('\\') || name.eq_ignore_ascii_case("\\Recent")).then_some(0))
}

/// A message as a session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg {
    /// Index into the folder's mails.
    pub index: usize,
    pub uid: u32,
    pub flags: u8,
}

/// Resolve a sequence set (`1,3:5,7:*`) against `msgs`: indexes into `msgs`, ascending.
/// `None` if the syntax is wrong or (for sequence numbers) a number is out of range.
pub fn sequence_set(set: &str, msgs: &[Msg], uid: bool) -> Option<Vec<usize>> {
    let max = if uid {
        msgs.last().map_or(0, |m| m.uid)
    } else {
        u32::try_from(msgs.len()).unwrap_or(u32::MAX)
    };
    let number = |s: &str| -> Option<u32> {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        }
    };
    let mut wanted = vec![false; msgs.len()];
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b) = (number(a)?, number(b)?);
        let (lo, hi) = (a.min(b), a.max(b));
        if uid {
            for (i, m) in msgs.iter().enumerate() {
                if (lo..=hi).contains(&m.uid) {
                    wanted[i] = true;
                }
            }
        } else {
            if hi > max {
                return None;
            }
            // `*` of an empty folder is 0: no message, where `0 - 1` once underflowed.
            for seq in lo.max(1)..=hi {
                if let Some(w) = wanted.get_mut(usize::try_from(seq - 1).ok()?) {
                    *w = true;
                }
            }
        }
    }
    Some((0..msgs.len()).filter(|i| wanted[*i]).collect())
}

/// What one FETCH item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    BodyStructure {
        extensible: bool,
    },
    /// `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`.
    Rfc822(Part),
    /// `BODY[...]` / `BODY.PEEK[...]`, with its label and optional `<start.len>`.
    Body {
        part: Part,
        label: String,
        peek: bool,
        partial: Option<(usize, usize)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    All,
    Header,
    Text,
    Fields { names: Vec<String>, not: bool },
}

fn parse_section(section: &str) -> Option<Part> {
    let upper = section.to_ascii_uppercase();
    Some(match upper.as_str() {
        "" => Part::All,
        "HEADER" | "0" | "1.HEADER" | "1.MIME" => Part::Header,
        "TEXT" | "1" | "1.TEXT" => Part::Text,
        _ => {
            let (kind, list) = upper.split_once(' ')?;
            let not = match kind {
                "HEADER.FIELDS" => false,
                "HEADER.FIELDS.NOT" => true,
                _ => return None,
            };
            let names = list
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_whitespace()
                .map(|n| n.trim_matches('"').to_owned())
                .collect();
            Part::Fields { names, not }
        }
    })
}

fn parse_item(name: &str) -> Result<Vec<Item>, String> {
    let upper = name.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "UID" => vec![Item::Uid],
        "FLAGS" => vec![Item::Flags],
        "INTERNALDATE" => vec![Item::InternalDate],
        "RFC822.SIZE" => vec![Item::Size],
        "ENVELOPE" => vec![Item::Envelope],
        "BODYSTRUCTURE" => vec![Item::BodyStructure { extensible: true }],
        "BODY" => vec![Item::BodyStructure { extensible: false }],
        "RFC822" => vec![Item::Rfc822(Part::All)],
        "RFC822.HEADER" => vec![Item::Rfc822(Part::Header)],
        "RFC822.TEXT" => vec![Item::Rfc822(Part::Text)],
        "ALL" => vec![Item::Flags, Item::InternalDate, Item::Size, Item::Envelope],
        "FAST" => vec![Item::Flags, Item::InternalDate, Item::Size],
        "FULL" => vec![
            Item::Flags,
            Item::InternalDate,
            Item::Size,
            Item::Envelope,
            Item::BodyStructure { extensible: false },
        ],
        _ => {
            let (peek, rest) = if let Some(r) = upper.strip_prefix("BODY.PEEK[") {
                (true, r)
            } else if let Some(r) = upper.strip_prefix("BODY[") {
                (false, r)
            } else {
                return Err(format!("Unknown parameter {name}"));
            };
            let close = rest
                .find(']')
                .ok_or_else(|| format!("Invalid BODY[..] parameter: {name}"))?;
            // Keep the client's spelling of the section for the response label.
            let offset = name.len() - rest.len();
            let section = name.get(offset..offset + close).unwrap_or_default();
            let part = parse_section(section)
                .ok_or_else(|| "Invalid BODY[..] parameter: Unknown section name".to_owned())?;
            let partial = match &rest[close + 1..] {
                "" => None,
                p => {
                    let inner = p
                        .strip_prefix('<')
                        .and_then(|p| p.strip_suffix('>'))
                        .ok_or_else(|| "Invalid BODY[..] parameter: Invalid partial".to_owned())?;
                    let (start, len) = inner.split_once('.').unwrap_or((inner, ""));
                    let start = start.parse().map_err(|_| "Invalid partial".to_owned())?;
                    let len = if len.is_empty() {
                        usize::MAX
                    } else {
                        len.parse().map_err(|_| "Invalid partial".to_owned())?
                    };
                    Some((start, len))
                }
            };
            vec![Item::Body {
                label: section.to_ascii_uppercase(),
                part,
                peek,
                partial,
            }]
        }
    })
}

/// Parse the FETCH item argument: one item, a macro, or a parenthesised list.
pub fn parse_items(arg: &Arg) -> Result<Vec<Item>, String> {
    let names: Vec<&Arg> = match arg {
        Arg::List(list) => list.iter().collect(),
        other => vec![other],
    };
    let mut items = Vec::new();
    for a in names {
        let name = a.atom().ok_or_else(|| "Invalid arguments.".to_owned())?;
        items.extend(parse_item(name)?);
    }
    Ok(items)
}

fn address_list(addrs: &[&Addr]) -> String {
    if addrs.is_empty() {
        return "NIL".into();
    }
    let inner: Vec<String> = addrs
        .iter()
        .map(|a| {
            let name = (!a.name.is_empty()).then_some(a.name.as_str());
            format!(
                "({} NIL {} {})",
                nstring(name),
                quote(&a.local),
                quote(&a.host)
            )
        })
        .collect();
    format!("({})", inner.join(""))
}

fn envelope(m: &Mail) -> String {
    let from = address_list(&[&m.from]);
    format!(
        "({} {} {from} {from} {from} {} NIL NIL NIL {})",
        nstring(m.header_value("Date")),
        nstring(Some(&m.subject)),
        address_list(&[&m.to]),
        nstring(Some(&m.message_id))
    )
}

fn select_fields(m: &Mail, names: &[String], not: bool) -> String {
    let mut out = String::new();
    for line in m.header().split_inclusive("\r\n") {
        let Some((key, _)) = line.split_once(':') else {
            continue;
        };
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(key));
        if listed != not {
            out.push_str(line);
        }
    }
    out.push_str("\r\n");
    out
}

fn part_text(m: &Mail, part: &Part) -> String {
    match part {
        Part::All => m.raw.clone(),
        Part::Header => m.header().to_owned(),
        Part::Text => m.body().to_owned(),
        Part::Fields { names, not } => select_fields(m, names, *not),
    }
}

fn literal(data: &str) -> String {
    format!("{{{}}}\r\n{data}", data.len())
}

/// One FETCH item's response text for `m`, and whether it reads the message body.
pub fn render(item: &Item, m: &Mail, msg: &Msg, tz: i64) -> (String, bool) {
    match item {
        Item::Uid => (format!("UID {}", msg.uid), false),
        Item::Flags => (format!("FLAGS {}", flags_text(msg.flags)), false),
        Item::InternalDate => (format!("INTERNALDATE \"{}\"", imap_date(m.date, tz)), false),
        Item::Size => (format!("RFC822.SIZE {}", m.size()), false),
        Item::Envelope => (format!("ENVELOPE {}", envelope(m)), false),
        Item::BodyStructure { extensible } => {
            let base = format!(
                "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" {} {}",
                m.body().len(),
                m.body_lines()
            );
            if *extensible {
                (format!("BODYSTRUCTURE {base} NIL NIL NIL NIL)"), false)
            } else {
                (format!("BODY {base})"), false)
            }
        }
        Item::Rfc822(part) => {
            let name = match part {
                Part::Header => "RFC822.HEADER",
                Part::Text => "RFC822.TEXT",
                _ => "RFC822",
            };
            (
                format!("{name} {}", literal(&part_text(m, part))),
                !matches!(part, Part::Header),
            )
        }
        Item::Body {
            part,
            label,
            peek,
            partial,
        } => {
            let text = part_text(m, part);
            let (origin, data) = match partial {
                Some((start, len)) => {
                    let from = (*start).min(text.len());
                    let to = from.saturating_add(*len).min(text.len());
                    (
                        format!("<{start}>"),
                        text.get(from..to).unwrap_or_default().to_owned(),
                    )
                }
                None => (String::new(), text),
            };
            (format!("BODY[{label}]{origin} {}", literal(&data)), !peek)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<Msg> {
        [5, 7, 8, 12]
            .iter()
            .enumerate()
            .map(|(index, &uid)| Msg {
                index,
                uid,
                flags: 0,
            })
            .collect()
    }

    #[test]
    fn sequence_sets() {
        let m = msgs();
        assert_eq!(sequence_set("1:*", &m, false), Some(vec![0, 1, 2, 3]));
        assert_eq!(sequence_set("2,4", &m, false), Some(vec![1, 3]));
        assert_eq!(sequence_set("*:3", &m, false), Some(vec![2, 3]));
        assert_eq!(sequence_set("5", &m, false), None);
        assert_eq!(sequence_set("x", &m, false), None);
        assert_eq!(sequence_set("7:8", &m, true), Some(vec![1, 2]));
        assert_eq!(sequence_set("100:*", &m, true), Some(vec![3]));
        assert_eq!(sequence_set("1:4", &m, true), Some(vec![]));
        assert_eq!(sequence_set("0", &m, true), None);
        // `*` in an empty folder (it once underflowed, a panic in checked builds).
        assert_eq!(sequence_set("*", &[], false), Some(vec![]));
        assert_eq!(sequence_set("1:*", &[], false), None);
    }

    #[test]
    fn fetch_items() {
        assert_eq!(parse_items(&Arg::Atom("FAST".into())).unwrap().len(), 3);
        let items = parse_items(&Arg::Atom(
            "BODY.PEEK[header.fields (From Subject)]<0.64>".into(),
        ))
        .unwrap();
        assert_eq!(
            items,
            vec![Item::Body {
                part: Part::Fields {
                    names: vec!["FROM".into(), "SUBJECT".into()],
                    not: false
                },
                label: "HEADER.FIELDS (FROM SUBJECT)".into(),
                peek: true,
                partial: Some((0, 64)),
            }]
        );
        assert_eq!(
            parse_items(&Arg::Atom("BOGUS".into())),
            Err("Unknown parameter BOGUS".into())
        );
        assert!(parse_items(&Arg::Atom("BODY[NOPE]".into())).is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(flags_text(SEEN | FLAGGED), "(\\Flagged \\Seen)");
        assert_eq!(flag_bit("\\seen"), Some(SEEN));
        assert_eq!(flag_bit("$Junk"), Some(0));
        assert_eq!(flag_bit("\\Bogus"), None);
    }
}
