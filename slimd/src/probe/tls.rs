//! TLS for HTTPS probes: a rustls client (ring provider, TLS 1.2 and 1.3,
//! ALPN `http/1.1`) that accepts any server certificate. The probe talks to
//! the app it just started on a local port, usually behind a self-signed or
//! otherwise unverifiable certificate; what it needs is the app's answer,
//! not proof of the server's identity. Handshake signatures are still
//! checked, so the session is a real TLS session with the key the
//! certificate names.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::spec::Endpoint;

/// The name sent as SNI: the app sees requests for `localhost:<port>` (see
/// [`super::http::host_header`]), so its certificate is most likely for
/// `localhost`; the name is not checked either way.
pub const SERVER_NAME: &str = "localhost";

/// Accepts every certificate chain; verifies handshake signatures with the
/// provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The probe's client configuration, built once.
fn connector() -> TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth();
        // hyper speaks HTTP/1.1 here; a server that insists on h2 fails the
        // handshake, which reads better than a garbled exchange.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    TlsConnector::from(config.clone())
}

/// Runs a TLS handshake on a connected stream. The error is text, prefixed
/// `tls handshake:`, because request failures are probe results.
pub async fn connect(stream: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
    connector()
        .connect(name, stream)
        .await
        .map_err(|e| format!("tls handshake: {e}"))
}

/// Whether `ep` completes a TLS handshake within `timeout`: how a port that
/// closes on plain HTTP shows it speaks HTTPS (for a check of which ports
/// to probe; the HTTP probe finds the scheme by itself).
pub async fn handshake(ep: &Endpoint, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect((ep.host.as_str(), ep.host_port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        connect(stream).await.map(drop)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no TLS handshake within {:.1}s", timeout.as_secs_f64()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_self_signed_server_completes_the_handshake_and_a_plain_one_does_not() {
        let key = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint::new("127.0.0.1", l.local_addr().unwrap().port(), 8443);
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let _ = acceptor.accept(s).await;
        });
        // Another name, not signed by anyone: accepted all the same.
        handshake(&ep, Duration::from_secs(5)).await.unwrap();

        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = Endpoint::new("127.0.0.1", l.local_addr().unwrap().port(), 8080);
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            drop(s);
        });
        let err = handshake(&plain, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.starts_with("tls handshake:"), "{err}");
    }
}
