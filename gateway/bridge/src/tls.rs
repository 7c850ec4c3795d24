//! TLS to the upstream (rustls, ring provider): the server is verified against the CA file
//! of `[[bridge]] tls`, and a client certificate is presented for mTLS when one is set.

use std::path::PathBuf;
use std::sync::Arc;

use roost_mqtt::pem;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) the upstream's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate chain and key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify the upstream's certificate against; default: the host of `address`.
    pub server_name: Option<String>,
}

/// Builds the connector from the files (read at every attempt, so a fixed file is picked
/// up on the next reconnect).
pub fn connector(s: &TlsSettings) -> Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = pem::root_store(&s.ca_file)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let chain = pem::certificates(cert)?;
            let key = pem::private_key(key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls: cert_file and key_file go together".into()),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The TLS handshake over an open TCP stream.
pub async fn handshake(s: &TlsSettings, address: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let connector = connector(s)?;
    let host = s
        .server_name
        .clone()
        .unwrap_or_else(|| address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']).to_string());
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("tls server name {host:?}: {e}"))?;
    connector.connect(name, tcp).await.map_err(|e| format!("TLS handshake with {address}: {e}"))
}
