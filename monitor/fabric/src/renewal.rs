//! Renewing device certificates before they expire (PROTOCOL.md §16.6).
//!
//! Device certificates are short-lived ([`crate::identity::DEFAULT_VALIDITY`]), since
//! Zenoh's TLS has no revocation list. Each daemon renews its own certificate once less
//! than a third of its validity is left ([`renewal_due`]): it sends a CSR for its existing
//! key (the key itself never leaves it) to a device that holds the fabric's CA key, in a
//! [`Request::Renew`](crate::wire::Request::Renew) call, and that device signs it after
//! [`sign_renewal`]'s checks.
//!
//! Invariants: a renewal never changes a device's name or key; only a member (known and
//! not removed) is renewed, and only for the key the signer has on record for it: the
//! registry's `key` (the whole SHA-256 of the public key, recorded at admission) or, for
//! an entry recorded without one, its id (the first 8 bytes of that hash).

use crate::identity::{
    CLOCK_SKEW, CaMaterial, CertSummary, CheckedCsr, DeviceId, DeviceName, IdentityError,
    NameError, SignedCert, sha256, to_hex,
};
use crate::registry::Registry;
use std::time::Duration;

/// Why a renewal was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("the renewal's certificate signing request was refused: {0}")]
    Csr(#[source] IdentityError),
    #[error("the renewal's certificate signing request names no device")]
    NoName,
    #[error("the renewal's certificate signing request names {name:?}: {source}")]
    BadName { name: String, source: NameError },
    #[error("device {name} is not known in this fabric")]
    Unknown { name: DeviceName },
    #[error("device {name} was removed from the fabric")]
    Removed { name: DeviceName },
    #[error("the key of the renewal's request is not device {name}'s key")]
    KeyMismatch { name: DeviceName },
    #[error("signing the renewed certificate failed: {0}")]
    Sign(#[source] IdentityError),
}

/// The hex of the whole SHA-256 of a public key (SubjectPublicKeyInfo DER): what a
/// registry entry's `key` holds. Its first 16 digits are the device's id.
pub fn key_fingerprint(spki_der: &[u8]) -> String {
    to_hex(&sha256(spki_der))
}

/// Signs a renewal: `csr_pem` must verify (the requester holds the key), name in its CN a
/// member of `registry` (known, not removed), and hold that member's recorded key. The
/// certificate has the same name and key, valid for `validity` from now.
pub fn sign_renewal(
    ca: &CaMaterial,
    registry: &Registry,
    csr_pem: &str,
    validity: Duration,
) -> Result<SignedCert, RenewError> {
    let csr = CheckedCsr::parse(csr_pem).map_err(RenewError::Csr)?;
    let text = csr.common_name.as_deref().ok_or(RenewError::NoName)?;
    let name = DeviceName::new(text).map_err(|source| RenewError::BadName {
        name: text.to_owned(),
        source,
    })?;
    let entry = registry
        .get(name.as_str())
        .ok_or_else(|| RenewError::Unknown { name: name.clone() })?;
    if entry.removed {
        return Err(RenewError::Removed { name });
    }
    let holds_key = match &entry.key {
        Some(key) => *key == key_fingerprint(&csr.spki_der),
        None => entry.id == DeviceId::of_public_key(&csr.spki_der).to_string(),
    };
    if !holds_key {
        return Err(RenewError::KeyMismatch { name });
    }
    ca.sign_checked(&csr, &name, validity)
        .map_err(RenewError::Sign)
}

/// When the certificate `cert` is due for renewal, in seconds since the Unix epoch: once
/// two thirds of its validity have passed. Its validity is counted from its issue (its
/// `not_before` plus the clock skew every device certificate starts back by).
pub fn renewal_due(cert: &CertSummary) -> i64 {
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0);
    let issued = cert
        .not_before_unix
        .saturating_add(skew)
        .min(cert.not_after_unix);
    let validity = cert.not_after_unix.saturating_sub(issued);
    cert.not_after_unix.saturating_sub(validity / 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DEFAULT_VALIDITY, Device, DeviceInfo, DeviceKey, Fabric, now_unix};
    use crate::wire::Known;

    fn name(text: &str) -> DeviceName {
        DeviceName::new(text).unwrap()
    }

    /// A fabric whose CA paired device "b", with its registry (b's key recorded).
    struct Paired {
        fabric: Fabric,
        b: Device,
        registry: Registry,
    }

    fn paired(validity: Duration) -> Paired {
        let fabric = Fabric::create(&name("a"), DEFAULT_VALIDITY).unwrap();
        let key = DeviceKey::generate().unwrap();
        let signed = fabric
            .ca
            .sign(&key.csr_pem(&name("b")).unwrap(), &name("b"), validity)
            .unwrap();
        let spki = CertSummary::of_pem(&signed.cert_pem).unwrap().spki_der;
        let registry = Registry::from_list(vec![Known {
            name: "b".into(),
            id: signed.id.to_string(),
            addresses: vec![],
            removed: false,
            key: Some(key_fingerprint(&spki)),
        }]);
        let info = DeviceInfo {
            name: name("b"),
            id: signed.id,
            fabric: fabric.ca.fabric(),
        };
        let b = key.into_device(info, signed.cert_pem, fabric.ca.cert_pem().to_owned());
        Paired {
            fabric,
            b,
            registry,
        }
    }

    #[test]
    fn a_good_request_renews_the_same_name_and_key_for_longer() {
        let Paired {
            fabric,
            mut b,
            registry,
        } = paired(Duration::from_secs(60));
        let old = CertSummary::of_pem(b.cert_pem()).unwrap();
        let csr = b.csr_pem().unwrap();
        let signed = sign_renewal(&fabric.ca, &registry, &csr, Duration::from_secs(3600)).unwrap();
        let new = CertSummary::of_pem(&signed.cert_pem).unwrap();
        assert_eq!(signed.id, b.info().id);
        assert_eq!(new.spki_der, old.spki_der);
        assert_eq!(
            (new.common_name.as_str(), &new.dns_names[..]),
            ("b", &["b".to_string()][..])
        );
        assert!(
            new.not_after_unix >= old.not_after_unix + 3000,
            "{new:?} {old:?}"
        );
        b.replace_cert(signed.cert_pem.clone()).unwrap();
        assert_eq!(b.cert_pem(), signed.cert_pem);
    }

    #[test]
    fn a_request_for_another_key_is_refused() {
        let Paired {
            fabric, registry, ..
        } = paired(DEFAULT_VALIDITY);
        // A key of the attacker's own, asking for b's name.
        let csr = DeviceKey::generate().unwrap().csr_pem(&name("b")).unwrap();
        let refused = sign_renewal(&fabric.ca, &registry, &csr, DEFAULT_VALIDITY);
        assert!(
            matches!(refused, Err(RenewError::KeyMismatch { .. })),
            "{refused:?}"
        );
        // Without a recorded key, the id still tells them apart.
        let mut entry = registry.get("b").unwrap().clone();
        entry.key = None;
        let by_id = Registry::from_list(vec![entry]);
        let refused = sign_renewal(&fabric.ca, &by_id, &csr, DEFAULT_VALIDITY);
        assert!(
            matches!(refused, Err(RenewError::KeyMismatch { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn removed_unknown_and_unnamed_devices_are_refused() {
        let Paired {
            fabric,
            b,
            mut registry,
        } = paired(DEFAULT_VALIDITY);
        let csr = b.csr_pem().unwrap();
        assert!(registry.remove("b"));
        let refused = sign_renewal(&fabric.ca, &registry, &csr, DEFAULT_VALIDITY);
        assert!(
            matches!(refused, Err(RenewError::Removed { .. })),
            "{refused:?}"
        );

        let refused = sign_renewal(&fabric.ca, &Registry::default(), &csr, DEFAULT_VALIDITY);
        assert!(
            matches!(refused, Err(RenewError::Unknown { .. })),
            "{refused:?}"
        );

        let csr_of = |params: rcgen::CertificateParams| {
            let key = rcgen::KeyPair::generate().unwrap();
            params.serialize_request(&key).unwrap().pem().unwrap()
        };
        let mut unnamed = rcgen::CertificateParams::default();
        unnamed.distinguished_name = rcgen::DistinguishedName::new();
        let refused = sign_renewal(&fabric.ca, &registry, &csr_of(unnamed), DEFAULT_VALIDITY);
        assert!(matches!(refused, Err(RenewError::NoName)), "{refused:?}");
        // rcgen's default subject, "rcgen self signed cert", is no device name.
        let default = csr_of(rcgen::CertificateParams::default());
        let refused = sign_renewal(&fabric.ca, &registry, &default, DEFAULT_VALIDITY);
        assert!(
            matches!(refused, Err(RenewError::BadName { .. })),
            "{refused:?}"
        );
        let refused = sign_renewal(&fabric.ca, &registry, "garbage", DEFAULT_VALIDITY);
        assert!(matches!(refused, Err(RenewError::Csr(_))), "{refused:?}");
    }

    #[test]
    fn a_certificate_is_due_when_a_third_of_its_validity_is_left() {
        let Paired { b, .. } = paired(Duration::from_secs(3000));
        let cert = CertSummary::of_pem(b.cert_pem()).unwrap();
        let issued = now_unix() as i64;
        let due = renewal_due(&cert);
        assert!(
            due.abs_diff(issued + 2000) <= 2,
            "due {due}, issued {issued}"
        );
        let expired = CertSummary {
            not_before_unix: 100,
            not_after_unix: 50,
            ..cert
        };
        assert_eq!(renewal_due(&expired), 50);
    }

    #[test]
    fn a_certificate_of_another_name_or_ca_does_not_replace_the_device_s() {
        let Paired {
            fabric,
            mut b,
            registry,
        } = paired(DEFAULT_VALIDITY);
        let before = b.cert_pem().to_owned();
        // Same key, another name.
        let other = fabric
            .ca
            .sign(&b.csr_pem().unwrap(), &name("c"), DEFAULT_VALIDITY)
            .unwrap();
        assert!(matches!(
            b.replace_cert(other.cert_pem),
            Err(IdentityError::WrongName { .. })
        ));
        // Same name and key, another fabric's CA.
        let stranger = Fabric::create(&name("a"), DEFAULT_VALIDITY).unwrap();
        let foreign = sign_renewal(
            &stranger.ca,
            &registry,
            &b.csr_pem().unwrap(),
            DEFAULT_VALIDITY,
        )
        .unwrap();
        assert!(matches!(
            b.replace_cert(foreign.cert_pem),
            Err(IdentityError::NotIssuedByCa)
        ));
        // Another key.
        let key = DeviceKey::generate().unwrap();
        let theirs = fabric
            .ca
            .sign(
                &key.csr_pem(&name("b")).unwrap(),
                &name("b"),
                DEFAULT_VALIDITY,
            )
            .unwrap();
        assert!(matches!(
            b.replace_cert(theirs.cert_pem),
            Err(IdentityError::DeviceKeyMismatch)
        ));
        assert_eq!(b.cert_pem(), before);
    }
}
