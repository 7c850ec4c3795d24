//! The subset of CBOR (RFC 8949) SenML CBOR needs: a pull reader over a borrowed buffer
//! and a writer with the shortest heads. Ours rather than a crate's: it is small, borrows
//! instead of building a tree, and lets every declared length be checked against the bytes
//! left before anything is read (a byte string claiming 4 GB allocates nothing).

/// One data item's head, strings borrowed from the buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    Uint(u64),
    /// The value is `-1 - n`.
    Nint(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    /// `None`: indefinite length, ended by [`Item::Break`].
    Array(Option<u64>),
    Map(Option<u64>),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
    Break,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CborError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, CborError> {
    Err(CborError(s.into()))
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// How deep arrays and maps may nest when skipped.
const MAX_DEPTH: u8 = 16;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes not yet read: a bound on how many items can still follow.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if n > self.remaining() {
            return err(format!("{n} bytes claimed at offset {}, {} left", self.pos, self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, CborError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The next item (a tag is read past: SenML gives tags no meaning).
    pub fn next(&mut self) -> Result<Item<'a>, CborError> {
        loop {
            let ib = self.take(1)?[0];
            let (major, info) = (ib >> 5, ib & 0x1f);
            if major == 7 {
                return self.simple(info);
            }
            let arg = match info {
                0..=23 => Some(u64::from(info)),
                24 => Some(self.uint(1)?),
                25 => Some(self.uint(2)?),
                26 => Some(self.uint(4)?),
                27 => Some(self.uint(8)?),
                31 => None,
                _ => return err(format!("reserved additional information {info}")),
            };
            let len = |arg: Option<u64>| arg.ok_or_else(|| CborError("indefinite-length string".into()));
            return Ok(match major {
                0 => Item::Uint(len(arg)?),
                1 => Item::Nint(len(arg)?),
                2 => Item::Bytes(self.take(usize::try_from(len(arg)?).unwrap_or(usize::MAX))?),
                3 => {
                    let b = self.take(usize::try_from(len(arg)?).unwrap_or(usize::MAX))?;
                    Item::Text(std::str::from_utf8(b).map_err(|_| CborError("text string is not UTF-8".into()))?)
                }
                4 => Item::Array(arg),
                5 => Item::Map(arg),
                _ => {
                    len(arg)?; // a tag: read the tagged item instead
                    continue;
                }
            });
        }
    }

    fn simple(&mut self, info: u8) -> Result<Item<'a>, CborError> {
        Ok(match info {
            20 => Item::Bool(false),
            21 => Item::Bool(true),
            22 => Item::Null,
            23 => Item::Undefined,
            24 => {
                self.take(1)?;
                Item::Undefined
            }
            25 => {
                let b = self.take(2)?;
                Item::Float(half([b[0], b[1]]))
            }
            26 => Item::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            27 => Item::Float(f64::from_bits(self.uint(8)?)),
            31 => Item::Break,
            0..=19 => Item::Undefined,
            _ => return err(format!("reserved simple value {info}")),
        })
    }

    /// Reads past one whole item (nested arrays and maps included).
    #[cfg(test)]
    pub fn skip(&mut self) -> Result<(), CborError> {
        let first = self.next()?;
        self.skip_rest(first, 0)
    }

    /// Reads past what follows `item` (its elements, for an array or map).
    pub fn skip_rest(&mut self, item: Item<'a>, depth: u8) -> Result<(), CborError> {
        let (count, per) = match item {
            Item::Array(n) => (n, 1),
            Item::Map(n) => (n, 2),
            Item::Break => return err("unexpected break"),
            _ => return Ok(()),
        };
        if depth >= MAX_DEPTH {
            return err("nested too deep");
        }
        match count {
            Some(n) => {
                for _ in 0..n.saturating_mul(per) {
                    let item = self.next()?;
                    self.skip_rest(item, depth + 1)?;
                }
            }
            None => loop {
                let item = self.next()?;
                if item == Item::Break {
                    break;
                }
                self.skip_rest(item, depth + 1)?;
            },
        }
        Ok(())
    }
}

/// IEEE 754 half precision to f64 (RFC 8949 Appendix D).
fn half(b: [u8; 2]) -> f64 {
    let h = u16::from_be_bytes(b);
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let val = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mant + 1024.0) * 2f64.powi(i32::from(exp) - 25),
    };
    if h & 0x8000 != 0 { -val } else { val }
}

/// Writes items with the shortest heads.
#[derive(Default)]
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.out.push(m | arg as u8);
        } else if let Ok(a) = u8::try_from(arg) {
            self.out.extend_from_slice(&[m | 24, a]);
        } else if let Ok(a) = u16::try_from(arg) {
            self.out.push(m | 25);
            self.out.extend_from_slice(&a.to_be_bytes());
        } else if let Ok(a) = u32::try_from(arg) {
            self.out.push(m | 26);
            self.out.extend_from_slice(&a.to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    pub fn uint(&mut self, u: u64) {
        self.head(0, u);
    }

    pub fn int(&mut self, i: i64) {
        if i >= 0 {
            self.head(0, i as u64);
        } else {
            self.head(1, !(i as u64));
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.head(2, b.len() as u64);
        self.out.extend_from_slice(b);
    }

    pub fn text(&mut self, s: &str) {
        self.head(3, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    pub fn array(&mut self, n: usize) {
        self.head(4, n as u64);
    }

    pub fn map(&mut self, n: usize) {
        self.head(5, n as u64);
    }

    pub fn bool(&mut self, b: bool) {
        self.out.push(if b { 0xf5 } else { 0xf4 });
    }

    /// Single precision where that is exact (NaN included), else double.
    pub fn float(&mut self, f: f64) {
        let single = f as f32;
        if f64::from(single).to_bits() == f.to_bits() || f.is_nan() {
            self.out.push(0xfa);
            self.out.extend_from_slice(&single.to_bits().to_be_bytes());
        } else {
            self.out.push(0xfb);
            self.out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8949_appendix_a_items() {
        fn one(b: &[u8]) -> Result<Item<'_>, CborError> {
            Reader::new(b).next()
        }
        assert_eq!(one(&[0x19, 0x03, 0xe8]), Ok(Item::Uint(1000)));
        assert_eq!(one(&[0x38, 0x63]), Ok(Item::Nint(99))); // -100
        assert_eq!(one(&[0xf9, 0x3c, 0x00]), Ok(Item::Float(1.0)));
        assert_eq!(one(&[0xf9, 0xc4, 0x00]), Ok(Item::Float(-4.0)));
        assert_eq!(one(&[0xf9, 0x00, 0x01]), Ok(Item::Float(5.960_464_477_539_063e-8)));
        assert_eq!(one(&[0xf9, 0x7c, 0x00]), Ok(Item::Float(f64::INFINITY)));
        assert_eq!(one(&[0xfa, 0x47, 0xc3, 0x50, 0x00]), Ok(Item::Float(100000.0)));
        assert_eq!(one(&[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]), Ok(Item::Float(1.1)));
        assert_eq!(one(&[0x64, 0x49, 0x45, 0x54, 0x46]), Ok(Item::Text("IETF")));
        assert_eq!(one(&[0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0]), Ok(Item::Uint(1363896240)));
        // A byte string claiming 2^32 bytes is refused before anything is read.
        assert!(one(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]).is_err());
        assert!(one(&[0x7f, 0x61, 0x61, 0xff]).is_err());
        let mut w = Writer::default();
        w.int(-100);
        w.uint(1000);
        w.float(1.1);
        w.float(100000.0);
        assert_eq!(
            w.out,
            [
                0x38, 0x63, 0x19, 0x03, 0xe8, 0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a, 0xfa, 0x47, 0xc3,
                0x50, 0x00
            ]
        );
        let mut r = Reader::new(&[0x9f, 0x01, 0xbf, 0x61, 0x61, 0x80, 0xff, 0xff, 0x02]);
        r.skip().unwrap();
        assert_eq!(r.next(), Ok(Item::Uint(2)));
        assert!(r.at_end());
    }
}
