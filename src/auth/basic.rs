//! The `Authorization: Basic` header (RFC 7617): pure parsing of network input.

use base64::Engine as _;

/// Credentials as the client sent them. The password is bytes: RFC 7617 leaves its charset to
/// the client, and bcrypt hashes bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password, not even in a test failure.
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why an `Authorization` header gave no credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicError {
    /// Another scheme (`Bearer …`): the client did not answer our Basic challenge.
    OtherScheme,
    /// `Basic` with something that is not base64 of `user:password` in UTF-8 user names.
    Malformed,
}

/// Longest header value looked at; hyper's header limit bounds it anyway.
const MAX_VALUE: usize = 8 * 1024;

/// Parses the value of an `Authorization` header.
pub fn parse(value: &[u8]) -> Result<Credentials, BasicError> {
    if value.len() > MAX_VALUE {
        return Err(BasicError::Malformed);
    }
    let value = std::str::from_utf8(value).map_err(|_| BasicError::Malformed)?;
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    // The scheme is case-insensitive (RFC 7235 §2.1).
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::OtherScheme);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| BasicError::Malformed)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(BasicError::Malformed)?;
    let user = std::str::from_utf8(&decoded[..colon]).map_err(|_| BasicError::Malformed)?;
    if user.is_empty() {
        return Err(BasicError::Malformed);
    }
    Ok(Credentials {
        user: user.to_string(),
        password: decoded[colon + 1..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn user_and_password_are_split_at_the_first_colon() {
        let c = parse(&header("alice:pa:ss")).unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.password, b"pa:ss");
        let c = parse(&header("bob:")).unwrap();
        assert_eq!(c.password, b"");
        // RFC 7617's example, scheme in another case.
        let c = parse(b"basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(
            (c.user.as_str(), &c.password[..]),
            ("Aladdin", &b"open sesame"[..])
        );
    }

    #[test]
    fn other_schemes_and_garbage_give_no_credentials() {
        assert_eq!(parse(b"Bearer abc"), Err(BasicError::OtherScheme));
        assert_eq!(parse(b""), Err(BasicError::OtherScheme));
        assert_eq!(parse(b"Basic"), Err(BasicError::Malformed));
        assert_eq!(parse(b"Basic !!!"), Err(BasicError::Malformed));
        assert_eq!(parse(&header("no-colon")), Err(BasicError::Malformed));
        assert_eq!(parse(&header(":pw")), Err(BasicError::Malformed));
        assert_eq!(parse(&[0xff, 0xfe]), Err(BasicError::Malformed));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = parse(&header("alice:hunter2")).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
            let mut b = b"Basic ".to_vec();
            b.extend_from_slice(&bytes);
            let _ = parse(&b);
        }

        #[test]
        fn round_trips(user in "[^:\\x00]{1,20}", pw in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut raw = user.clone().into_bytes();
            raw.push(b':');
            raw.extend_from_slice(&pw);
            let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&raw));
            let c = parse(v.as_bytes()).unwrap();
            prop_assert_eq!(c.user, user);
            prop_assert_eq!(c.password, pw);
        }
    }
}
