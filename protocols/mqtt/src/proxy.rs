//! Driver layer: the PROXY protocol (HAProxy's spec, versions 1 and 2,
//! <https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt>) in front of the MQTT
//! listeners, so that behind a load balancer the client's own address is what auth, ACL `ip`
//! rules, rate limits, `$SYS` events, the API and traces see.
//!
//! With `proxy_protocol` on, a connection from a trusted balancer (`proxy_trusted`) must
//! start with a header (§2.1 v1 text, §2.2 v2 binary); a v2 LOCAL command (health checks)
//! keeps the balancer's address. A connection from anyone else that starts with a header is
//! refused: a client could otherwise claim any address. Others connect directly, unchanged.
//! The header is read exactly (v1 byte by byte up to its CRLF, v2 by its length), so the
//! bytes after it (TLS, WebSocket, MQTT) stay in the socket. Written here rather than taken
//! from a crate: the two header forms are ~100 lines, parsed without allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use roost_core::auth::acl::IpRange;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature (§2.2).
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is 107 bytes at most, CRLF included (§2.1).
const V1_MAX: usize = 107;
/// The v2 address block and TLVs taken at most (addresses are 36 bytes; TLVs beyond this
/// are not worth buffering for an MQTT connection).
const V2_MAX: usize = 1024;

/// `[mqtt] proxy_protocol` and its trusted balancers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxySettings {
    pub enabled: bool,
    pub trusted: Vec<IpRange>,
}

/// Why a connection was refused before MQTT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("PROXY header from {0}, which is not a trusted balancer (mqtt.proxy_trusted)")]
    Untrusted(IpAddr),
    #[error("PROXY header missing from trusted balancer {0}")]
    Missing(IpAddr),
    #[error("PROXY header malformed: {0}")]
    Malformed(&'static str),
    #[error("PROXY header: {0}")]
    Io(String),
}

impl ProxySettings {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|r| r.contains(ip))
    }

    /// The client's address for the connection `tcp` accepted from `peer`: from the header
    /// a trusted balancer sent, else `peer` itself.
    pub async fn client_addr(&self, tcp: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
        if !self.enabled {
            return Ok(peer);
        }
        let io = |e: std::io::Error| ProxyError::Io(e.to_string());
        let mut first = [0u8; 1];
        // A closed connection peeks 0 bytes: nothing to proxy, the MQTT read will see EOF.
        if tcp.peek(&mut first).await.map_err(io)? == 0 {
            return Ok(peer);
        }
        // Neither MQTT (CONNECT is 0x10), TLS (0x16) nor HTTP starts with 'P' or '\r'.
        let header = first[0] == b'P' || first[0] == b'\r';
        match (header, self.trusts(peer.ip())) {
            (false, false) => Ok(peer),
            (false, true) => Err(ProxyError::Missing(peer.ip())),
            (true, false) => Err(ProxyError::Untrusted(peer.ip())),
            (true, true) if first[0] == b'P' => read_v1(tcp).await.map(|a| a.unwrap_or(peer)),
            (true, true) => read_v2(tcp).await.map(|a| a.unwrap_or(peer)),
        }
    }
}

async fn read_v1(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let mut line = [0u8; V1_MAX];
    let mut n = 0;
    loop {
        if n == V1_MAX {
            return Err(ProxyError::Malformed("v1 line longer than 107 bytes"));
        }
        let b = tcp.read_u8().await.map_err(|e| ProxyError::Io(e.to_string()))?;
        line[n] = b;
        n += 1;
        if b == b'\n' {
            return parse_v1(&line[..n]);
        }
    }
}

/// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 1883\r\n` (or `TCP6`, or `UNKNOWN ...`).
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = ProxyError::Malformed;
    let line = line.strip_suffix(b"\r\n").ok_or(bad("v1 line does not end with CRLF"))?;
    let line = std::str::from_utf8(line).map_err(|_| bad("v1 line is not ASCII"))?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(bad("v1 line does not start with PROXY"));
    }
    let proto = parts.next().ok_or(bad("v1 protocol missing"))?;
    if proto == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields.as_slice() else { return Err(bad("v1 needs 4 address fields")) };
    let ip: IpAddr = src.parse().map_err(|_| bad("v1 source address"))?;
    let port: u16 = sport.parse().map_err(|_| bad("v1 source port"))?;
    match (proto, ip) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(Some(SocketAddr::new(ip, port))),
        _ => Err(bad("v1 protocol and address family differ")),
    }
}

async fn read_v2(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let io = |e: std::io::Error| ProxyError::Io(e.to_string());
    let mut head = [0u8; 16];
    tcp.read_exact(&mut head).await.map_err(io)?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if head[..12] != V2_SIG {
        return Err(ProxyError::Malformed("v2 signature"));
    }
    if len > V2_MAX {
        return Err(ProxyError::Malformed("v2 address block over 1024 bytes"));
    }
    let mut body = [0u8; V2_MAX];
    tcp.read_exact(&mut body[..len]).await.map_err(io)?;
    parse_v2(&head, &body[..len])
}

/// The 16-byte v2 header `head` (signature, version/command, family, length) and its
/// address block `body`: the source address; `None` for LOCAL or an unspecified family.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let bad = ProxyError::Malformed;
    match head[12] {
        0x20 => return Ok(None),
        0x21 => {}
        _ => return Err(bad("v2 version/command is neither LOCAL nor PROXY")),
    }
    let at = |i: usize, n: usize| body.get(i..i + n).ok_or(bad("v2 address block too short"));
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match head[13] >> 4 {
        0x0 => Ok(None),
        0x1 => {
            let ip: [u8; 4] = at(0, 4)?.try_into().map_err(|_| bad("v2 IPv4"))?;
            Ok(Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port(at(8, 2)?))))
        }
        0x2 => {
            let ip: [u8; 16] = at(0, 16)?.try_into().map_err(|_| bad("v2 IPv6"))?;
            Ok(Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port(at(32, 2)?))))
        }
        // AF_UNIX: no IP address to give; the balancer's stays.
        0x3 => Ok(None),
        _ => Err(bad("v2 address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let a = parse_v1(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1883\r\n").unwrap();
        assert_eq!(a, Some("192.0.2.7:56324".parse().unwrap()));
        let a = parse_v1(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 1883\r\n").unwrap();
        assert_eq!(a, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n").unwrap(), None);
        assert!(parse_v1(b"PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n").is_err());
        assert!(parse_v1(b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n").is_err());
        assert!(parse_v1(b"PROXY TCP4 1.2.3.4\r\n").is_err());
        assert!(parse_v1(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n").is_err());
    }

    fn head(cmd: u8, fam: u8, len: u16) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[..12].copy_from_slice(&V2_SIG);
        h[12] = cmd;
        h[13] = fam;
        h[14..].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn v2_blocks() {
        let body = [192, 0, 2, 7, 127, 0, 0, 1, 0xdc, 0x04, 0x07, 0x5b];
        let a = parse_v2(&head(0x21, 0x11, 12), &body).unwrap();
        assert_eq!(a, Some("192.0.2.7:56324".parse().unwrap()));
        let mut v6 = [0u8; 36];
        v6[15] = 1;
        v6[32..34].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(parse_v2(&head(0x21, 0x21, 36), &v6).unwrap(), Some("[::1]:4000".parse().unwrap()));
        assert_eq!(parse_v2(&head(0x20, 0x00, 0), &[]).unwrap(), None);
        assert!(parse_v2(&head(0x21, 0x11, 4), &body[..4]).is_err());
        assert!(parse_v2(&head(0x22, 0x11, 12), &body).is_err());
    }
}
