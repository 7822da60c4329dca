//! Glob matching for the patterns clients send (Redis `KEYS`/`SCAN MATCH`, FTP `LIST`/`NLST`
//! filters).
//!
//! Iterative, in O(pattern × text) time and constant space: the pattern is the attacker's, and
//! backtracking by recursion takes exponential time on patterns like `*a*a*a…b` (a fuzz target
//! found one that ran the Redis decoy for minutes) and a stack frame per byte.

/// Whether `text` matches `pattern`, where `*` matches any run of bytes, `?` any one byte and
/// every other byte itself.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After a `*`: where the pattern resumes, and the text position the star now extends to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&want) if want == b'?' || want == c => {
                p += 1;
                t += 1;
            }
            // A mismatch: let the last star swallow one more byte and retry from there (an
            // earlier star never needs to: the last one can absorb whatever it would).
            _ => match star {
                Some((resume, upto)) => {
                    star = Some((resume, upto + 1));
                    p = resume;
                    t = upto + 1;
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::glob;

    #[test]
    fn globs() {
        assert!(glob(b"*.sql", b"db_dump.sql"));
        assert!(glob(b"c?edentials*", b"credentials.txt"));
        assert!(!glob(b"*.gz", b"config.ini"));
        assert!(glob(b"*a*b", b"xxaxxb"));
        assert!(glob(b"", b"") && glob(b"**", b"") && !glob(b"?", b""));
        assert!(!glob(
            &[b'*'; 64].iter().chain(b"x").copied().collect::<Vec<_>>(),
            &[b'a'; 64]
        ));
    }

    /// The recursive matcher `glob` replaced: the specification, exponential on some patterns.
    fn glob_by_recursion(pattern: &[u8], text: &[u8]) -> bool {
        match (pattern.first(), text.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                glob_by_recursion(&pattern[1..], text)
                    || (!text.is_empty() && glob_by_recursion(pattern, &text[1..]))
            }
            (Some(b'?'), Some(_)) => glob_by_recursion(&pattern[1..], &text[1..]),
            (Some(p), Some(t)) if p == t => glob_by_recursion(&pattern[1..], &text[1..]),
            _ => false,
        }
    }

    proptest! {
        /// Small alphabets, so stars, wildcards and repeats interact.
        #[test]
        fn glob_matches_as_the_recursive_definition(
            pattern in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'?'), Just(b'a'), Just(b'b')], 0..10),
            text in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..12),
        ) {
            prop_assert_eq!(glob(&pattern, &text), glob_by_recursion(&pattern, &text));
        }
    }

    #[test]
    fn glob_takes_polynomial_time_on_backtracking_patterns() {
        // Tens of millions of paths for the recursive matcher (about 5 s in a debug build, see the
        // ignored test below; minutes a few bytes longer); a few hundred steps now.
        let pattern = "*a".repeat(11) + "b";
        let text = "a".repeat(31);
        let started = std::time::Instant::now();
        assert!(!glob(pattern.as_bytes(), text.as_bytes()));
        assert!(glob(b"*a*b", b"xxaxxb"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    #[ignore = "shows what the pattern above costs the recursive matcher: seconds"]
    fn glob_by_recursion_is_exponential() {
        let pattern = "*a".repeat(11) + "b";
        let started = std::time::Instant::now();
        assert!(!glob_by_recursion(
            pattern.as_bytes(),
            "a".repeat(31).as_bytes()
        ));
        eprintln!("recursive matcher: {:?}", started.elapsed());
    }
}
