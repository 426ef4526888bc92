//! Canonical JSON exactly as Notary signs it (spec §4, `dgo:canonical/json/encode.go`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// Spec §10 vector 1.
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
            prop_assert_eq!(canonicalize(&back).unwrap(), c1);
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
