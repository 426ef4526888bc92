//! RFC 3161 timestamp countersignatures on Notation signatures (pure).
//!
//! Why not `sigstore-tsa` (already in the tree): it verifies only ECDSA-signed tokens from a
//! TSA whose signing certificate is pinned in advance (Sigstore's model), while Notation users
//! timestamp with public TSAs (DigiCert, GlobalSign) that sign with RSA, and the trust store
//! holds only the TSA's root. The token is read with the `cms` crate; every signature check is
//! aws-lc-rs (through [`super::certs::verify_by`]).
//!
//! Checks (RFC 3161 section 2.4.2, RFC 5652 section 5.4, and notation-core-go's
//! `timestamp` package): the token is CMS SignedData holding a TSTInfo; the TSTInfo's message
//! imprint is the hash of the signature being countersigned; the signed attributes' message
//! digest is the hash of the TSTInfo; the signer's signature over the signed attributes
//! verifies with a certificate the token carries; that certificate has the time-stamping
//! extended key usage and chains, through the token's other certificates, to a TSA root of the
//! trust store; and every certificate of that chain was valid at the time attested.

use std::time::SystemTime;

use aws_lc_rs::digest;
use cms::cert::x509::der::asn1::{Any, GeneralizedTime, Int, ObjectIdentifier, OctetString};
use cms::cert::x509::der::{Decode, Encode, Reader, SliceReader};
use cms::cert::x509::spki::AlgorithmIdentifierOwned;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;

use super::certs::{issued_by, verify_by, Cert, CertProblem};

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_CT_TSTINFO: &str = "1.2.840.113549.1.9.16.1.4";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// The longest TSA chain followed (leaf, intermediates, root).
const MAX_TSA_CHAIN: usize = 6;

fn hash(oid: &str, data: &[u8]) -> Result<Vec<u8>, CertProblem> {
    let alg = match oid {
        "2.16.840.1.101.3.4.2.1" => &digest::SHA256,
        "2.16.840.1.101.3.4.2.2" => &digest::SHA384,
        "2.16.840.1.101.3.4.2.3" => &digest::SHA512,
        other => return Err(format!("hash algorithm {other} is not supported")),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

/// The message imprint (hash algorithm, hash) and generation time of a DER TSTInfo.
fn read_tst_info(der: &[u8]) -> Result<(String, Vec<u8>, SystemTime), CertProblem> {
    let bad = |e: cms::cert::x509::der::Error| format!("the TSTInfo does not parse: {e}");
    let mut reader = SliceReader::new(der).map_err(bad)?;
    let out = reader
        .sequence(|r| {
            let _version: Int = r.decode()?;
            let _policy: ObjectIdentifier = r.decode()?;
            let (alg, hashed) = r.sequence(|m| {
                let alg: AlgorithmIdentifierOwned = m.decode()?;
                let hashed: OctetString = m.decode()?;
                Ok((alg, hashed))
            })?;
            let _serial: Int = r.decode()?;
            let gen_time: GeneralizedTime = r.decode()?;
            // accuracy, ordering, nonce, tsa, extensions: not needed.
            while !r.is_finished() {
                let _: Any = r.decode()?;
            }
            Ok((
                alg.oid.to_string(),
                hashed.as_bytes().to_vec(),
                gen_time.to_system_time(),
            ))
        })
        .map_err(bad)?;
    Ok(out)
}

/// Verifies `token` countersigning `signature` against `tsa_roots` (DER) and returns the time
/// it attests.
pub fn verify(
    token: &[u8],
    signature: &[u8],
    tsa_roots: &[Vec<u8>],
) -> Result<SystemTime, CertProblem> {
    if tsa_roots.is_empty() {
        return Err("no TSA root is configured to verify it".into());
    }
    let info = ContentInfo::from_der(token).map_err(|e| format!("the token is not CMS: {e}"))?;
    if info.content_type.to_string() != ID_SIGNED_DATA {
        return Err(format!(
            "the token's content type is {}, not SignedData",
            info.content_type
        ));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("the token is not CMS SignedData: {e}"))?;
    if signed.encap_content_info.econtent_type.to_string() != ID_CT_TSTINFO {
        return Err(format!(
            "the token holds {}, not a TSTInfo",
            signed.encap_content_info.econtent_type
        ));
    }
    let tst_der = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("the token holds no TSTInfo")?
        .value()
        .to_vec();
    let (imprint_alg, imprint, time) = read_tst_info(&tst_der)?;
    if hash(&imprint_alg, signature)? != imprint {
        return Err("its message imprint is not the hash of this signature".into());
    }
    let signer_info = signed
        .signer_infos
        .0
        .get(0)
        .ok_or("the token has no signer")?;
    let digest_oid = signer_info.digest_alg.oid.to_string();
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or("the token's signer has no signed attributes")?;
    let message_digest = attrs
        .iter()
        .find(|a| a.oid.to_string() == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.get(0))
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or("the token's signed attributes have no message digest")?;
    if hash(&digest_oid, &tst_der)? != message_digest.as_bytes() {
        return Err("the signed message digest is not the hash of the TSTInfo".into());
    }
    // RFC 5652 5.4: the signature covers the DER of the attributes as a SET OF.
    let attrs_der = attrs
        .to_der()
        .map_err(|e| format!("the token's signed attributes: {e}"))?;
    let sig_oid = signer_info.signature_algorithm.oid.to_string();
    let sig = signer_info.signature.as_bytes();
    let embedded: Vec<Vec<u8>> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => cert.to_der().ok(),
            _ => None,
        })
        .collect();
    let embedded: Vec<Cert<'_>> = embedded
        .iter()
        .map(|d| Cert::parse(d))
        .collect::<Result<_, _>>()?;
    let signer = embedded
        .iter()
        .find(|c| verify_by(c, &sig_oid, Some(&digest_oid), &attrs_der, sig).is_ok())
        .ok_or("the token's signature does not verify with any certificate it carries (signing certificate not found)")?;
    let eku_ok = matches!(
        signer.extension(&oids::OID_X509_EXT_EXTENDED_KEY_USAGE),
        Some((_, ParsedExtension::ExtendedKeyUsage(e))) if e.time_stamping
    );
    if !eku_ok {
        return Err(format!(
            "TSA certificate {} is not for time stamping",
            signer.subject()
        ));
    }
    let roots: Vec<Cert<'_>> = tsa_roots
        .iter()
        .map(|d| Cert::parse(d))
        .collect::<Result<_, _>>()?;
    // Follow issuers through the token's certificates up to a trusted root.
    let mut current = signer;
    let mut path = vec![signer];
    loop {
        if let Some(root) = roots
            .iter()
            .find(|r| r.der == current.der || issued_by(current, r).is_ok())
        {
            if root.der != current.der {
                path.push(root);
            }
            break;
        }
        if path.len() >= MAX_TSA_CHAIN || current.self_issued() {
            return Err(format!(
                "TSA certificate {} does not chain to a TSA root of the trust store",
                signer.subject()
            ));
        }
        match embedded
            .iter()
            .find(|c| c.der != current.der && issued_by(current, c).is_ok())
        {
            Some(next) => {
                current = next;
                path.push(next);
            }
            None => {
                return Err(format!(
                    "TSA certificate {} does not chain to a TSA root of the trust store",
                    signer.subject()
                ))
            }
        }
    }
    for c in &path {
        c.valid_at(time)
            .map_err(|p| format!("{p} (the TSA's chain at the time it attests)"))?;
    }
    Ok(time)
}
