//! Hex text for EUIs, addresses and keys (lower case out, either case in).

pub fn encode(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0x0f)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `N` bytes of hex (`2N` digits), else `None`.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// Any even number of hex digits, at most `max` bytes (checked before allocating).
pub fn decode(s: &str, max: usize) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || b.len() / 2 > max {
        return None;
    }
    b.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::encode(&[0x00, 0xab, 0x1f]), "00ab1f");
        assert_eq!(super::decode_array::<3>("00AB1f"), Some([0x00, 0xab, 0x1f]));
        assert_eq!(super::decode_array::<3>("00ab1"), None);
        assert_eq!(super::decode_array::<1>("zz"), None);
        assert_eq!(super::decode_array::<1>("é"), None);
        assert_eq!(super::decode("0aFf", 2), Some(vec![0x0a, 0xff]));
        assert_eq!(super::decode("", 2), Some(vec![]));
        assert_eq!(super::decode("0a0b0c", 2), None);
        assert_eq!(super::decode("0a0", 2), None);
        assert_eq!(super::decode("zz", 2), None);
    }
}
