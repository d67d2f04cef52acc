//! The rustls server configuration built from `tls_server_config`: certificate and key, the
//! client certificate policy (the exporter toolkit's five, after Go's `tls.ClientAuthType`) and
//! the TLS versions. The crypto provider is `ring`, the one the env0 client already uses.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Which client certificates are asked for, required and verified (Go's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// None asked for.
    NoClientCert,
    /// Asked for; none required, any accepted unverified.
    RequestClientCert,
    /// Required; any accepted unverified.
    RequireAnyClientCert,
    /// Asked for; one given must chain to the client CA.
    VerifyClientCertIfGiven,
    /// Required, and must chain to the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// The policy of a `client_auth_type` value (`RequireClientCert` is the toolkit's old name
    /// for `RequireAnyClientCert`).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return None,
        })
    }
}

/// A TLS version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// The version of a `min_version`/`max_version` value.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "TLS12" => Some(Self::Tls12),
            "TLS13" => Some(Self::Tls13),
            _ => None,
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            Self::Tls12 => &rustls::version::TLS12,
            Self::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// The PEM bytes of `pem`: the file's contents or the inline text.
fn pem_bytes(pem: &Pem) -> Result<Vec<u8>, String> {
    match pem {
        Pem::Inline(bytes) => Ok(bytes.clone()),
        Pem::File(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
    }
}

/// Where a PEM came from, for messages: the file, or "inline".
fn origin(pem: &Pem) -> String {
    match pem {
        Pem::File(path) => path.display().to_string(),
        Pem::Inline(_) => "the inline value".to_owned(),
    }
}

fn certificates(pem: &Pem, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = pem_bytes(pem).map_err(|e| format!("tls_server_config.{key}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.{key}: {} is not PEM: {e}", origin(pem)))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.{key}: no certificate in {}",
            origin(pem)
        ));
    }
    Ok(certs)
}

/// Builds the server configuration; the message names the key at fault.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert_pem, cert_key) = &settings.cert;
    let (key_pem, key_key) = &settings.key;
    let chain = certificates(cert_pem, cert_key)?;
    let key_bytes = pem_bytes(key_pem).map_err(|e| format!("tls_server_config.{key_key}: {e}"))?;
    // The key's own text never goes into a message.
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| {
        format!(
            "tls_server_config.{key_key}: no PEM private key in {}",
            origin(key_pem)
        )
    })?;
    let verifier = client_verifier(settings, &provider)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| (settings.min_version..=settings.max_version).contains(v))
            .map(TlsVersion::rustls)
            .collect();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config.min_version: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!("tls_server_config.{key_key}: does not fit {cert_key} or cannot be used: {e}")
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let any = |mandatory| -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        })
    };
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let Some((pem, key)) = &settings.client_ca else {
            return Err(
                "tls_server_config.client_ca_file: required to verify client certificates"
                    .to_owned(),
            );
        };
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates(pem, key)?);
        if added == 0 {
            return Err(format!(
                "tls_server_config.{key}: no usable CA certificate in {}",
                origin(pem)
            ));
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("tls_server_config.{key}: {e}"))
    };
    Ok(match settings.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert => any(false),
        ClientAuth::RequireAnyClientCert => any(true),
        ClientAuth::VerifyClientCertIfGiven => verified(true)?,
        ClientAuth::RequireAndVerifyClientCert => verified(false)?,
    })
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is taken without checking
/// who issued it (as in Go); the client must still prove it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
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

/// PEM text: in a file, or written into the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pem {
    /// A file, its path made absolute against the configuration's folder.
    File(PathBuf),
    /// Inline text (a key written inline is as secret as the file would be: never printed).
    Inline(Vec<u8>),
}

/// `tls_server_config`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// The server's certificate chain, and the key names for errors.
    pub(crate) cert: (Pem, &'static str),
    /// Its private key.
    pub(crate) key: (Pem, &'static str),
    /// The CAs client certificates are checked against.
    pub(crate) client_ca: Option<(Pem, &'static str)>,
    /// Whether a client certificate is asked for, required and verified.
    pub(crate) client_auth: ClientAuth,
    /// Oldest TLS version accepted.
    pub(crate) min_version: TlsVersion,
    /// Newest TLS version accepted.
    pub(crate) max_version: TlsVersion,
}
