//! The simulator's own PKI and TLS, made fresh at every start as kind and kubeadm make theirs: a
//! cluster CA, a serving certificate for the loopback names, and client certificates (CN = user,
//! O = groups) for the kubeconfigs it writes. Like kube-apiserver, the handshake asks for a client
//! certificate but does not require one; a certificate that does not chain to the cluster CA is
//! not a handshake failure but a 401 at the request, after the x509 authenticator looked at it.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::DistinguishedName as HintName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::rbac::UserInfo;

/// Which serving certificate the simulator presents (the broken ones exist so tests can prove the
/// client names each failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServingCert {
    /// Valid for 127.0.0.1, ::1 and localhost, signed by the cluster CA.
    #[default]
    Valid,
    /// Signed by the cluster CA but expired in 2001.
    Expired,
    /// Signed by the cluster CA but only for `kubernetes.invalid`.
    WrongHost,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make the simulator's certificates: {0}")]
pub struct PkiError(String);

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError(e.to_string())
}

/// The cluster CA and what it signed.
pub struct Pki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

/// A client certificate and its key, both PEM.
#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn dn(common_name: &str, organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    pub fn new(serving: ServingCert) -> Result<Pki, PkiError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.distinguished_name = dn("k8s-upgrade-simulator-ca", &[]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.not_before = date_time_ymd(2000, 1, 1);
        ca_params.not_after = date_time_ymd(2099, 12, 31);
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let ca_pem = ca_cert.pem();

        let names: Vec<String> = match serving {
            ServingCert::WrongHost => vec!["kubernetes.invalid".into()],
            _ => ["127.0.0.1", "::1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let mut params = CertificateParams::new(names).map_err(err)?;
        params.distinguished_name = dn("kube-apiserver", &[]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        if serving == ServingCert::Expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        } else {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2099, 12, 31);
        }
        let key = KeyPair::generate().map_err(err)?;
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(err)?;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).map_err(err)?;
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().map_err(err)?;
        let handshake_verifier = Arc::new(AnyClientCert { inner: client_verifier.clone() });
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(handshake_verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(err)?;
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Pki { ca_params, ca_key, ca_pem, server_config: Arc::new(server_config), client_verifier })
    }

    /// The cluster CA in PEM, for `certificate-authority-data`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate for `user` in `groups` (at most one: the certificate library writes one
    /// organisation per subject), signed by the cluster CA.
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<ClientCert, PkiError> {
        if groups.len() > 1 {
            return Err(PkiError(format!(
                "a client certificate for '{user}' can carry one group, not {}; give the user a token instead",
                groups.len()
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name = dn(user, groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2099, 12, 31);
        let key = KeyPair::generate().map_err(err)?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The user a client certificate names, when it chains to the cluster CA; `Err` when a
    /// certificate was presented that does not (a 401, as kube-apiserver answers it).
    pub fn authenticate(&self, chain: &[CertificateDer<'_>]) -> Result<UserInfo, String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.client_verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| format!("client certificate: {e}"))?;
        user_of(leaf)
    }
}

/// CN = user name, every O = a group, as the x509 authenticator reads a client certificate.
fn user_of(cert: &CertificateDer<'_>) -> Result<UserInfo, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("client certificate: {e}"))?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|n| !n.is_empty())
        .ok_or("client certificate has no common name")?
        .to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Ok(UserInfo { name, groups })
}

/// Accepts any client certificate whose holder proves its key in the handshake; whether it chains
/// to the cluster CA is decided per request ([`Pki::authenticate`]), as kube-apiserver does.
#[derive(Debug)]
struct AnyClientCert {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[HintName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_name_user_and_groups_and_foreign_ones_are_refused() {
        let pki = Pki::new(ServingCert::Valid).unwrap();
        assert!(pki.issue_client("alice", &["team-a".into(), "ops".into()]).is_err());
        let c = pki.issue_client("alice", &["ops".into()]).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        let user = pki.authenticate(&[der]).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["ops".to_string()]);

        let other = Pki::new(ServingCert::Valid).unwrap();
        let foreign = other.issue_client("mallory", &["system:masters".into()]).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(foreign.cert_pem.as_bytes()).unwrap();
        assert!(pki.authenticate(&[der]).is_err());
    }
}
