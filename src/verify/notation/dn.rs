//! Distinguished names of `x509.subject:` trusted identities, read as notation-go reads them.
//!
//! notation-go (`internal/pkix.ParseDistinguishedName`) parses the DN with go-ldap's RFC 4514
//! parser (`ldap/v3.ParseDN`) and then applies the Notary Project's rules. This module follows
//! both, so an identity that `notation verify` accepts means the same here and one it refuses is
//! refused by `check-config`:
//!
//! - RDNs are separated by `,` (or `;`), attributes of one RDN by `+`;
//! - a backslash escapes the next character (`\,` `\+` `\"` `\\` `\=` `\<` `\>` `\;` `\#` `\ `)
//!   or starts a two-digit hex escape of one byte (`\2C`; bytes may build a UTF-8 character);
//! - spaces around types and values are dropped (an escaped trailing space stays);
//! - unescaped `"`, `<`, `>` and NUL inside a value are errors;
//! - notation refuses `=#` (BER-encoded values), multi-valued RDNs and repeated attributes,
//!   treats `S` as `ST`, compares attribute types as written (so `c=US` is not `C=US`), and needs
//!   non-empty `C`, `ST` and `O`.

/// One identity's attributes, in the order written (types as written, `S` renamed `ST`).
pub fn identity_attributes(dn: &str) -> Result<Vec<(String, String)>, String> {
    if dn.contains("=#") {
        return Err(
            "BER-encoded values (\"=#…\") are not supported, as in notation: write the value as text"
                .into(),
        );
    }
    let mut attributes: Vec<(String, String)> = Vec::new();
    for rdn in parse(dn)? {
        if rdn.len() > 1 {
            let names: Vec<&str> = rdn.iter().map(|(t, _)| t.as_str()).collect();
            return Err(format!(
                "multi-valued RDN ({}) is not supported, as in notation: separate the attributes with ','",
                names.join("+")
            ));
        }
        for (t, v) in rdn {
            // notation: the stateOrProvinceName `S` is an alias of `ST`.
            let t = if t == "S" { "ST".to_string() } else { t };
            if attributes.iter().any(|(seen, _)| *seen == t) {
                return Err(format!(
                    "attribute {t} appears twice: a distinguished name names each attribute once"
                ));
            }
            attributes.push((t, v));
        }
    }
    // The trust-policy specification: an identity names at least C, ST and O.
    for must in ["C", "ST", "O"] {
        if !attributes.iter().any(|(k, v)| k == must && !v.is_empty()) {
            return Err(format!("must name at least C, ST and O (no {must})"));
        }
    }
    Ok(attributes)
}

/// The RDNs of an RFC 4514 string, each a list of (type, value), types and values unescaped.
pub fn parse(dn: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut rdns = Vec::new();
    if dn.trim().is_empty() {
        return Ok(rdns);
    }
    let mut rdn = Vec::new();
    let mut attr_type: Option<String> = None;
    let mut start = 0;
    let mut escaping = false;
    // Every separator is ASCII, so slicing at their byte offsets stays on character boundaries.
    for (i, c) in dn.bytes().enumerate() {
        if escaping {
            escaping = false;
            continue;
        }
        match c {
            b'\\' => escaping = true,
            b'=' if attr_type.is_none() => {
                let t = unescape(&dn[start..i])?;
                if t.is_empty() {
                    return Err(format!(
                        "{:?} has no attribute type before '='",
                        dn[start..].trim()
                    ));
                }
                attr_type = Some(t);
                start = i + 1;
            }
            b',' | b'+' | b';' => {
                let t = attr_type
                    .take()
                    .ok_or_else(|| format!("{:?} is not ATTRIBUTE=value", dn[start..i].trim()))?;
                rdn.push((t, unescape(&dn[start..i])?));
                start = i + 1;
                if c != b'+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            _ => {}
        }
    }
    let t = attr_type.ok_or_else(|| format!("{:?} is not ATTRIBUTE=value", dn[start..].trim()))?;
    rdn.push((t, unescape(&dn[start..])?));
    rdns.push(rdn);
    Ok(rdns)
}

/// Drops the spaces around `raw` (keeping an escaped trailing space) and resolves its escapes.
fn unescape(raw: &str) -> Result<String, String> {
    let lead = raw.len() - raw.trim_start_matches(' ').len();
    let trimmed = raw.trim_matches(' ');
    // A trailing space after an odd number of backslashes was escaped: it belongs to the value.
    let backslashes = trimmed.bytes().rev().take_while(|b| *b == b'\\').count();
    let s = if raw.ends_with(' ') && backslashes % 2 == 1 {
        &raw[lead..lead + trimmed.len() + 1]
    } else {
        trimmed
    };
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                None => return Err(format!("{s:?} ends with a lone backslash")),
                Some(e @ (' ' | '"' | '#' | '+' | ',' | ';' | '<' | '=' | '>' | '\\')) => {
                    out.push(e as u8)
                }
                Some(h) => {
                    let l = chars.next().ok_or_else(|| {
                        format!("{s:?}: \\{h} is neither an escaped special character nor two hex digits")
                    })?;
                    let byte = h
                        .to_digit(16)
                        .zip(l.to_digit(16))
                        .map(|(h, l)| (h * 16 + l) as u8)
                        .ok_or_else(|| {
                            format!("{s:?}: \\{h}{l} is neither an escaped special character nor two hex digits")
                        })?;
                    out.push(byte);
                }
            },
            '"' | ';' | '<' | '>' => {
                return Err(format!("{s:?}: '{c}' must be escaped (\\{c})"));
            }
            '\0' => return Err(format!("{s:?}: a NUL character must be escaped (\\00)")),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: the hex escapes do not make UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(dn: &str) -> Vec<(String, String)> {
        identity_attributes(dn).unwrap_or_else(|e| panic!("{dn:?}: {e}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refused(dn: &str) -> String {
        match identity_attributes(dn) {
            Ok(a) => panic!("{dn:?} should be refused, got {a:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_attributes_with_spaces_around_them() {
        assert_eq!(
            attrs(" C=US,  ST = WA ,O=Acme, CN=release "),
            pairs(&[("C", "US"), ("ST", "WA"), ("O", "Acme"), ("CN", "release")])
        );
    }

    #[test]
    fn an_escaped_comma_stays_in_the_value() {
        assert_eq!(
            attrs(r"C=US, ST=WA, O=Acme\, Inc., CN=x"),
            pairs(&[("C", "US"), ("ST", "WA"), ("O", "Acme, Inc."), ("CN", "x")])
        );
    }

    #[test]
    fn every_special_character_can_be_escaped() {
        let a = attrs(r#"C=US, ST=WA, O=a\+b\"c\\d\=e\<f\>g\;h\#i"#);
        assert_eq!(a[2].1, r#"a+b"c\d=e<f>g;h#i"#);
    }

    #[test]
    fn hex_escapes_are_bytes_that_may_build_utf8() {
        assert_eq!(attrs(r"C=US, ST=WA, O=Acme\2C Inc")[2].1, "Acme, Inc");
        assert_eq!(attrs(r"C=US, ST=WA, O=Caf\C3\A9")[2].1, "Café");
        assert!(refused(r"C=US, ST=WA, O=bad\FF").contains("UTF-8"));
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert!(refused(r"C=US, ST=WA, O=Acme\zz").contains("two hex digits"));
        assert!(refused(r"C=US, ST=WA, O=Acme\2").contains("two hex digits"));
        assert!(refused(r"C=US, ST=WA, O=Acme\").contains("lone backslash"));
    }

    #[test]
    fn unescaped_quote_and_angle_brackets_are_refused() {
        for dn in [
            r#"C=US, ST=WA, O=a"b"#,
            "C=US, ST=WA, O=a<b",
            "C=US, ST=WA, O=a>b",
        ] {
            assert!(refused(dn).contains("must be escaped"), "{dn}");
        }
    }

    #[test]
    fn an_escaped_trailing_space_is_kept_and_an_escaped_backslash_before_a_space_is_not() {
        assert_eq!(attrs(r"C=US, ST=WA, O=Acme\ ")[2].1, "Acme ");
        assert_eq!(attrs(r"C=US, ST=WA, O=Acme\\ ")[2].1, r"Acme\");
        assert_eq!(attrs(r"C=US, ST=WA, O=\ Acme")[2].1, " Acme");
    }

    #[test]
    fn semicolon_separates_rdns_too() {
        assert_eq!(
            attrs("C=US; ST=WA; O=Acme"),
            pairs(&[("C", "US"), ("ST", "WA"), ("O", "Acme")])
        );
    }

    #[test]
    fn multi_valued_rdns_are_parsed_and_refused_as_notation_does() {
        assert_eq!(
            parse("OU=Sales+CN=J.  Smith,DC=example").unwrap(),
            vec![
                pairs(&[("OU", "Sales"), ("CN", "J.  Smith")]),
                pairs(&[("DC", "example")])
            ]
        );
        assert!(refused("C=US, ST=WA, O=Acme+OU=Eng").contains("multi-valued RDN (O+OU)"));
    }

    #[test]
    fn s_is_st_and_duplicates_are_refused() {
        assert_eq!(attrs("C=US, S=WA, O=Acme")[1], ("ST".into(), "WA".into()));
        assert!(refused("C=US, ST=WA, O=Acme, S=WA").contains("attribute ST appears twice"));
        assert!(refused("C=US, ST=WA, O=Acme, CN=a, CN=b").contains("attribute CN appears twice"));
    }

    #[test]
    fn ber_values_are_refused() {
        assert!(refused("C=US, ST=WA, O=#0403414243").contains("BER"));
    }

    #[test]
    fn c_st_and_o_are_required_with_types_as_written() {
        assert!(refused("C=US, ST=WA").contains("no O"));
        assert!(refused("C=US, O=Acme").contains("no ST"));
        assert!(refused("c=US, ST=WA, O=Acme").contains("no C"));
        assert!(refused("C=, ST=WA, O=Acme").contains("no C"));
        assert!(refused("").contains("no C"));
    }

    #[test]
    fn pieces_without_a_type_are_refused() {
        assert!(refused("C=US, ST=WA, O=Acme, Inc.").contains("\"Inc.\" is not ATTRIBUTE=value"));
        assert!(refused("C=US, =WA, O=Acme").contains("no attribute type"));
        assert!(refused("C=US, ST=WA, O=Acme,").contains("is not ATTRIBUTE=value"));
    }
}
