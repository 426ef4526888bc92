//! Canonical JSON exactly as Notary signs it (`dgo:canonical/json/encode.go`).
//!
//! Input is decoded into a generic [`serde_json::Value`] first, as Notary does
//! (`json.Unmarshal` into `map[string]interface{}`), then written with these rules: no whitespace,
//! object keys sorted byte-wise (serde_json's default `Map` is a `BTreeMap<String, _>`, whose order
//! is byte-wise UTF-8 order), strings escape only `"` and `\`, numbers are integers.
//!
//! Decisions where Go and serde_json differ (documented deviations):
//! - Duplicate object keys: the last one wins, as in Go's `encoding/json` (serde_json does the same
//!   when decoding into a `Value`).
//! - Invalid UTF-8 inside strings: rejected (Go replaces it with U+FFFD). Notary never writes it, and
//!   refusing is the fail-closed choice.
//! - Nesting is limited by serde_json's recursion limit (128), so hostile input cannot overflow the
//!   stack.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Input is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A number that is not integral (or out of the int64 range) cannot be encoded (Go errors too).
    #[error("number {0} is not an integer and cannot be canonicalised")]
    NonIntegral(String),
}

/// Parse JSON bytes into a value (see the module docs for duplicate keys and UTF-8).
pub fn parse(bytes: &[u8]) -> Result<Value, CanonicalError> {
    serde_json::from_slice(bytes).map_err(|e| CanonicalError::Json(e.to_string()))
}

/// Canonical bytes of JSON input.
pub fn canonicalize_bytes(bytes: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    canonicalize(&parse(bytes)?)
}

/// Canonical bytes of a value.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Append the canonical encoding of `value` to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json::Map (without `preserve_order`) iterates in byte-wise key order.
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Go decodes every number as float64 and writes `int64(f)`. We follow that, so integers beyond
/// 2^53 lose precision exactly as they do in Notary (the signature covers the rounded value).
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    // Small integers are exact in float64: fast path without the float round trip.
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= (1u64 << 53) {
            out.extend_from_slice(i.to_string().as_bytes());
            return Ok(());
        }
    }
    let f = n
        .as_f64()
        .ok_or_else(|| CanonicalError::NonIntegral(n.to_string()))?;
    // 2^63 is exactly representable; anything at or beyond it does not fit int64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() || f.fract() != 0.0 || !(-LIMIT..LIMIT).contains(&f) {
        return Err(CanonicalError::NonIntegral(n.to_string()));
    }
    out.extend_from_slice((f as i64).to_string().as_bytes());
    Ok(())
}

/// Only `"` and `\` are escaped; everything else (control characters included) is raw UTF-8.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Fast path: whether `raw` is already in canonical form, i.e. `canonicalize_bytes(raw) == raw`.
///
/// Notary writes `signed` canonically, so for real metadata the wire bytes are the signed bytes
/// and no JSON tree has to be built. Only a strict subset is accepted (no whitespace, keys strictly
/// increasing byte-wise — so no duplicates —, only `\"` and `\\` escapes, valid UTF-8, integers
/// of at most 2^53 without sign on zero); anything else returns false and callers take the general
/// path (parse, then [`canonicalize`]).
pub fn is_canonical(raw: &[u8]) -> bool {
    // Valid UTF-8 as a whole implies every string (delimited by ASCII quotes) is valid UTF-8.
    if std::str::from_utf8(raw).is_err() {
        return false;
    }
    let mut s = Strict { b: raw, i: 0 };
    s.value(0) && s.i == raw.len()
}

/// Split a compact envelope `{"signed":…,"signatures":…}` into the byte ranges of its `signed`
/// and `signatures` members, if every member value is canonical (the envelope's own member order
/// is free, as Notary writes `signed` first). Trailing whitespace is allowed.
pub(crate) fn split_envelope(
    raw: &[u8],
) -> Option<(std::ops::Range<usize>, Option<std::ops::Range<usize>>)> {
    // Valid UTF-8 as a whole implies every string inside is valid UTF-8.
    std::str::from_utf8(raw).ok()?;
    let mut s = Strict { b: raw, i: 0 };
    if s.peek()? != b'{' {
        return None;
    }
    s.i += 1;
    let (mut signed, mut signatures) = (None, None);
    loop {
        let (ks, ke, esc) = s.string()?;
        if esc || s.peek()? != b':' {
            return None;
        }
        s.i += 1;
        let start = s.i;
        if !s.value(1) {
            return None;
        }
        let slot = match &raw[ks..ke] {
            b"signed" => &mut signed,
            b"signatures" => &mut signatures,
            _ => &mut None,
        };
        if slot.replace(start..s.i).is_some() {
            return None; // duplicate member: leave it to the general path
        }
        match s.peek()? {
            b',' => s.i += 1,
            b'}' => {
                s.i += 1;
                break;
            }
            _ => return None,
        }
    }
    if !raw[s.i..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return None;
    }
    Some((signed?, signatures))
}

struct Strict<'a> {
    b: &'a [u8],
    i: usize,
}

impl Strict<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > 128 {
            return false;
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, lit: &[u8]) -> bool {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> bool {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let d = &self.b[digits..self.i];
        if d.is_empty() || d.len() > 16 || (d[0] == b'0' && (d.len() > 1 || digits > start)) {
            return false;
        }
        let n = d.iter().fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0'));
        n <= 1 << 53
    }

    /// A string with only `\"` / `\\` escapes; returns the content range and whether it had escapes.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        let mut esc = false;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => match self.b.get(self.i + 1)? {
                    b'"' | b'\\' => {
                        esc = true;
                        self.i += 2;
                    }
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        // UTF-8 validity was checked once for the whole input by the entry points.
        Some((start, end, esc))
    }

    fn object(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return true;
        }
        let mut prev: Option<Vec<u8>> = None;
        let mut prev_raw: Option<(usize, usize)> = None;
        loop {
            let Some((ks, ke, esc)) = self.string() else {
                return false;
            };
            // Compare decoded keys; without escapes the raw bytes are the decoded bytes.
            let ordered = if esc || prev.is_some() {
                let key = unescape(&self.b[ks..ke]);
                let before = match (&prev, prev_raw) {
                    (Some(p), _) => p.as_slice() < key.as_slice(),
                    (None, Some((ps, pe))) => &self.b[ps..pe] < key.as_slice(),
                    (None, None) => true,
                };
                prev = Some(key);
                prev_raw = None;
                before
            } else {
                let before = prev_raw.is_none_or_lt(self.b, ks, ke);
                prev_raw = Some((ks, ke));
                before
            };
            if !ordered || self.peek() != Some(b':') {
                return false;
            }
            self.i += 1;
            if !self.value(depth + 1) {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.i += 1;
        if self.peek() == Some(b']') {
            self.i += 1;
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }
}

trait PrevKey {
    fn is_none_or_lt(&self, b: &[u8], ks: usize, ke: usize) -> bool;
}

impl PrevKey for Option<(usize, usize)> {
    fn is_none_or_lt(&self, b: &[u8], ks: usize, ke: usize) -> bool {
        match self {
            None => true,
            Some((ps, pe)) => b[*ps..*pe] < b[ks..ke],
        }
    }
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            out.push(raw[i + 1]);
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// Reference vector 1 (computed independently with Python's `cryptography`).
    #[test]
    fn vector_1() {
        let input =
            "{ \"b\": 2, \"a\": \"x\\\"y\\\\z\", \"c\": [true, null, 1.0], \"é\": \"\\u00e9<&>\" }";
        let out = canonicalize_bytes(input.as_bytes()).unwrap();
        assert_eq!(
            out,
            "{\"a\":\"x\\\"y\\\\z\",\"b\":2,\"c\":[true,null,1],\"é\":\"é<&>\"}".as_bytes()
        );
        assert_eq!(out.len(), 52);
        assert_eq!(
            hex::encode(&out),
            "7b2261223a22785c22795c5c7a222c2262223a322c2263223a5b747275652c6e756c6c2c315d2c22c3a9223a22c3a93c263e227d"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&out)),
            "be71aa83eccff6c94b83c7b4bac2a808fcc80ff222b889a18f95f580cee3d076"
        );
    }

    #[test]
    fn fast_path_cases() {
        assert!(is_canonical(br#"{"a":[1,-2,0,true,null,"x\"y\\"],"b":{}}"#));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#));
        assert!(!is_canonical(br#"{"a":1,"a":1}"#));
        assert!(!is_canonical(b"{ }"));
        assert!(!is_canonical(b"1.0"));
        assert!(!is_canonical(b"-0"));
        assert!(!is_canonical(b"01"));
        assert!(!is_canonical(b"9007199254740993"));
        assert!(!is_canonical(br#""\n""#));
        assert!(!is_canonical(b"\"\xff\""));
        let (s, sig) = split_envelope(br#"{"signed":{"a":1},"signatures":[]}"#).unwrap();
        assert_eq!((s, sig), (10..17, Some(31..33)));
        assert!(split_envelope(br#"{"signed":{"a":1},"signed":{"a":1}}"#).is_none());
        assert!(split_envelope(b"{\"signed\":{\"a\":\"\xff\"}}").is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(
            canonicalize_bytes(b"[1e0, -0.0, 1.0, 12345678901]").unwrap(),
            b"[1,0,1,12345678901]"
        );
        assert!(canonicalize_bytes(b"1.5").is_err());
        assert!(canonicalize_bytes(b"1e300").is_err());
        // 2^53 + 1 rounds to 2^53 as in Go's float64 decoding.
        assert_eq!(
            canonicalize_bytes(b"9007199254740993").unwrap(),
            b"9007199254740992"
        );
    }

    #[test]
    fn control_characters_raw() {
        assert_eq!(
            canonicalize_bytes(b"\"a\\nb\\u2028\"").unwrap(),
            "\"a\nb\u{2028}\"".as_bytes()
        );
    }

    #[test]
    fn duplicate_keys_last_wins_and_bad_utf8_rejected() {
        assert_eq!(
            canonicalize_bytes(br#"{"a":1,"a":2}"#).unwrap(),
            br#"{"a":2}"#
        );
        assert!(canonicalize_bytes(b"\"\xff\"").is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|i| Value::Number(i.into())),
            "[^\\x00-\\x1f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[^\\x00-\\x1f]{0,6}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn idempotent(v in arb_json()) {
            let c1 = canonicalize(&v).unwrap();
            let back = parse(&c1).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(canonicalize(&back).unwrap(), c1.clone());
            // The fast path recognises canonical output (small integers only in this strategy).
            prop_assert!(is_canonical(&c1));
        }

        #[test]
        fn fast_path_agrees(v in arb_json(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
            if is_canonical(&text) {
                prop_assert_eq!(canonicalize_bytes(&text).unwrap(), text);
            }
        }

        #[test]
        fn fast_path_never_accepts_non_canonical(text in "[\\[\\]{}\",:0-9a-z\\\\ .-]{0,24}") {
            if is_canonical(text.as_bytes()) {
                prop_assert_eq!(canonicalize_bytes(text.as_bytes()).unwrap(), text.as_bytes().to_vec());
            }
        }

        #[test]
        fn keys_sorted_bytewise(keys in prop::collection::vec("[^\\x00-\\x1f]{0,6}", 0..10)) {
            let mut map = serde_json::Map::new();
            for k in &keys { map.insert(k.clone(), Value::Null); }
            let c = canonicalize(&Value::Object(map)).unwrap();
            let back: serde_json::Map<String, Value> = serde_json::from_slice(&c).unwrap();
            let mut sorted: Vec<&String> = back.keys().collect();
            let order = sorted.clone();
            sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(order, sorted);
        }

        #[test]
        fn only_quote_and_backslash_escaped(s in any::<String>()) {
            let mut out = Vec::new();
            write_string(&s, &mut out);
            let expected = format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            prop_assert_eq!(out, expected.into_bytes());
        }

        #[test]
        fn integers_plain(i in -(1i64 << 53)..(1i64 << 53)) {
            prop_assert_eq!(canonicalize(&Value::Number(i.into())).unwrap(), i.to_string().into_bytes());
            let float_form = format!("{i}.0");
            prop_assert_eq!(canonicalize_bytes(float_form.as_bytes()).unwrap(), i.to_string().into_bytes());
        }
    }
}
