//! The [`Backend`] on the `dtls` crate (0.17, the continuation of `webrtc-dtls`): its
//! record layer and handshake, run over our [`PeerChannel`] instead of its listener.
//! PSK (TLS_PSK_WITH_AES_128_CCM_8 first) maps each identity to a username; certificates
//! (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 / AES_128_GCM) optionally verify the client's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ::dtls::cipher_suite::CipherSuiteId;
use ::dtls::config::{ClientAuthType, Config, ExtendedMasterSecretType};
use ::dtls::conn::DTLSConn;
use tokio::sync::Mutex;
use webrtc_util::Conn;

use super::{Backend, DtlsSettings, PeerChannel, Secured};

/// PSK identity -> (key, username).
type PskTable = HashMap<Vec<u8>, (Vec<u8>, String)>;

pub struct WebrtcBackend {
    psk: Arc<PskTable>,
    certificate: Option<::dtls::crypto::Certificate>,
    client_cas: Option<rustls::RootCertStore>,
}

impl WebrtcBackend {
    pub fn new(s: &DtlsSettings) -> Result<WebrtcBackend, String> {
        let psk = s
            .psk
            .iter()
            .map(|e| (e.identity.as_bytes().to_vec(), (e.key.clone(), e.username.clone())))
            .collect();
        let certificate = match (&s.cert_file, &s.key_file) {
            (Some(c), Some(k)) => {
                let cert = std::fs::read_to_string(c).map_err(|e| format!("{c}: {e}"))?;
                let key = std::fs::read_to_string(k).map_err(|e| format!("{k}: {e}"))?;
                if !key.contains("-----BEGIN PRIVATE KEY-----") {
                    return Err(format!("{k}: expected a PKCS#8 PEM key (BEGIN PRIVATE KEY; convert with `openssl pkcs8 -topk8 -nocrypt`)"));
                }
                // The crate reads its own tag for a PKCS#8 key.
                let key = key.replace("PRIVATE KEY-----", "PRIVATE_KEY-----");
                let pem = format!("{key}\n{cert}");
                Some(::dtls::crypto::Certificate::from_pem(&pem).map_err(|e| format!("{c} / {k}: {e}"))?)
            }
            (None, None) => None,
            _ => return Err("cert_file and key_file go together".into()),
        };
        let client_cas = match &s.ca_file {
            Some(f) => {
                let pem = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                let mut store = rustls::RootCertStore::empty();
                for cert in rustls_pemfile_certs(&pem) {
                    store.add(cert).map_err(|e| format!("{f}: {e}"))?;
                }
                Some(store)
            }
            None => None,
        };
        Ok(WebrtcBackend { psk: Arc::new(psk), certificate, client_cas })
    }

    fn psk_config(&self) -> Config {
        let table = self.psk.clone();
        Config {
            psk: Some(Arc::new(move |identity: &[u8]| {
                let key = table.get(identity).map(|(k, _)| k.clone());
                Box::pin(async move { key.ok_or_else(|| ::dtls::Error::Other("unknown PSK identity".into())) })
            })),
            psk_identity_hint: Some(b"roost".to_vec()),
            cipher_suites: vec![
                CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
                CipherSuiteId::Tls_Psk_With_Aes_128_Ccm,
                CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
            ],
            extended_master_secret: ExtendedMasterSecretType::Request,
            ..Config::default()
        }
    }

    fn cert_config(&self) -> Option<Config> {
        let cert = self.certificate.clone()?;
        let (client_auth, client_cas) = match &self.client_cas {
            Some(cas) => (ClientAuthType::RequireAndVerifyClientCert, cas.clone()),
            None => (ClientAuthType::NoClientCert, rustls::RootCertStore::empty()),
        };
        Some(Config {
            certificates: vec![cert],
            cipher_suites: vec![
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            ],
            client_auth,
            client_cas,
            extended_master_secret: ExtendedMasterSecretType::Request,
            ..Config::default()
        })
    }
}

/// Certificates from a PEM file (every CERTIFICATE block).
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

#[async_trait::async_trait]
impl Backend for WebrtcBackend {
    async fn accept(&self, channel: PeerChannel, psk_offered: bool) -> Result<Box<dyn Secured>, String> {
        let config = if psk_offered && !self.psk.is_empty() {
            self.psk_config()
        } else if let Some(c) = self.cert_config() {
            c
        } else if !self.psk.is_empty() {
            self.psk_config()
        } else {
            return Err("no DTLS credentials configured".into());
        };
        let psk = config.psk.is_some();
        let local = channel.socket.local_addr().map_err(|e| e.to_string())?;
        let conn: Arc<dyn Conn + Send + Sync> = Arc::new(ChannelConn {
            rx: Mutex::new(channel.rx),
            socket: channel.socket,
            peer: channel.peer,
            local,
        });
        let dtls = DTLSConn::new(conn, config, false, None).await.map_err(|e| e.to_string())?;
        let username = if psk {
            let identity = dtls.connection_state().await.identity_hint;
            self.psk.get(&identity).map(|(_, user)| user.clone())
        } else {
            None
        };
        Ok(Box::new(WebrtcSecured { conn: dtls, username }))
    }
}

struct WebrtcSecured {
    conn: DTLSConn,
    username: Option<String>,
}

#[async_trait::async_trait]
impl Secured for WebrtcSecured {
    async fn read(&self, buf: &mut [u8]) -> Option<usize> {
        self.conn.read(buf, None).await.ok()
    }

    async fn write(&self, bytes: &[u8]) -> bool {
        self.conn.write(bytes, None).await.is_ok()
    }

    async fn close(&self) {
        let _ = self.conn.close().await;
    }

    fn username(&self) -> Option<String> {
        self.username.clone()
    }
}

/// One peer's records as a `webrtc_util::Conn`: reads from the dispatcher's channel,
/// writes to the shared socket.
struct ChannelConn {
    rx: Mutex<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    socket: Arc<tokio::net::UdpSocket>,
    peer: SocketAddr,
    local: SocketAddr,
}

fn closed() -> webrtc_util::Error {
    webrtc_util::Error::Other("DTLS peer channel closed".into())
}

#[async_trait::async_trait]
impl Conn for ChannelConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        let d = self.rx.lock().await.recv().await.ok_or_else(closed)?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        Ok((self.recv(buf).await?, self.peer))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.socket.send_to(buf, self.peer).await.map_err(|e| webrtc_util::Error::Other(e.to_string()))
    }

    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        self.send(buf).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.rx.lock().await.close();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
