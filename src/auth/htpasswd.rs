//! The htpasswd file: pure parsing, no I/O.
//!
//! One `user:hash` entry per line, as `htpasswd -B` writes them. Only bcrypt hashes (`$2y$`,
//! `$2b$`, `$2a$`) are accepted: Apache's other formats (MD5 `$apr1$`, `{SHA}`, DES crypt, plain
//! text) are fast to brute-force or not hashes at all, so a file holding one is refused at load
//! with its line, instead of silently never matching. Blank lines and lines starting with `#` are
//! skipped (distribution's htpasswd reader does the same); `\r\n` endings are accepted.

use std::collections::HashMap;
use std::str::FromStr;

/// What is wrong with one line of the file. The hash itself is never quoted: it is a secret too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

/// A parsed htpasswd file: user name → bcrypt hash.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    hash: String,
    cost: u32,
}

impl Htpasswd {
    /// Parses the text of a file. The first bad line is the error.
    pub fn parse(text: &str) -> Result<Self, LineError> {
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut lines_of: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |problem: String| LineError { line, problem };
            let l = raw.trim_end_matches('\r');
            let trimmed = l.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = l.split_once(':') else {
                return Err(err(
                    "not a user:hash entry (create entries with htpasswd -B FILE USER)".into(),
                ));
            };
            if user.is_empty() {
                return Err(err("the user name is empty".into()));
            }
            if user.trim() != user || user.chars().any(char::is_control) {
                return Err(err(format!(
                    "user {user:?}: the name has surrounding spaces or control characters"
                )));
            }
            let hash = hash.trim_end();
            let cost = bcrypt_cost(hash).map_err(|why| err(format!("user {user:?}: {why}")))?;
            if let Some(first) = lines_of.get(user) {
                return Err(err(format!(
                    "user {user:?} is already defined on line {first}"
                )));
            }
            lines_of.insert(user.to_string(), line);
            entries.insert(
                user.to_string(),
                Entry {
                    hash: hash.to_string(),
                    cost,
                },
            );
        }
        Ok(Self { entries })
    }

    /// The bcrypt hash of `user`.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.entries.get(user).map(|e| e.hash.as_str())
    }

    /// The user names, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.entries.contains_key(user)
    }

    /// The cost most entries use (the higher one on a tie), so that checking a password against
    /// a made-up hash for an unknown user takes as long as checking a real one.
    pub fn typical_cost(&self) -> Option<u32> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for e in self.entries.values() {
            *counts.entry(e.cost).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(cost, n)| (*n, *cost))
            .map(|(cost, _)| cost)
    }
}

/// The cost of a bcrypt hash in one of the variants `htpasswd -B` and bcrypt libraries write, or
/// why the entry is not one (naming the format it looks like, so the operator knows what to fix).
pub fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    const REDO: &str = "only bcrypt entries are accepted; recreate it with htpasswd -B";
    let other = |what: &str| Err(format!("{what} entry; {REDO}"));
    if hash.is_empty() {
        return Err(format!("has no password hash; {REDO}"));
    }
    if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        let parts = bcrypt::HashParts::from_str(hash)
            .map_err(|e| format!("malformed bcrypt hash ({e}); {REDO}"))?;
        let cost = parts.get_cost();
        // The range bcrypt defines; the crate would refuse these at verification time only.
        if !(4..=31).contains(&cost) {
            return Err(format!("bcrypt cost {cost} is outside 4..31; {REDO}"));
        }
        return Ok(cost);
    }
    if hash.starts_with("$2x$") {
        // `$2x$` marks hashes made by the buggy pre-2011 crypt_blowfish; its results differ for
        // passwords with 8-bit characters.
        return other("bcrypt $2x$ (the buggy crypt_blowfish variant)");
    }
    if hash.starts_with("$apr1$") {
        return other("MD5 ($apr1$, htpasswd -m)");
    }
    if hash.starts_with("{SHA}") {
        return other("SHA-1 ({SHA}, htpasswd -s)");
    }
    if hash.starts_with("$1$") {
        return other("MD5-crypt ($1$)");
    }
    if hash.starts_with("$5$") {
        return other("SHA-256-crypt ($5$)");
    }
    if hash.starts_with("$6$") {
        return other("SHA-512-crypt ($6$)");
    }
    if hash.starts_with("$y$") || hash.starts_with("$7$") {
        return other("yescrypt/scrypt");
    }
    if hash.starts_with("$argon2") {
        return other("Argon2");
    }
    if hash.len() == 13
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return other("DES crypt (htpasswd -d)");
    }
    other("plain-text or unknown-format (htpasswd -p)")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Made with `htpasswd -nbB -C 4 alice alice-pw` (Apache 2.4).
    pub(crate) const ALICE: &str =
        "alice:$2y$04$xhFpuB1l54acMlpkV.xFqORVpj/6YHoYQMa/5FhqHN2tqp4TxXVh2";

    fn entry(user: &str, pw: &str, cost: u32, prefix: &str) -> String {
        let h = bcrypt::hash(pw, cost).expect("hash");
        format!("{user}:{prefix}{}", &h[3..])
    }

    #[test]
    fn bcrypt_variants_comments_and_blank_lines_are_accepted() {
        let text = format!(
            "# trustgate users\n\n{}\r\n   \n{}\n{}\n  # indented comment\n",
            entry("a", "pa", 4, "$2y"),
            entry("b", "pb", 5, "$2b"),
            entry("c", "pc", 5, "$2a"),
        );
        let h = Htpasswd::parse(&text).expect("parses");
        assert_eq!(h.len(), 3);
        assert!(h.hash_of("a").is_some_and(|x| x.starts_with("$2y$04$")));
        assert!(h.hash_of("b").is_some_and(|x| x.starts_with("$2b$05$")));
        assert!(h.hash_of("c").is_some_and(|x| !x.ends_with('\r')));
        assert!(h.hash_of("d").is_none());
        assert_eq!(h.typical_cost(), Some(5));
    }

    #[test]
    fn an_entry_from_the_htpasswd_tool_parses_and_verifies() {
        let h = Htpasswd::parse(ALICE).expect("parses");
        assert_eq!(h.typical_cost(), Some(4));
        let hash = h.hash_of("alice").unwrap();
        assert!(bcrypt::verify("alice-pw", hash).unwrap());
        assert!(!bcrypt::verify("alice-pW", hash).unwrap());
    }

    #[test]
    fn other_formats_are_refused_with_their_line_and_name() {
        let good = entry("ok", "pw", 4, "$2y");
        let cases = [
            // htpasswd -nbm / -nbs / -nbd / -nbp bob x
            ("bob:$apr1$6/pqEV72$z/gHYk8zeqeBiK3/mOJb10", "MD5 ($apr1$"),
            ("bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=", "SHA-1"),
            ("bob:bIYIj8AOFo.dE", "DES crypt"),
            ("bob:secret", "plain-text"),
            ("bob:", "has no password hash"),
            ("bob:$1$abc$defghijklmnopqrstuvwxy", "MD5-crypt"),
            ("bob:$6$salt$hash", "SHA-512-crypt"),
            (
                "bob:$2x$04$7Qz3W1qD0aJx8y1m5bqzcO0m4bQf5b8GkXH2v4fRzq1pM2lJ8zB6K",
                "$2x$",
            ),
            ("bob:$2y$04$tooshort", "malformed bcrypt hash"),
            (
                "bob:$2y$99$7Qz3W1qD0aJx8y1m5bqzcO0m4bQf5b8GkXH2v4fRzq1pM2lJ8zB6K",
                "cost 99",
            ),
            ("just-a-name", "not a user:hash entry"),
            (
                ":$2y$04$7Qz3W1qD0aJx8y1m5bqzcO0m4bQf5b8GkXH2v4fRzq1pM2lJ8zB6K",
                "user name is empty",
            ),
        ];
        for (bad, want) in cases {
            let text = format!("# users\n{good}\n\n{bad}\n");
            let e = Htpasswd::parse(&text).expect_err(bad);
            assert_eq!(e.line, 4, "{bad}: {e}");
            assert!(e.problem.contains(want), "{bad}: {e}");
            if bad.contains(':') && !bad.starts_with(':') {
                assert!(e.problem.contains("\"bob\""), "names the user: {e}");
            }
            // The secret part of the line never appears in the message.
            if let Some((_, secret)) = bad.split_once(':') {
                if secret.len() > 4 {
                    assert!(!e.to_string().contains(secret), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_user_defined_twice_is_refused() {
        let text = format!(
            "{}\n{}\n",
            entry("a", "1", 4, "$2y"),
            entry("a", "2", 4, "$2y")
        );
        let e = Htpasswd::parse(&text).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("already defined on line 1"), "{e}");
    }

    #[test]
    fn an_empty_file_parses_to_no_users() {
        let h = Htpasswd::parse("# nobody yet\n\n").unwrap();
        assert!(h.is_empty());
        assert_eq!(h.typical_cost(), None);
    }
}
