//! Just enough of the DTLS 1.2 record and handshake headers (RFC 6347 §4.1, §4.2.2) to
//! route datagrams: is it a record, is it a ClientHello, what random and cookie does it
//! carry. Never panics; anything it cannot read is "not a ClientHello".

/// Record content type `handshake`.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;

/// Whether `d` starts like a DTLS record (content type 20..=25, version 254.x).
pub fn is_record(d: &[u8]) -> bool {
    d.len() >= RECORD_HEADER && (20..=25).contains(&d[0]) && d[1] == 254
}

/// Whether any record in datagram `d` is protected (epoch above 0).
pub fn has_encrypted_record(mut d: &[u8]) -> bool {
    while is_record(d) {
        if d[3] != 0 || d[4] != 0 {
            return true;
        }
        let len = usize::from(u16::from_be_bytes([d[11], d[12]]));
        d = d.get(RECORD_HEADER + len..).unwrap_or_default();
    }
    false
}

/// A fatal alert in epoch 0 (the peer has no keys of ours yet), e.g. `decrypt_error` (51)
/// when the client's Finished does not decrypt. Its sequence number is far above any of
/// the handshake's, so the client's replay window takes it.
pub fn fatal_alert(description: u8) -> [u8; 15] {
    [21, 0xFE, 0xFD, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 2, description]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The record's epoch and sequence number (echoed in a HelloVerifyRequest).
    pub record_seq: [u8; 8],
    /// The client's random: the same in the ClientHello that returns our cookie.
    pub random: [u8; 32],
    pub cookie: Vec<u8>,
}

/// The ClientHello in the first record of `d` (epoch 0, unfragmented), if it is one.
pub fn client_hello(d: &[u8]) -> Option<ClientHello> {
    if !is_record(d) || d[0] != HANDSHAKE || d[3] != 0 || d[4] != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[11], d[12]]));
    let rec = d.get(RECORD_HEADER..RECORD_HEADER + len)?;
    if rec.len() < HANDSHAKE_HEADER || rec[0] != CLIENT_HELLO {
        return None;
    }
    let body_len = u24(&rec[1..4]);
    let frag_off = u24(&rec[6..9]);
    let frag_len = u24(&rec[9..12]);
    if frag_off != 0 || frag_len != body_len {
        return None;
    }
    let body = rec.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + body_len)?;
    // client_version(2) random(32) session_id<0..32> cookie<0..255> cipher_suites<2..>
    let random: [u8; 32] = body.get(2..34)?.try_into().ok()?;
    let mut i = 34;
    let sid = usize::from(*body.get(i)?);
    i += 1 + sid;
    let clen = usize::from(*body.get(i)?);
    let cookie = body.get(i + 1..i + 1 + clen)?.to_vec();
    i += 1 + clen;
    // The cipher suites must be there (which ones is the backend's business).
    let slen = usize::from(u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]));
    body.get(i + 2..i + 2 + slen)?;
    let record_seq = d[3..11].try_into().ok()?;
    Some(ClientHello { record_seq, random, cookie })
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cookie: &[u8], suites: &[u16]) -> Vec<u8> {
        let mut body = vec![0xFE, 0xFD];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.push(cookie.len() as u8);
        body.extend_from_slice(cookie);
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let n = body.len();
        let mut hs = vec![CLIENT_HELLO, 0, (n >> 8) as u8, n as u8, 0, 0, 0, 0, 0, 0, (n >> 8) as u8, n as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_record_sequence_random_and_cookie() {
        let h = client_hello(&hello(b"", &[0xC0A8])).unwrap();
        assert_eq!(h, ClientHello { record_seq: [0; 8], random: [7; 32], cookie: vec![] });
        let h = client_hello(&hello(b"abc", &[0xC0AE])).unwrap();
        assert_eq!(h.cookie, b"abc".to_vec());
    }

    #[test]
    fn truncated_or_other_records_are_not_client_hellos() {
        let full = hello(b"abc", &[0xC0A8]);
        for n in 0..full.len() {
            assert!(client_hello(&full[..n]).is_none(), "{n}");
        }
        let mut app = full.clone();
        app[0] = 23;
        assert!(client_hello(&app).is_none());
        assert!(!is_record(&[0x40, 0x01, 0, 1]), "CoAP is not a DTLS record");
        assert!(!has_encrypted_record(&full));
        let mut flight = full.clone();
        let mut finished = full;
        finished[4] = 1;
        flight.extend_from_slice(&finished);
        assert!(has_encrypted_record(&flight), "the second record is in epoch 1");
        assert!(!has_encrypted_record(&flight[..flight.len() - finished.len() + 5]), "truncated");
    }
}
