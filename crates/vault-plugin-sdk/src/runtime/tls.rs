//! AutoMTLS: the plugin's throw-away identity and the pinned verifiers.
//!
//! The host generates its own self-signed certificate per plugin process and
//! passes it in `PLUGIN_CLIENT_CERT`; the plugin answers with its own in the
//! handshake line. Each side then trusts exactly the other's certificate, by
//! bytes. WebPKI verifiers cannot be used: the host's certificate is a CA
//! certificate used as an end entity, which webpki rejects.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
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
    /// The certificate, sent to the host in the handshake line.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// Creates a certificate the host accepts: SAN `localhost` (the host dials
    /// with that server name) and EKU server+client (the same certificate
    /// authenticates the plugin when it dials back through the broker).
    ///
    /// ECDSA P-256: FIPS builds of Vault and OpenBao refuse Ed25519 peers.
    /// Key generation and the ECDSA signature draw on aws-lc's RNG before the
    /// handshake line; it is built without the CPU-jitter entropy source
    /// (`.cargo/config.toml`), whose first use would add ~25-50 ms here.
    pub fn generate() -> Result<Self, RuntimeError> {
        Self::self_signed(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls_err)?)
    }

    #[cfg(test)]
    fn generate_with(alg: &'static rcgen::SignatureAlgorithm) -> Result<Self, RuntimeError> {
        Self::self_signed(KeyPair::generate_for(alg).map_err(tls_err)?)
    }

    fn self_signed(key: KeyPair) -> Result<Self, RuntimeError> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(tls_err)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, super::plugin().name);
        name.push(DnType::CommonName, "localhost");
        params.distinguished_name = name;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
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
    /// Trusts `pinned` and nothing else.
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

/// The handshake-signature methods, the same in both roles: [`ServerCertVerifier`] and
/// [`ClientCertVerifier`] each declare them, so they are written once here and expanded in both
/// impls. They check with the provider's algorithms.
macro_rules! pinned_peer_signature_checks {
    () => {
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
    };
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

    pinned_peer_signature_checks!();
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

    pinned_peer_signature_checks!();
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    use x509_parser::prelude::*;

    use super::*;

    /// Stands in for the host: the same key type and curve Vault/OpenBao use.
    fn host_identity() -> Identity {
        Identity::generate_with(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap()
    }

    #[test]
    fn certificate_has_what_the_host_checks() {
        let id = Identity::generate().unwrap();
        let (_, cert) = X509Certificate::from_der(id.cert.as_ref()).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(san
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("localhost"))));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(
            eku.server_auth && eku.client_auth,
            "EKU must allow both: the broker dial reuses it"
        );
        let now = ASN1Time::now();
        assert!(cert.validity().not_before < now, "backdated for clock skew");
        assert!(cert.validity().not_after.timestamp() - now.timestamp() > 10 * 365 * 86_400);
        assert_ne!(
            Identity::generate().unwrap().cert,
            id.cert,
            "fresh per process"
        );
    }

    #[test]
    fn identity_is_ecdsa_p256_for_fips_servers() {
        let id = Identity::generate().unwrap();
        let (_, cert) = X509Certificate::from_der(id.cert.as_ref()).unwrap();
        let spki = cert.public_key();
        assert_eq!(
            spki.algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .unwrap();
        assert_eq!(curve, x509_parser::oid_registry::OID_EC_P256);
        assert_eq!(
            cert.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );
    }

    #[test]
    fn host_cert_pem_parses() {
        let host = host_identity();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                host.cert.as_ref()
            )
        );
        assert_eq!(parse_host_cert(&pem).unwrap(), host.cert);
        assert!(parse_host_cert("garbage").is_err());
    }

    /// A TLS session between a client identity and the plugin's listener.
    async fn handshake(
        plugin: &Identity,
        host_cert: &CertificateDer<'static>,
        client: &Identity,
    ) -> Result<String, String> {
        install_default_provider();
        let acceptor = TlsAcceptor::from(server_config(plugin, host_cert).unwrap());
        let connector = TlsConnector::from(client_config(client, &plugin.cert).unwrap());
        let (a, b) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.map_err(|e| e.to_string())?;
            let alpn = tls
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(alpn.unwrap_or_default())
        });
        let name = ServerName::try_from("localhost").unwrap();
        let client_result = async {
            let mut tls = connector
                .connect(name, b)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 2];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        }
        .await;
        let server_result = server.await.unwrap();
        client_result?;
        server_result
    }

    #[tokio::test]
    async fn the_pinned_p521_host_is_accepted_with_h2() {
        let plugin = Identity::generate().unwrap();
        let host = host_identity();
        assert_eq!(handshake(&plugin, &host.cert, &host).await.unwrap(), "h2");
    }

    #[tokio::test]
    async fn a_foreign_client_certificate_is_refused() {
        let plugin = Identity::generate().unwrap();
        let host = host_identity();
        let stranger = host_identity();
        let err = handshake(&plugin, &host.cert, &stranger).await.unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn the_provider_verifies_p521() {
        let schemes = ServerCertVerifier::supported_verify_schemes(&PinnedPeer::new(
            CertificateDer::from(vec![]),
        ));
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }
}
