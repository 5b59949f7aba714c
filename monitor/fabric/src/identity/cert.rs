//! Reading certificates back: what a PEM certificate says, and whether a CA signed it.
//!
//! Everything here parses with x509-parser and treats its input as untrusted: malformed
//! PEM or DER is an error naming what was being read, never a panic.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::{IdentityError, sha256};

/// What a certificate says about its subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's common name.
    pub common_name: String,
    /// The DNS names in the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// The start of validity, in seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// The end of validity, in seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// The subject's public key (SubjectPublicKeyInfo DER).
    pub spki_der: Vec<u8>,
    /// SHA-256 of the certificate's DER.
    pub sha256: [u8; 32],
}

impl CertSummary {
    /// Reads a PEM certificate.
    pub fn of_pem(cert_pem: &str) -> Result<Self, IdentityError> {
        let der = pem_der(cert_pem, "the certificate")?;
        let cert = parse_cert(&der, "the certificate")?;
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some((*dns).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            common_name: common_name(&cert)?,
            dns_names,
            not_before_unix: cert.validity().not_before.timestamp(),
            not_after_unix: cert.validity().not_after.timestamp(),
            spki_der: cert.public_key().raw.to_vec(),
            sha256: sha256(&der),
        })
    }
}

/// Checks that the certificate `cert_pem` was signed by the CA certificate `ca_pem`.
pub fn verify_issued_by(cert_pem: &str, ca_pem: &str) -> Result<(), IdentityError> {
    let ca_der = pem_der(ca_pem, "the CA certificate")?;
    let ca = parse_cert(&ca_der, "the CA certificate")?;
    let der = pem_der(cert_pem, "the device certificate")?;
    let cert = parse_cert(&der, "the device certificate")?;
    if cert.issuer() != ca.subject() {
        return Err(IdentityError::NotIssuedByCa);
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| IdentityError::NotIssuedByCa)
}

/// The DER inside a PEM block.
pub(super) fn pem_der(pem: &str, what: &'static str) -> Result<Vec<u8>, IdentityError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| IdentityError::Pem { what })?;
    Ok(block.contents)
}

pub(super) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|reason| IdentityError::Der { what, reason })?;
    Ok(cert)
}

pub(super) fn common_name(cert: &X509Certificate<'_>) -> Result<String, IdentityError> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .ok_or(IdentityError::NoCommonName)
}
