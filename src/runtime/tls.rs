//! AutoMTLS: the plugin's throw-away identity and the pinned verifiers.
//!
//! The host generates its own self-signed certificate per plugin process and
//! passes it in `PLUGIN_CLIENT_CERT`; the plugin answers with its own in the
//! handshake line. Each side then trusts exactly the other's certificate, by
//! bytes. WebPKI verifiers cannot be used: the host's certificate is a CA
//! certificate used as an end entity, which webpki rejects.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName as TlsName, SignatureScheme,
};

use super::RuntimeError;

/// The crypto provider used for every TLS session of the plugin.
///
/// aws-lc-rs, because the host's certificate is ECDSA P-521 and ring cannot
/// verify P-521 signatures (the host then sends no client certificate at all).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as the process-wide default provider, for libraries
/// (reqwest) that look it up. Safe to call more than once.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The plugin's own key and self-signed certificate, fresh for each process.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// Creates a certificate the host accepts: SAN `localhost` (the host dials
    /// with that server name) and EKU server+client (the same certificate
    /// authenticates the plugin when it dials back through the broker).
    pub fn generate() -> Result<Self, RuntimeError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls_err)?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(tls_err)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "vault-plugin-secrets-litellm");
        name.push(DnType::CommonName, "localhost");
        params.distinguished_name = name;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        // Tolerate clock skew between the host and the plugin's first handshake.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(30);
        params.not_after = now + time::Duration::days(365 * 30);
        let cert = params.self_signed(&key).map_err(tls_err)?;
        Ok(Self {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Parses `PLUGIN_CLIENT_CERT`: one PEM certificate block.
pub fn parse_host_cert(pem: &str) -> Result<CertificateDer<'static>, RuntimeError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        RuntimeError::Tls(format!(
            "PLUGIN_CLIENT_CERT holds no usable PEM certificate: {e}"
        ))
    })
}

/// Trusts exactly one certificate, compared byte for byte, and checks the
/// handshake signatures with the provider's algorithms.
#[derive(Debug)]
pub struct PinnedPeer {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedPeer {
    pub fn new(pinned: CertificateDer<'static>) -> Self {
        Self {
            pinned,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.pinned.as_ref() {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ServerCertVerifier for PinnedPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedPeer {
    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS for the plugin's listener: present our certificate, demand the host's.
pub fn server_config(
    identity: &Identity,
    host_cert: &CertificateDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, RuntimeError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(Arc::new(PinnedPeer::new(host_cert.clone())))
        .with_single_cert(vec![identity.cert.clone()], identity.key())
        .map_err(tls_err)?;
    // grpc-go refuses a connection that did not negotiate h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// TLS for dialling the host's brokered services: the same identity, and the
/// host's certificate as the only trusted server.
pub fn client_config(
    identity: &Identity,
    host_cert: &CertificateDer<'static>,
) -> Result<Arc<rustls::ClientConfig>, RuntimeError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedPeer::new(host_cert.clone())))
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn tls_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tls(e.to_string())
}
