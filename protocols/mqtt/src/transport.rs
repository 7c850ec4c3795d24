//! Driver layer: the byte streams MQTT runs over besides plain TCP — TLS (rustls, ring
//! provider; TLS 1.2 and 1.3; optional client certificates verified against a CA for mTLS)
//! and WebSocket (RFC 6455, path `ws_path`, subprotocol `mqtt`, MQTT 5 §6), plain or over
//! TLS. Every one ends as a [`Stream`] the same connection task drives.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::{Sink, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

pub use roost_core::limit::Bucket;

use crate::pem;
use crate::settings::TlsSettings;

/// How a listener's connections reach the MQTT codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }
}

/// Any byte stream but plain TCP.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A connection's byte stream. Plain TCP stays unboxed: its idle connections hold no read
/// buffer (see the driver).
pub enum Stream {
    Tcp(TcpStream),
    Other(Box<dyn AsyncStream>),
}

/// Builds the acceptor of the TLS and WSS listeners from PEM files.
pub fn acceptor(s: &TlsSettings) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if s.tls13_only { &[&rustls::version::TLS13] } else { &[&rustls::version::TLS12, &rustls::version::TLS13] };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &s.ca_file {
        Some(ca) => {
            let roots = pem::root_store(ca)?;
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if s.verify_peer { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("{}: {e}", ca.display()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = pem::certificates(&s.cert_file)?;
    let key = pem::private_key(&s.key_file)?;
    let mut config = builder.with_single_cert(chain, key).map_err(|e| format!("{}: {e}", s.cert_file.display()))?;
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The acceptor the TLS and WSS listeners use, replaceable while they run (a reload with a
/// new certificate): each handshake takes the acceptor current when it starts, so an open
/// connection keeps the certificate it was made with and the next one gets the new one.
#[derive(Clone)]
pub struct TlsSwitch(Arc<parking_lot::RwLock<TlsAcceptor>>);

impl TlsSwitch {
    pub fn new(acceptor: TlsAcceptor) -> TlsSwitch {
        TlsSwitch(Arc::new(parking_lot::RwLock::new(acceptor)))
    }

    /// The acceptor for the next handshake (a cheap clone of an `Arc`).
    pub fn current(&self) -> TlsAcceptor {
        self.0.read().clone()
    }

    /// Serves later handshakes with `acceptor`.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write() = acceptor;
    }
}

/// The TLS handshake; with it, the common name of the client certificate when one was
/// presented (and so verified against the CA: rustls refuses the handshake otherwise).
pub async fn tls_accept<S: AsyncStream + 'static>(
    acceptor: &TlsAcceptor,
    io: S,
) -> io::Result<(tokio_rustls::server::TlsStream<S>, Option<String>)> {
    let tls = acceptor.accept(io).await?;
    let cn = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| common_name(c));
    Ok((tls, cn))
}

/// The WebSocket opening handshake: `path` only, subprotocol `mqtt` (MQTT 5 §6: the client
/// must offer it; we answer with it).
pub async fn ws_accept<S: AsyncStream + 'static>(io: S, path: &str) -> io::Result<WsStream<S>> {
    let path = path.to_string();
    // The callback's signature is tungstenite's (its error is a whole HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != path {
            let mut e = ErrorResponse::new(Some(format!("no WebSocket endpoint at {}", req.uri().path())));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        }
        let offered = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("mqtt"));
        if !offered {
            let mut e = ErrorResponse::new(Some("the WebSocket subprotocol must be \"mqtt\"".to_string()));
            *e.status_mut() = StatusCode::BAD_REQUEST;
            return Err(e);
        }
        resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(io, callback).await.map_err(io::Error::other)?;
    Ok(WsStream { ws, pending: Bytes::new() })
}

/// A WebSocket as a byte stream: binary frames in and out, MQTT packets may span frames
/// (MQTT 5 §6).
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S: AsyncStream> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None | Some(Ok(WsMessage::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(WsMessage::Binary(b))) => self.pending = b,
                // Ping is answered by tungstenite itself; MQTT never travels in text frames.
                Some(Ok(WsMessage::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame (MQTT needs binary)",
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl<S: AsyncStream> AsyncWrite for WsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
        Pin::new(&mut self.ws).start_send(WsMessage::Binary(Bytes::copy_from_slice(buf))).map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io::Error::other)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io::Error::other)
    }
}

/// The subject common name of a DER certificate (X.509: Certificate -> TBSCertificate ->
/// subject, the sixth field counting the optional version). `None` if it has none or the
/// DER is not what X.509 says.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (tag, cert_body, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = tlv(cert_body)?;
    if tag != 0x30 {
        return None;
    }
    // [0] version (optional), serial, signature, issuer, validity, subject
    let mut fields = Vec::with_capacity(6);
    while fields.len() < 6 && !tbs.is_empty() {
        let (tag, body, rest) = tlv(tbs)?;
        fields.push((tag, body));
        tbs = rest;
    }
    let skip = usize::from(fields.first()?.0 == 0xA0);
    let (tag, mut subject) = *fields.get(4 + skip)?;
    if tag != 0x30 {
        return None;
    }
    const CN: [u8; 3] = [0x55, 0x04, 0x03];
    while !subject.is_empty() {
        let (_, set, rest) = tlv(subject)?;
        subject = rest;
        let (_, atv, _) = tlv(set)?;
        let (oid_tag, oid, value) = tlv(atv)?;
        if oid_tag == 0x06 && oid == CN {
            let (_, s, _) = tlv(value)?;
            return std::str::from_utf8(s).ok().map(String::from);
        }
    }
    None
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[header..end], &b[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Roost");
        params.distinguished_name.push(rcgen::DnType::CommonName, "device-7");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("device-7"));
        assert_eq!(common_name(&[0x30, 0x82, 0xff]), None);
        assert_eq!(common_name(&[]), None);
    }

    proptest::proptest! {
        /// Whatever the bytes (truncated, lengths past the end, 4-byte lengths), no panic.
        #[test]
        fn common_name_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = common_name(&bytes);
        }

        #[test]
        fn common_name_of_a_truncated_certificate_never_panics(cut in 0usize..400) {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, "x");
            let cert = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
            let der = cert.der();
            let _ = common_name(&der[..cut.min(der.len())]);
        }
    }
}
