//! Who is who in a fabric: the fabric's certificate authority, device keys and device
//! certificates. Names and ids are in `naming`, reading certificates back in `cert`.
//!
//! Invariants:
//! - Every key is ECDSA P-256 and is generated on the device that uses it; a device's
//!   private key never leaves its state directory. The CA only ever sees a device's CSR.
//! - The fabric id is 16 random bytes (hex on the wire and on disk); the CA's subject is
//!   exactly `CN=weft fabric <fabric id>`, so the issuer name of every device certificate is
//!   a function of the fabric id alone. Signing rebuilds the CA's issuer data from the fabric
//!   id and `ca.key` (rcgen needs a `Certificate` as issuer); [`CaMaterial::from_pem`] checks
//!   that `ca.crt` carries that subject and that key, so the rebuilt issuer matches `ca.crt`.
//! - A device certificate has CN = SAN DNS = the device name, EKU serverAuth + clientAuth
//!   (Zenoh's TLS presents the same certificate when listening and when connecting), a
//!   random positive serial, and validity from 5 minutes ago (clock skew) to now + the
//!   requested duration.
//! - Every device certificate is issued for [`issue_validity`]: [`DEFAULT_VALIDITY`], or the
//!   seconds in `WEFT_CERT_VALIDITY_SECS` ([`VALIDITY_ENV`]) of the issuing process (the
//!   device that signs), read at each issue. A renewed certificate holds the same name and
//!   key as the one it replaces ([`Device::replace_cert`] checks it).

mod cert;
mod naming;

pub use cert::{CertSummary, verify_issued_by};
use cert::{common_name, parse_cert, pem_der};
pub use naming::{DeviceId, DeviceName, FabricId, HexIdError, MAX_NAME_LEN, NameError};
pub(crate) use naming::{hex_id, parse_hex, to_hex};

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm,
};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// How long a device certificate is valid unless the caller asks otherwise.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The environment variable that sets the validity of the device certificates a process
/// issues, in seconds ([`MIN_VALIDITY`] to [`MAX_VALIDITY`]); short ones are for tests.
pub const VALIDITY_ENV: &str = "WEFT_CERT_VALIDITY_SECS";
/// The shortest validity [`VALIDITY_ENV`] may ask for.
pub const MIN_VALIDITY: Duration = Duration::from_secs(10);
/// The longest validity [`VALIDITY_ENV`] may ask for.
pub const MAX_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How far back a device certificate's validity starts, for clocks that disagree.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long the fabric's CA certificate is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the system random generator failed")]
    Random,
    #[error("the system clock is before 1970 or beyond what a certificate can hold")]
    Clock,
    #[error("generating or signing with rcgen failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{what} is not valid PEM")]
    Pem { what: &'static str },
    #[error("{what} is not a valid DER structure: {reason}")]
    Der {
        what: &'static str,
        reason: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },
    #[error("the certificate signing request's signature does not verify")]
    CsrSignature,
    #[error("the key in {what} is not an ECDSA P-256 key")]
    KeyAlgorithm { what: &'static str },
    #[error("the CA certificate does not hold the CA key's public key")]
    CaKeyMismatch,
    #[error("the CA certificate's subject is not \"CN=weft fabric {fabric}\"")]
    CaSubject { fabric: FabricId },
    #[error("the device certificate does not hold the device key's public key")]
    DeviceKeyMismatch,
    #[error("the device certificate was not issued by the fabric's CA certificate")]
    NotIssuedByCa,
    #[error("the certificate has no common name")]
    NoCommonName,
    #[error("the certificate names {found:?}, not device {expected}")]
    WrongName { expected: DeviceName, found: String },
    #[error(
        "{VALIDITY_ENV}={text:?} is not a number of seconds from {} to {}",
        MIN_VALIDITY.as_secs(),
        MAX_VALIDITY.as_secs()
    )]
    Validity { text: String },
}

/// The validity of a device certificate issued now: `WEFT_CERT_VALIDITY_SECS` if set,
/// else [`DEFAULT_VALIDITY`].
pub fn issue_validity() -> Result<Duration, IdentityError> {
    match std::env::var(VALIDITY_ENV) {
        Err(_) => Ok(DEFAULT_VALIDITY),
        Ok(text) => parse_validity(&text),
    }
}

/// Reads a validity in seconds, [`MIN_VALIDITY`] to [`MAX_VALIDITY`].
fn parse_validity(text: &str) -> Result<Duration, IdentityError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .filter(|v| (MIN_VALIDITY..=MAX_VALIDITY).contains(v))
        .ok_or_else(|| IdentityError::Validity {
            text: text.to_owned(),
        })
}

/// What `device.json` holds: the device's name, id and fabric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: DeviceName,
    pub id: DeviceId,
    pub fabric: FabricId,
}

/// The fabric's certificate authority: its certificate and private key. Only the device
/// that created the fabric holds one.
pub struct CaMaterial {
    fabric: FabricId,
    cert_pem: String,
    key: KeyPair,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("fabric", &self.fabric)
            .finish_non_exhaustive()
    }
}

impl CaMaterial {
    /// Rebuilds the CA from `ca.crt` and `ca.key`, checking they belong together and to
    /// `fabric`.
    pub fn from_pem(
        fabric: FabricId,
        cert_pem: String,
        key_pem: &str,
    ) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem_and_sign_algo(key_pem, &PKCS_ECDSA_P256_SHA256)?;
        let der = pem_der(&cert_pem, "the CA certificate")?;
        let cert = parse_cert(&der, "the CA certificate")?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(IdentityError::CaKeyMismatch);
        }
        if common_name(&cert)? != ca_common_name(fabric) {
            return Err(IdentityError::CaSubject { fabric });
        }
        Ok(Self {
            fabric,
            cert_pem,
            key,
        })
    }

    /// Creates a new fabric's CA with a fresh random fabric id.
    fn generate() -> Result<Self, IdentityError> {
        let fabric = FabricId(random()?);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(fabric);
        let now = SystemTime::now();
        params.not_before = cert_time(now, Sign::Minus(CLOCK_SKEW))?;
        params.not_after = cert_time(now, Sign::Plus(CA_VALIDITY))?;
        params.serial_number = Some(random_serial()?);
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            fabric,
            cert_pem,
            key,
        })
    }

    /// The fabric this CA certifies.
    pub fn fabric(&self) -> FabricId {
        self.fabric
    }

    /// `ca.crt`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `ca.key` (PKCS#8 PEM): a secret.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Signs the CSR `csr_pem` into a certificate for device `name`, valid for `validity`
    /// from now (and 5 minutes back). The CSR's own signature must verify and its key must
    /// be ECDSA P-256; its subject is ignored (the name is `name`).
    pub fn sign(
        &self,
        csr_pem: &str,
        name: &DeviceName,
        validity: Duration,
    ) -> Result<SignedCert, IdentityError> {
        self.sign_checked(&CheckedCsr::parse(csr_pem)?, name, validity)
    }

    /// Signs a CSR already checked by [`CheckedCsr::parse`] (see [`sign`](Self::sign)).
    pub fn sign_checked(
        &self,
        csr: &CheckedCsr,
        name: &DeviceName,
        validity: Duration,
    ) -> Result<SignedCert, IdentityError> {
        let mut params = params_named(name.as_str());
        params.subject_alt_names = vec![SanType::DnsName(name.as_str().try_into()?)];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = cert_time(now, Sign::Minus(CLOCK_SKEW))?;
        params.not_after = cert_time(now, Sign::Plus(validity))?;
        params.serial_number = Some(random_serial()?);

        let issuer = ca_params(self.fabric).self_signed(&self.key)?;
        let cert = params.signed_by(&csr.public_key, &issuer, &self.key)?;
        Ok(SignedCert {
            id: DeviceId::of_public_key(&csr.spki_der),
            cert_pem: cert.pem(),
        })
    }
}

/// A certificate signing request whose signature verified and whose key is ECDSA P-256.
pub struct CheckedCsr {
    /// The subject's common name, if it has one (untrusted: a name the requester chose).
    pub common_name: Option<String>,
    /// The requester's public key (SubjectPublicKeyInfo DER).
    pub spki_der: Vec<u8>,
    public_key: P256PublicKey,
}

impl fmt::Debug for CheckedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCsr")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

impl CheckedCsr {
    /// Reads the PEM CSR `csr_pem`, verifying its signature (the requester holds the key)
    /// and its key type.
    pub fn parse(csr_pem: &str) -> Result<Self, IdentityError> {
        let what = "the certificate signing request";
        let der = pem_der(csr_pem, what)?;
        let (_, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|reason| IdentityError::Der { what, reason })?;
        csr.verify_signature()
            .map_err(|_| IdentityError::CsrSignature)?;
        let info = &csr.certification_request_info;
        let spki = &info.subject_pki;
        let public_key = P256PublicKey::from_spki(spki, what)?;
        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Ok(Self {
            common_name,
            spki_der: spki.raw.to_vec(),
            public_key,
        })
    }
}

/// A device certificate just signed by the CA, with the id of the key it certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCert {
    pub id: DeviceId,
    pub cert_pem: String,
}

/// A device's own identity: its name, id and fabric, its private key, its certificate and
/// the fabric's CA certificate.
pub struct Device {
    info: DeviceInfo,
    key: KeyPair,
    cert_pem: String,
    ca_cert_pem: String,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Puts a device together from its files, checking the certificate holds the key.
    pub fn from_pem(
        info: DeviceInfo,
        key_pem: &str,
        cert_pem: String,
        ca_cert_pem: String,
    ) -> Result<Self, IdentityError> {
        let key = DeviceKey(KeyPair::from_pem_and_sign_algo(
            key_pem,
            &PKCS_ECDSA_P256_SHA256,
        )?);
        key.check_cert(&cert_pem)?;
        Ok(Self {
            info,
            key: key.0,
            cert_pem,
            ca_cert_pem,
        })
    }

    /// Name, id and fabric (`device.json`).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// `device.key` (PKCS#8 PEM): a secret.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// `device.crt`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `ca.crt`.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// A CSR (PEM) for this device's own key, CN = its name: what it sends to renew its
    /// certificate (the key itself never leaves the device).
    pub fn csr_pem(&self) -> Result<String, IdentityError> {
        Ok(params_named(self.info.name.as_str())
            .serialize_request(&self.key)?
            .pem()?)
    }

    /// Takes `cert_pem` as this device's certificate, once it is shown to be signed by the
    /// fabric's CA, to hold this device's key and to name it (CN); else nothing changes.
    pub fn replace_cert(&mut self, cert_pem: String) -> Result<(), IdentityError> {
        verify_issued_by(&cert_pem, &self.ca_cert_pem)?;
        cert_holds_key(&cert_pem, &self.key.public_key_der())?;
        let found = CertSummary::of_pem(&cert_pem)?.common_name;
        if found != self.info.name.as_str() {
            return Err(IdentityError::WrongName {
                expected: self.info.name.clone(),
                found,
            });
        }
        self.cert_pem = cert_pem;
        Ok(())
    }
}

/// A device key pair generated locally, before the device has a certificate.
pub struct DeviceKey(KeyPair);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeviceKey").field(&self.id()).finish()
    }
}

impl DeviceKey {
    /// A fresh ECDSA P-256 key pair.
    pub fn generate() -> Result<Self, IdentityError> {
        Ok(Self(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?))
    }

    /// The id this key gives its device.
    pub fn id(&self) -> DeviceId {
        DeviceId::of_public_key(&self.0.public_key_der())
    }

    /// A CSR (PEM) for this key with CN = `name`.
    pub fn csr_pem(&self, name: &DeviceName) -> Result<String, IdentityError> {
        Ok(params_named(name.as_str())
            .serialize_request(&self.0)?
            .pem()?)
    }

    /// Checks that `cert_pem` certifies this key.
    pub fn check_cert(&self, cert_pem: &str) -> Result<(), IdentityError> {
        cert_holds_key(cert_pem, &self.0.public_key_der())
    }

    /// Becomes a device once its certificate is known.
    pub fn into_device(self, info: DeviceInfo, cert_pem: String, ca_cert_pem: String) -> Device {
        Device {
            info,
            key: self.0,
            cert_pem,
            ca_cert_pem,
        }
    }
}

/// A new fabric: its CA and its first device, certified by it.
#[derive(Debug)]
pub struct Fabric {
    pub ca: CaMaterial,
    pub device: Device,
}

impl Fabric {
    /// Creates a fabric with a fresh CA and a first device called `name`, whose
    /// certificate is valid for `validity`.
    pub fn create(name: &DeviceName, validity: Duration) -> Result<Self, IdentityError> {
        let ca = CaMaterial::generate()?;
        let key = DeviceKey::generate()?;
        let signed = ca.sign(&key.csr_pem(name)?, name, validity)?;
        let info = DeviceInfo {
            name: name.clone(),
            id: signed.id,
            fabric: ca.fabric,
        };
        let device = key.into_device(info, signed.cert_pem, ca.cert_pem.clone());
        Ok(Self { ca, device })
    }
}

/// Checks that the device certificate `cert_pem` certifies the public key `spki_der`.
fn cert_holds_key(cert_pem: &str, spki_der: &[u8]) -> Result<(), IdentityError> {
    let der = pem_der(cert_pem, "the device certificate")?;
    let cert = parse_cert(&der, "the device certificate")?;
    if cert.public_key().raw != spki_der {
        return Err(IdentityError::DeviceKeyMismatch);
    }
    Ok(())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// `N` bytes from the system's secure random generator.
pub fn random<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut out = [0; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| IdentityError::Random)?;
    Ok(out)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The CA's common name for `fabric`.
fn ca_common_name(fabric: FabricId) -> String {
    format!("weft fabric {fabric}")
}

/// Everything of the CA's certificate that a device certificate's issuer fields derive
/// from (subject, key usages, key identifier method). Validity and serial are set by
/// [`CaMaterial::generate`] only; signing does not use them.
fn ca_params(fabric: FabricId) -> CertificateParams {
    let mut params = params_named(&ca_common_name(fabric));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Certificate parameters whose subject is exactly `CN=<common_name>`.
fn params_named(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

/// A random positive serial number of 16 bytes.
fn random_serial() -> Result<SerialNumber, IdentityError> {
    let mut bytes: [u8; 16] = random()?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

enum Sign {
    Plus(Duration),
    Minus(Duration),
}

/// `now` moved by `offset`, as a certificate time.
fn cert_time(now: SystemTime, offset: Sign) -> Result<time::OffsetDateTime, IdentityError> {
    let moved = match offset {
        Sign::Plus(by) => now.checked_add(by),
        Sign::Minus(by) => now.checked_sub(by),
    }
    .ok_or(IdentityError::Clock)?;
    let secs = moved
        .duration_since(UNIX_EPOCH)
        .map_err(|_| IdentityError::Clock)?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| IdentityError::Clock)?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| IdentityError::Clock)
}

/// An ECDSA P-256 public key taken from someone's SubjectPublicKeyInfo, for rcgen to
/// certify.
struct P256PublicKey {
    point: Vec<u8>,
}

impl P256PublicKey {
    fn from_spki(
        spki: &SubjectPublicKeyInfo<'_>,
        what: &'static str,
    ) -> Result<Self, IdentityError> {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|params| params.as_oid().ok());
        if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_EC_P256) {
            return Err(IdentityError::KeyAlgorithm { what });
        }
        Ok(Self {
            point: spki.subject_public_key.data.to_vec(),
        })
    }
}

impl PublicKeyData for P256PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_fabric_certifies_its_first_device() {
        let name = DeviceName::new("alpha").unwrap();
        let fabric = Fabric::create(&name, DEFAULT_VALIDITY).unwrap();
        let device = &fabric.device;
        verify_issued_by(device.cert_pem(), fabric.ca.cert_pem()).unwrap();

        let summary = CertSummary::of_pem(device.cert_pem()).unwrap();
        assert_eq!(summary.common_name, "alpha");
        assert_eq!(summary.dns_names, ["alpha"]);
        assert_eq!(device.info().id, DeviceId::of_public_key(&summary.spki_der));
        let expected_end = now_unix() + DEFAULT_VALIDITY.as_secs();
        assert!(summary.not_after_unix.abs_diff(expected_end as i64) < 60);

        let ca = CertSummary::of_pem(fabric.ca.cert_pem()).unwrap();
        assert_eq!(
            ca.common_name,
            format!("weft fabric {}", fabric.ca.fabric())
        );
    }

    #[test]
    fn ca_material_reloads_and_refuses_a_foreign_key() {
        let name = DeviceName::new("alpha").unwrap();
        let fabric = Fabric::create(&name, DEFAULT_VALIDITY).unwrap();
        let ca = &fabric.ca;
        let reloaded =
            CaMaterial::from_pem(ca.fabric(), ca.cert_pem().to_owned(), &ca.key_pem()).unwrap();
        let key = DeviceKey::generate().unwrap();
        let signed = reloaded
            .sign(&key.csr_pem(&name).unwrap(), &name, DEFAULT_VALIDITY)
            .unwrap();
        verify_issued_by(&signed.cert_pem, ca.cert_pem()).unwrap();
        key.check_cert(&signed.cert_pem).unwrap();
        assert_eq!(signed.id, key.id());

        let other = Fabric::create(&name, DEFAULT_VALIDITY).unwrap();
        assert!(matches!(
            CaMaterial::from_pem(ca.fabric(), ca.cert_pem().to_owned(), &other.ca.key_pem()),
            Err(IdentityError::CaKeyMismatch)
        ));
        assert!(matches!(
            CaMaterial::from_pem(other.ca.fabric(), ca.cert_pem().to_owned(), &ca.key_pem()),
            Err(IdentityError::CaSubject { .. })
        ));
        assert!(verify_issued_by(&signed.cert_pem, other.ca.cert_pem()).is_err());
    }

    #[test]
    fn a_validity_is_a_number_of_seconds_in_range() {
        assert_eq!(parse_validity("40").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_validity(" 10\n").unwrap(), MIN_VALIDITY);
        for bad in ["", "9", "-40", "4e1", "forty", "31536001"] {
            assert!(
                matches!(parse_validity(bad), Err(IdentityError::Validity { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_refuses_a_tampered_csr() {
        let name = DeviceName::new("alpha").unwrap();
        let fabric = Fabric::create(&name, DEFAULT_VALIDITY).unwrap();
        let csr = DeviceKey::generate().unwrap().csr_pem(&name).unwrap();
        let der = pem_der(&csr, "csr").unwrap();
        let mut tampered = der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", tampered));
        assert!(
            fabric
                .ca
                .sign(&tampered_pem, &name, DEFAULT_VALIDITY)
                .is_err()
        );
        assert!(matches!(
            fabric.ca.sign("not pem", &name, DEFAULT_VALIDITY),
            Err(IdentityError::Pem { .. })
        ));
    }
}
