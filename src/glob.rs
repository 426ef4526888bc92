//! Repository globs, as `[[policy]]` and `[[auth.access]]` write them: pure matching of a glob
//! against a GUN (`<upstream name>/<repository>`).
//!
//! `*` matches any (possibly empty) run of characters, `/` included, so `docker.io/library/*`
//! covers every official image and `*` covers everything; every other character matches
//! itself. There is no escaping: `*` cannot appear in a repository name (OCI
//! distribution-spec, "Pulling manifests": `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), so nothing is
//! lost.

/// Whether `glob` matches the whole of `name`.
pub fn matches(glob: &str, name: &str) -> bool {
    let mut parts = glob.split('*');
    // `split` always yields at least one part.
    let first = parts.next().unwrap_or_default();
    let Some(rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*`: an exact name.
        return rest.is_empty();
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    // Leftmost match of each middle part leaves the most room for the next ones.
    for part in middle {
        match rest.find(part) {
            Some(pos) => rest = &rest[pos + part.len()..],
            None => return false,
        }
    }
    true
}

/// How specific a glob is, for "the most specific match wins": an exact name ranks above every
/// glob, globs rank by their count of literal characters.
pub fn specificity(glob: &str) -> usize {
    if glob.contains('*') {
        glob.chars().filter(|c| *c != '*').count()
    } else {
        usize::MAX
    }
}

/// Why `glob` cannot be a repository glob, if it cannot: empty, or holding white space (which
/// no repository name has, so such a glob could never match and is surely a typo).
pub fn problem(glob: &str) -> Option<String> {
    (glob.is_empty() || glob.contains(char::is_whitespace))
        .then(|| format!("{glob:?} is not a repository glob such as docker.io/library/*"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(matches("docker.io/library/*", "docker.io/library/alpine"));
        assert!(matches(
            "127.0.0.1:5101/team/*",
            "127.0.0.1:5101/team/sub/app"
        ));
        assert!(!matches(
            "127.0.0.1:5101/team/*",
            "127.0.0.1:5101/other/app"
        ));
        assert!(matches("*", "anything/at/all"));
        assert!(matches("*", ""));
        assert!(matches("a/*/c", "a/b/c"));
        assert!(matches("a/*/c", "a//c"));
        assert!(!matches("a/*/c", "a/b/d"));
        assert!(matches("exact/name", "exact/name"));
        assert!(!matches("exact/name", "exact/name2"));
        assert!(!matches("exact/name", "exact/nam"));
        // Prefix and suffix must not overlap.
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("ab*ba", "abba"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxcyyb"));
        assert!(matches("**", "x"));
    }

    #[test]
    fn specificity_ranks_exact_names_first() {
        assert_eq!(specificity("docker.io/library/alpine"), usize::MAX);
        assert!(specificity("docker.io/library/*") > specificity("docker.io/*"));
        assert_eq!(specificity("*"), 0);
    }

    #[test]
    fn empty_and_spaced_globs_are_problems() {
        assert!(problem("docker.io/library/*").is_none());
        assert!(problem("*").is_none());
        assert!(problem("").is_some());
        assert_eq!(
            problem("docker.io/ library").as_deref(),
            Some("\"docker.io/ library\" is not a repository glob such as docker.io/library/*")
        );
    }

    /// A straightforward backtracking matcher, as the reference the fast one must agree with.
    fn reference(glob: &[u8], name: &[u8]) -> bool {
        match glob.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((c, rest)) => name.first() == Some(c) && reference(rest, &name[1..]),
        }
    }

    proptest! {
        #[test]
        fn a_glob_made_from_the_name_matches_it(name in "[a-z/.:0-9]{0,30}", cut in 0usize..30) {
            let cut = cut.min(name.len());
            let glob = format!("{}*", &name[..cut]);
            prop_assert!(matches(&glob, &name));
            prop_assert!(matches(&name, &name));
            let glob = format!("*{}", &name[cut..]);
            prop_assert!(matches(&glob, &name));
        }

        #[test]
        fn agrees_with_the_reference_matcher(glob in "[ab/*]{0,8}", name in "[ab/]{0,10}") {
            prop_assert_eq!(matches(&glob, &name), reference(glob.as_bytes(), name.as_bytes()));
        }
    }
}
