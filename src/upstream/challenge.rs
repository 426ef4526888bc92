//! A pure parser for `WWW-Authenticate` (RFC 9110 §11.6.1; the Bearer parameters of distribution's
//! `registry/auth/token/accesscontroller.go`).
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! Several challenges may share one header, separated by commas, so a comma can end a parameter
//! or a challenge: a token that is *not* followed by `=` starts a new challenge. Quoted strings may
//! contain commas, spaces and `\"` escapes. The parser is lenient (registries are not all
//! RFC-perfect: unquoted values, spaces instead of commas, unterminated quotes) and never panics;
//! what it cannot make sense of it skips. token68 forms (`Negotiate abc==`) are not interpreted.

use std::fmt;

/// The authentication scheme of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer`: the registry token flow.
    Bearer,
    /// `Basic`: send credentials directly to the registry.
    Basic,
    /// Anything else, as written.
    Other(String),
}

impl Scheme {
    fn from_token(t: &str) -> Scheme {
        if t.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if t.eq_ignore_ascii_case("basic") {
            Scheme::Basic
        } else {
            Scheme::Other(t.to_string())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Basic => "Basic",
            Scheme::Other(s) => s,
        }
    }
}

/// One challenge: a scheme and its parameters, in order. Parameter names are lower-cased
/// (they are case-insensitive); values are unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: Scheme,
    pub params: Vec<(String, String)>,
}

/// The parameters of a `Bearer` challenge that the token flow needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BearerChallenge {
    /// Token service URL (required).
    pub realm: String,
    pub service: Option<String>,
    /// Space-separated scopes, as sent.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, … when a presented token was refused.
    pub error: Option<String>,
}

impl Challenge {
    /// The first parameter called `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token-flow view of a `Bearer` challenge; `None` for other schemes or without a
    /// non-empty `realm`.
    pub fn bearer(&self) -> Option<BearerChallenge> {
        if self.scheme != Scheme::Bearer {
            return None;
        }
        let realm = self.param("realm").filter(|r| !r.is_empty())?;
        Some(BearerChallenge {
            realm: realm.to_string(),
            service: self.param("service").map(str::to_string),
            scope: self.param("scope").map(str::to_string),
            error: self.param("error").map(str::to_string),
        })
    }
}

impl fmt::Display for Challenge {
    /// Serialises as `Scheme name="value",…` with `"` and `\` escaped; parsing the output gives
    /// back the same challenge.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme.as_str())?;
        for (i, (k, v)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        self.skip_while(f);
        self.s.get(start..self.pos).unwrap_or("")
    }
    /// After the opening quote: read to the closing quote, honouring `\x` escapes. An
    /// unterminated string takes the rest of the input.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.bump() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(n) = self.bump() {
                        out.push(n);
                    }
                }
                _ => out.push(c),
            }
        }
        out
    }
}

/// Parse one `WWW-Authenticate` header value into its challenges. Never panics; garbage is
/// skipped, parameters before any scheme are dropped.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut current: Option<Challenge> = None;
    let mut cur = Cursor { s: header, pos: 0 };
    loop {
        cur.skip_while(|c| is_ws(c) || c == ',');
        if cur.peek().is_none() {
            break;
        }
        let token = cur.take_while(is_tchar);
        if token.is_empty() {
            // Not a token start (stray quote, '=', control char…): skip it.
            if cur.peek() == Some('"') {
                cur.bump();
                cur.quoted();
            } else {
                cur.bump();
            }
            continue;
        }
        cur.skip_while(is_ws);
        if cur.peek() == Some('=') {
            cur.bump();
            cur.skip_while(is_ws);
            let value = if cur.peek() == Some('"') {
                cur.bump();
                cur.quoted()
            } else {
                cur.take_while(|c| c != ',' && !is_ws(c)).to_string()
            };
            if let Some(ch) = current.as_mut() {
                ch.params.push((token.to_ascii_lowercase(), value));
            }
        } else {
            if let Some(ch) = current.take() {
                out.push(ch);
            }
            current = Some(Challenge {
                scheme: Scheme::from_token(token),
                params: Vec::new(),
            });
        }
    }
    if let Some(ch) = current {
        out.push(ch);
    }
    out
}

/// Parse every `WWW-Authenticate` header of a response, in order.
pub fn parse_all<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    headers.into_iter().flat_map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let c = parse(h);
        assert_eq!(c.len(), 1);
        let b = c[0].bearer().expect("bearer");
        assert_eq!(b.realm, "https://auth.docker.io/token");
        assert_eq!(b.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(b.scope.as_deref(), Some("repository:library/alpine:pull"));
        assert_eq!(b.error, None);
    }

    #[test]
    fn commas_and_spaces_inside_quotes_and_several_scopes() {
        let h = r#"Bearer realm="https://a/token",scope="repository:x/y:pull,push repository:z:pull",error="invalid_token""#;
        let c = parse(h);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].param("scope"),
            Some("repository:x/y:pull,push repository:z:pull")
        );
        assert_eq!(c[0].param("ERROR"), Some("invalid_token"));
    }

    #[test]
    fn escaped_quotes() {
        let c = parse(r#"Basic realm="say \"hi\" \\ bye""#);
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert_eq!(c[0].param("realm"), Some(r#"say "hi" \ bye"#));
    }

    #[test]
    fn several_challenges_unquoted_and_case() {
        let c = parse(r#"Basic realm="r1", BEARER Realm=https://t/x , service = svc, Negotiate"#);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].scheme, Scheme::Basic);
        assert_eq!(c[0].param("realm"), Some("r1"));
        assert_eq!(c[1].scheme, Scheme::Bearer);
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("svc"));
        assert_eq!(c[2].scheme, Scheme::Other("Negotiate".into()));
        let all = parse_all(["Basic realm=\"a\"", "Bearer realm=\"b\""]);
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn garbage_and_edge_cases() {
        assert!(parse("").is_empty());
        assert!(parse(" , ,").is_empty());
        assert!(parse("=\"x\" realm=y").is_empty());
        let c = parse("Bearer realm=\"unterminated, scope=x");
        assert_eq!(c[0].param("realm"), Some("unterminated, scope=x"));
        assert!(c[0].bearer().is_some());
        assert!(parse("Bearer service=x")[0].bearer().is_none());
        assert!(parse("Bearer realm=\"\"")[0].bearer().is_none());
        // Space-separated parameters (non-standard) still parse.
        let c = parse("Bearer realm=a service=b");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("service"), Some("b"));
        // Non-ASCII never panics.
        let _ = parse("Bearer réalm=\"é\", ü=\"\\");
    }

    fn scheme_strategy() -> impl Strategy<Value = Scheme> {
        prop_oneof![
            Just(Scheme::Bearer),
            Just(Scheme::Basic),
            "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,10}".prop_map(|s| Scheme::from_token(&s)),
        ]
    }

    fn challenge_strategy() -> impl Strategy<Value = Challenge> {
        (
            scheme_strategy(),
            prop::collection::vec(
                ("[a-z][a-z0-9_-]{0,8}", any::<String>().prop_map(|s| s)),
                0..5,
            ),
        )
            .prop_map(|(scheme, params)| Challenge { scheme, params })
    }

    proptest! {
        #[test]
        fn round_trip(chs in prop::collection::vec(challenge_strategy(), 1..4)) {
            let header = chs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
            prop_assert_eq!(parse(&header), chs);
        }

        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_challenge_like_input(s in r#"[A-Za-z ,="\\:/._-]{0,80}"#) {
            for c in parse(&s) {
                let _ = c.bearer();
            }
        }
    }
}
