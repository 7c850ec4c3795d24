//! The [`Backend`] on OpenSSL (the `openssl` crate, system libssl 3): DTLS 1.2 with PSK
//! (TLS_PSK_WITH_AES_128_CCM_8 first; each identity maps to a username) and certificates
//! (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 / AES_128_GCM; with a CA file, client certificates
//! are required and verified and their subject CN is the username).
//!
//! Each session runs over an in-memory [`PeerIo`]: the dispatcher's datagrams in, ours
//! out to the shared socket, one datagram per BIO read or write. The session takes the
//! ClientHello that returned our stateless cookie (see [`super::cookie`]) through
//! `DTLSv1_listen`, so OpenSSL continues the handshake at `message_seq` 1 with the cookie
//! it would have issued itself. OpenSSL adds what the `dtls` crate lacked: session
//! resumption and retransmission of lost flights.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use openssl::nid::Nid;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslStream,
    SslVerifyMode, SslVersion,
};
use roost_openssl_ffi::Listen;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::records::ClientHello;
use super::{Backend, DtlsSettings, PeerChannel, Secured};

/// Path MTU we assume for our records (IPv6 minimum minus headers, as CoAP does).
const MTU: u32 = 1152;
/// The largest plaintext record we send (OpenSSL's minimum is 512).
const MAX_SEND_FRAGMENT: u16 = 2048;
/// How often a stalled handshake checks OpenSSL's retransmission timer (1 s doubling).
const TIMER_TICK: Duration = Duration::from_millis(250);

/// TLS alert `decrypt_error`.
const DECRYPT_ERROR: u8 = 51;

const PSK_SUITES: &str = "PSK-AES128-CCM8:PSK-AES128-CCM:PSK-AES128-GCM-SHA256:PSK-AES128-CBC-SHA256";
const CERT_SUITES: &str = "ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-GCM-SHA256";

/// PSK identity -> (key, username).
type PskTable = HashMap<Vec<u8>, (Vec<u8>, String)>;

pub struct OpensslBackend {
    ctx: SslContext,
    psk: Arc<PskTable>,
}

/// The cookie the dispatcher already verified, for OpenSSL's verify callback.
fn cookie_index() -> Result<openssl::ex_data::Index<Ssl, Vec<u8>>, String> {
    static INDEX: OnceLock<Result<openssl::ex_data::Index<Ssl, Vec<u8>>, String>> = OnceLock::new();
    INDEX.get_or_init(|| Ssl::new_ex_index().map_err(|e| e.to_string())).clone()
}

impl OpensslBackend {
    pub fn new(s: &DtlsSettings) -> Result<OpensslBackend, String> {
        let psk: Arc<PskTable> = Arc::new(
            s.psk.iter().map(|e| (e.identity.as_bytes().to_vec(), (e.key.clone(), e.username.clone()))).collect(),
        );
        let err = |what: &str, e: openssl::error::ErrorStack| format!("{what}: {e}");
        let mut b = SslContextBuilder::new(SslMethod::dtls()).map_err(|e| err("OpenSSL DTLS context", e))?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2)).map_err(|e| err("DTLS 1.2", e))?;
        b.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE);
        b.set_mode(SslMode::RELEASE_BUFFERS);
        // A CoAP message over DTLS fits in MTU-sized records; a smaller write buffer per peer.
        if !roost_openssl_ffi::set_max_send_fragment(&mut b, MAX_SEND_FRAGMENT) {
            return Err("OpenSSL refused max_send_fragment".into());
        }
        b.set_session_id_context(b"roost-coaps").map_err(|e| err("session id context", e))?;
        let mut suites = Vec::new();
        if !psk.is_empty() {
            let table = psk.clone();
            b.set_psk_server_callback(move |_ssl, identity, out| {
                // Unknown identity: 0 bytes, and OpenSSL ends the handshake with an alert.
                let key = identity.and_then(|i| table.get(i)).map(|(k, _)| k.as_slice()).unwrap_or_default();
                if key.len() > out.len() {
                    return Ok(0);
                }
                out[..key.len()].copy_from_slice(key);
                Ok(key.len())
            });
            suites.push(PSK_SUITES);
        }
        match (&s.cert_file, &s.key_file) {
            (Some(c), Some(k)) => {
                b.set_certificate_chain_file(c).map_err(|e| err(c, e))?;
                b.set_private_key_file(k, SslFiletype::PEM).map_err(|e| err(k, e))?;
                b.check_private_key().map_err(|e| err(&format!("{c} / {k}"), e))?;
                suites.push(CERT_SUITES);
            }
            (None, None) => {}
            _ => return Err("cert_file and key_file go together".into()),
        }
        if suites.is_empty() {
            return Err("no DTLS credentials configured (PSK identities or a certificate)".into());
        }
        b.set_cipher_list(&suites.join(":")).map_err(|e| err("cipher suites", e))?;
        match &s.ca_file {
            Some(f) => {
                b.set_ca_file(f).map_err(|e| err(f, e))?;
                b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            }
            None => b.set_verify(SslVerifyMode::NONE),
        }
        let index = cookie_index()?;
        b.set_cookie_verify_cb(move |ssl, cookie| ssl.ex_data(index).is_some_and(|c| c.as_slice() == cookie));
        // Only for a ClientHello without a cookie, which the dispatcher never hands over.
        b.set_cookie_generate_cb(move |ssl, out| {
            let c = ssl.ex_data(index).map(Vec::as_slice).unwrap_or_default();
            let n = c.len().min(out.len());
            out[..n].copy_from_slice(&c[..n]);
            Ok(n)
        });
        Ok(OpensslBackend { ctx: b.build(), psk })
    }

    fn username(&self, ssl: &openssl::ssl::SslRef) -> Option<String> {
        if let Some(identity) = ssl.psk_identity() {
            return self.psk.get(identity).map(|(_, user)| user.clone());
        }
        let cert = ssl.peer_certificate()?;
        let cn = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
        String::from_utf8(cn.data().as_slice().to_vec()).ok()
    }
}

/// One peer's datagrams as OpenSSL's BIO: reads pop what the dispatcher delivered (or
/// would block), writes queue what we send next.
#[derive(Default)]
struct PeerIo {
    inbox: VecDeque<Bytes>,
    outbox: Vec<Bytes>,
}

impl Read for PeerIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let d = self.inbox.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Write for PeerIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push(Bytes::copy_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn send_all(socket: &UdpSocket, peer: SocketAddr, out: Vec<Bytes>) -> bool {
    for d in out {
        if let Err(e) = socket.send_to(&d, peer).await {
            tracing::debug!(%peer, "DTLS send: {e}");
            return false;
        }
    }
    true
}

fn describe(e: &openssl::ssl::Error) -> String {
    match e.ssl_error() {
        Some(stack) => {
            stack.errors().iter().map(|e| e.reason().unwrap_or("unknown").to_string()).collect::<Vec<_>>().join(", ")
        }
        None => e.to_string(),
    }
}

#[async_trait::async_trait]
impl Backend for OpensslBackend {
    async fn accept(&self, mut channel: PeerChannel, hello: &ClientHello) -> Result<Box<dyn Secured>, String> {
        let mut ssl = Ssl::new(&self.ctx).map_err(|e| e.to_string())?;
        ssl.set_mtu(MTU).map_err(|e| e.to_string())?;
        ssl.set_ex_data(cookie_index()?, hello.cookie.clone());
        ssl.set_accept_state();
        let mut stream = SslStream::new(ssl, PeerIo::default()).map_err(|e| e.to_string())?;
        let first = channel.rx.recv().await.ok_or("peer gone")?;
        stream.get_mut().inbox.push_back(first);
        match roost_openssl_ffi::listen(&mut stream) {
            Listen::Accepted => {}
            other => return Err(format!("OpenSSL did not take the cookie ClientHello over ({other:?})")),
        }
        let peer = channel.peer;
        // Datagrams with encrypted (epoch 1) records: the client's Finished. OpenSSL drops
        // one that does not decrypt without a word (RFC 6347 §4.1.2.7); when it comes a
        // second time (the client retransmits its flight) and the handshake is still not
        // done, its keys are not ours: a wrong PSK, refused now rather than at the timeout.
        let mut finished_seen = 0u32;
        loop {
            let r = stream.do_handshake();
            let out = std::mem::take(&mut stream.get_mut().outbox);
            send_all(&channel.socket, peer, out).await;
            match r {
                Ok(()) => break,
                Err(e) if e.code() == ErrorCode::WANT_READ => {
                    if finished_seen >= 2 {
                        let _ = channel.socket.send_to(&super::records::fatal_alert(DECRYPT_ERROR), peer).await;
                        let who =
                            stream.ssl().psk_identity().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                        return Err(format!(
                            "the client's Finished does not decrypt: wrong key for PSK identity {who:?}"
                        ));
                    }
                    match tokio::time::timeout(TIMER_TICK, channel.rx.recv()).await {
                        Ok(Some(d)) => {
                            if super::records::has_encrypted_record(&d) {
                                finished_seen += 1;
                            }
                            stream.get_mut().inbox.push_back(d);
                        }
                        Ok(None) => return Err("peer gone".into()),
                        // Our last flight may be lost: OpenSSL resends it when its timer is due.
                        Err(_) => {
                            roost_openssl_ffi::handle_timeout(&mut stream);
                        }
                    }
                }
                Err(e) => return Err(describe(&e)),
            }
        }
        let username = self.username(stream.ssl());
        Ok(Box::new(OpensslSecured {
            stream: parking_lot::Mutex::new(stream),
            rx: tokio::sync::Mutex::new(channel.rx),
            socket: channel.socket,
            peer,
            username,
        }))
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 65_536]);
}

struct OpensslSecured {
    stream: parking_lot::Mutex<SslStream<PeerIo>>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    username: Option<String>,
}

impl OpensslSecured {
    /// Runs `f` on the session and sends what it wrote (records, alerts, retransmissions).
    /// The record buffers exist only for the call: an idle device holds none (about 19 KB
    /// less per DTLS device). `None` when they cannot be allocated.
    async fn with<T>(&self, f: impl FnOnce(&mut SslStream<PeerIo>) -> T) -> Option<T> {
        let (r, out) = {
            let mut s = self.stream.lock();
            if !roost_openssl_ffi::alloc_buffers(&mut s) {
                tracing::warn!(peer = %self.peer, "DTLS: cannot allocate the record buffers");
                return None;
            }
            let r = f(&mut s);
            roost_openssl_ffi::free_buffers(&mut s);
            (r, std::mem::take(&mut s.get_mut().outbox))
        };
        send_all(&self.socket, self.peer, out).await;
        Some(r)
    }
}

#[async_trait::async_trait]
impl Secured for OpensslSecured {
    async fn read(&self) -> Option<Bytes> {
        let mut rx = self.rx.lock().await;
        loop {
            // Decrypted into one scratch buffer per thread and copied out at its size: an
            // idle peer holds no 64 KiB read buffer.
            let read = self
                .with(|s| SCRATCH.with_borrow_mut(|buf| s.ssl_read(buf).map(|n| Bytes::copy_from_slice(&buf[..n]))));
            match read.await? {
                Ok(d) => return Some(d),
                Err(e) if e.code() == ErrorCode::WANT_READ => {
                    let d = rx.recv().await?;
                    self.stream.lock().get_mut().inbox.push_back(d);
                }
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return None,
                Err(e) => {
                    tracing::debug!(peer = %self.peer, "DTLS read: {}", describe(&e));
                    return None;
                }
            }
        }
    }

    async fn write(&self, bytes: &[u8]) -> bool {
        self.with(|s| s.ssl_write(bytes)).await.is_some_and(|r| r.is_ok())
    }

    async fn close(&self) {
        let _ = self.with(|s| s.shutdown()).await;
    }

    fn username(&self) -> Option<String> {
        self.username.clone()
    }
}
