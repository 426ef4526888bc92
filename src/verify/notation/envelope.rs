//! Notation signature envelopes, JWS and COSE_Sign1, read into one shape (pure).
//!
//! The Notary Project signature specification (`specification/signature/signature-specification.md`,
//! `signature-envelope-jws.md`, `signature-envelope-cose.md`) fixes what both formats carry: the
//! algorithm, the payload content type, the signing scheme, the signing time (or the signing
//! authority's authentic signing time), an optional expiry, the `crit` list naming the headers a
//! verifier must understand, the certificate chain (leaf first) and an optional RFC 3161
//! timestamp countersignature over the signature bytes. Nothing is verified here; this module
//! only refuses what is malformed and keeps the exact bytes that were signed.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use coset::{
    iana, CborSerializable, CoseSign1, Label, RegisteredLabel, RegisteredLabelWithPrivate,
    TaggedCborSerializable,
};
use serde_json::{Map, Value};

/// The only payload type Notation signs.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
pub const HEADER_SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub const HEADER_SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub const HEADER_AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub const HEADER_EXPIRY: &str = "io.cncf.notary.expiry";
pub const HEADER_TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
/// Extended attributes a verifier may be asked to understand (the specification's list). A
/// verification plugin is not something trustgate runs, so a `crit` naming one is refused.
const KNOWN_CRITICAL: [&str; 3] = [
    HEADER_SIGNING_SCHEME,
    HEADER_EXPIRY,
    HEADER_AUTHENTIC_SIGNING_TIME,
];
/// COSE `x5chain` (RFC 9360).
const COSE_X5CHAIN: i64 = 33;

/// The envelope format, from the signature layer's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeFormat {
    /// `application/jose+json`
    Jws,
    /// `application/cose`
    Cose,
}

impl EnvelopeFormat {
    pub const JWS_MEDIA_TYPE: &'static str = "application/jose+json";
    pub const COSE_MEDIA_TYPE: &'static str = "application/cose";

    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            Self::JWS_MEDIA_TYPE => Some(Self::Jws),
            Self::COSE_MEDIA_TYPE => Some(Self::Cose),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jws => "JWS",
            Self::Cose => "COSE",
        }
    }
}

/// The signature algorithms the specification allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    fn from_jws(name: &str) -> Option<Self> {
        [
            Self::Ps256,
            Self::Ps384,
            Self::Ps512,
            Self::Es256,
            Self::Es384,
            Self::Es512,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    fn from_cose(alg: &iana::Algorithm) -> Option<Self> {
        Some(match alg {
            iana::Algorithm::PS256 => Self::Ps256,
            iana::Algorithm::PS384 => Self::Ps384,
            iana::Algorithm::PS512 => Self::Ps512,
            iana::Algorithm::ES256 => Self::Es256,
            iana::Algorithm::ES384 => Self::Es384,
            iana::Algorithm::ES512 => Self::Es512,
            _ => return None,
        })
    }
}

/// `io.cncf.notary.signingScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: the signing time is the signer's claim; a timestamp proves time.
    X509,
    /// `notary.x509.signingAuthority`: the authentic signing time comes from the authority.
    SigningAuthority,
}

impl SigningScheme {
    pub fn name(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::SigningAuthority => "notary.x509.signingAuthority",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "notary.x509" => Some(Self::X509),
            "notary.x509.signingAuthority" => Some(Self::SigningAuthority),
            _ => None,
        }
    }
}

/// One envelope, parsed; the signature not yet checked.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub format: EnvelopeFormat,
    pub alg: Alg,
    /// The exact bytes the signature covers (JWS signing input; COSE `Sig_structure`).
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    pub payload: Vec<u8>,
    pub scheme: SigningScheme,
    /// `signingTime` (notary.x509) or `authenticSigningTime` (signing authority).
    pub signing_time: Option<SystemTime>,
    pub expiry: Option<SystemTime>,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The RFC 3161 timestamp token countersigning `signature`.
    pub timestamp: Option<Vec<u8>>,
}

/// Why an envelope is not a usable Notation signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{format} envelope is malformed: {problem}")]
    Malformed {
        format: &'static str,
        problem: String,
    },
    #[error("unknown critical header {0:?}")]
    UnknownCritical(String),
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlg(String),
}

fn malformed(format: EnvelopeFormat, problem: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        format: format.name(),
        problem: problem.into(),
    }
}

/// Parses an envelope of `format`.
pub fn parse(format: EnvelopeFormat, bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    match format {
        EnvelopeFormat::Jws => parse_jws(bytes),
        EnvelopeFormat::Cose => parse_cose(bytes),
    }
}

/// The `crit` rules shared by both formats: the signing scheme is always critical, so are the
/// expiry and the authentic signing time when present, and nothing unknown may be.
fn check_crit(
    format: EnvelopeFormat,
    crit: &[String],
    present: impl Fn(&str) -> bool,
    scheme: SigningScheme,
    has_expiry: bool,
) -> Result<(), EnvelopeError> {
    for c in crit {
        if !KNOWN_CRITICAL.contains(&c.as_str()) {
            return Err(EnvelopeError::UnknownCritical(c.clone()));
        }
        if !present(c) {
            return Err(malformed(
                format,
                format!("critical header {c} is not in the protected header"),
            ));
        }
    }
    let mut must = vec![HEADER_SIGNING_SCHEME];
    if has_expiry {
        must.push(HEADER_EXPIRY);
    }
    if scheme == SigningScheme::SigningAuthority {
        must.push(HEADER_AUTHENTIC_SIGNING_TIME);
    }
    for m in must {
        if !crit.iter().any(|c| c == m) {
            return Err(malformed(format, format!("{m} must be listed in crit")));
        }
    }
    Ok(())
}

fn rfc3339(format: EnvelopeFormat, key: &str, v: &Value) -> Result<SystemTime, EnvelopeError> {
    let s = v
        .as_str()
        .ok_or_else(|| malformed(format, format!("{key} is not a string")))?;
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| malformed(format, format!("{key} {s:?} is not an RFC 3339 time: {e}")))?;
    Ok(SystemTime::from(t))
}

fn parse_jws(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let f = EnvelopeFormat::Jws;
    let doc: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|e| malformed(f, format!("not a JSON object: {e}")))?;
    let text = |k: &str| {
        doc.get(k).and_then(Value::as_str).ok_or_else(|| {
            malformed(
                f,
                format!("no {k} (only the flattened JSON serialization is used)"),
            )
        })
    };
    let protected_b64 = text("protected")?;
    let payload_b64 = text("payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(text("signature")?)
        .map_err(|e| malformed(f, format!("signature is not base64url: {e}")))?;
    let protected: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(protected_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed(f, "the protected header is not base64url JSON"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|e| malformed(f, format!("payload is not base64url: {e}")))?;
    let alg_name = protected
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(f, "no alg in the protected header"))?;
    let alg = Alg::from_jws(alg_name)
        .ok_or_else(|| EnvelopeError::UnsupportedAlg(alg_name.to_string()))?;
    match protected.get("cty").and_then(Value::as_str) {
        Some(PAYLOAD_CONTENT_TYPE) => {}
        other => {
            return Err(malformed(
                f,
                format!("cty is {other:?}, not {PAYLOAD_CONTENT_TYPE}"),
            ))
        }
    }
    let scheme = protected
        .get(HEADER_SIGNING_SCHEME)
        .and_then(Value::as_str)
        .and_then(SigningScheme::parse)
        .ok_or_else(|| malformed(f, format!("{HEADER_SIGNING_SCHEME} is missing or unknown")))?;
    let crit = match protected.get("crit") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(f, "crit is not a list of names"))?,
        Some(_) => return Err(malformed(f, "crit is not a list")),
        None => Vec::new(),
    };
    let expiry = protected
        .get(HEADER_EXPIRY)
        .map(|v| rfc3339(f, HEADER_EXPIRY, v))
        .transpose()?;
    check_crit(
        f,
        &crit,
        |k| protected.contains_key(k),
        scheme,
        expiry.is_some(),
    )?;
    let time_key = match scheme {
        SigningScheme::X509 => HEADER_SIGNING_TIME,
        SigningScheme::SigningAuthority => HEADER_AUTHENTIC_SIGNING_TIME,
    };
    let signing_time = protected
        .get(time_key)
        .map(|v| rfc3339(f, time_key, v))
        .transpose()?;
    let header = doc
        .get("header")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed(f, "no unprotected header (it carries x5c)"))?;
    let chain = header
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(f, "no x5c certificate chain"))?
        .iter()
        .map(|c| c.as_str().and_then(|s| STANDARD.decode(s).ok()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| malformed(f, "x5c holds something other than base64 certificates"))?;
    let timestamp = match header.get(HEADER_TIMESTAMP) {
        Some(v) => Some(
            v.as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| malformed(f, format!("{HEADER_TIMESTAMP} is not base64")))?,
        ),
        None => None,
    };
    Ok(Envelope {
        format: f,
        alg,
        signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
        signature,
        payload,
        scheme,
        signing_time,
        expiry,
        chain,
        timestamp,
    })
}

fn label_name(l: &RegisteredLabelWithPrivate<iana::HeaderParameter>) -> String {
    match l {
        RegisteredLabelWithPrivate::Text(s) => s.clone(),
        RegisteredLabelWithPrivate::Assigned(a) => format!("{a:?}"),
        RegisteredLabelWithPrivate::PrivateUse(i) => i.to_string(),
    }
}

fn cose_time(v: &coset::cbor::value::Value) -> Option<SystemTime> {
    use coset::cbor::value::Value as V;
    // The specification encodes times as CBOR tag 1 (epoch seconds).
    let inner = match v {
        V::Tag(1, inner) => inner.as_ref(),
        other => other,
    };
    let secs: i128 = inner.as_integer()?.into();
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn parse_cose(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let f = EnvelopeFormat::Cose;
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|e| malformed(f, format!("not a COSE_Sign1 message: {e}")))?;
    let p = &sign1.protected.header;
    let alg = match &p.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => {
            Alg::from_cose(a).ok_or_else(|| EnvelopeError::UnsupportedAlg(format!("{a:?}")))?
        }
        Some(other) => return Err(EnvelopeError::UnsupportedAlg(format!("{other:?}"))),
        None => return Err(malformed(f, "no alg in the protected header")),
    };
    match &p.content_type {
        Some(RegisteredLabel::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        other => {
            return Err(malformed(
                f,
                format!("content type is {other:?}, not {PAYLOAD_CONTENT_TYPE}"),
            ))
        }
    }
    let get = |name: &str| {
        p.rest
            .iter()
            .find(|(l, _)| matches!(l, Label::Text(t) if t == name))
            .map(|(_, v)| v)
    };
    let scheme = get(HEADER_SIGNING_SCHEME)
        .and_then(|v| v.as_text())
        .and_then(SigningScheme::parse)
        .ok_or_else(|| malformed(f, format!("{HEADER_SIGNING_SCHEME} is missing or unknown")))?;
    let crit: Vec<String> = p.crit.iter().map(label_name).collect();
    let expiry = match get(HEADER_EXPIRY) {
        Some(v) => Some(
            cose_time(v).ok_or_else(|| malformed(f, format!("{HEADER_EXPIRY} is not a time")))?,
        ),
        None => None,
    };
    check_crit(f, &crit, |k| get(k).is_some(), scheme, expiry.is_some())?;
    let time_key = match scheme {
        SigningScheme::X509 => HEADER_SIGNING_TIME,
        SigningScheme::SigningAuthority => HEADER_AUTHENTIC_SIGNING_TIME,
    };
    let signing_time = match get(time_key) {
        Some(v) => {
            Some(cose_time(v).ok_or_else(|| malformed(f, format!("{time_key} is not a time")))?)
        }
        None => None,
    };
    let u = &sign1.unprotected;
    let chain = match u
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(COSE_X5CHAIN))
        .map(|(_, v)| v)
    {
        Some(coset::cbor::value::Value::Bytes(b)) => vec![b.clone()],
        Some(coset::cbor::value::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_bytes().cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(f, "x5chain holds something other than certificates"))?,
        _ => return Err(malformed(f, "no x5chain certificate chain")),
    };
    let timestamp = match u
        .rest
        .iter()
        .find(|(l, _)| matches!(l, Label::Text(t) if t == HEADER_TIMESTAMP))
    {
        Some((_, v)) => Some(
            v.as_bytes()
                .cloned()
                .ok_or_else(|| malformed(f, format!("{HEADER_TIMESTAMP} is not a byte string")))?,
        ),
        None => None,
    };
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| malformed(f, "the payload is detached"))?;
    Ok(Envelope {
        format: f,
        alg,
        signing_input: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
        payload,
        scheme,
        signing_time,
        expiry,
        chain,
        timestamp,
    })
}
