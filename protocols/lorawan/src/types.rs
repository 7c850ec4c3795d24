//! LoRaWAN identities as newtypes. On the air EUIs and addresses are little-endian; here they
//! hold their numeric value and print as the big-endian hex everyone writes them in.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! hex_id {
    ($(#[$m:meta])* $name:ident, $int:ty, $n:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $int);

        impl $name {
            /// From the little-endian bytes of a frame.
            pub fn from_le(b: [u8; $n]) -> Self {
                $name(<$int>::from_le_bytes(b))
            }
            pub fn to_le(self) -> [u8; $n] {
                self.0.to_le_bytes()
            }
            /// Parses big-endian hex (`2N` digits).
            pub fn parse(s: &str) -> Option<Self> {
                crate::hex::decode_array::<$n>(s).map(|b| $name(<$int>::from_be_bytes(b)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&crate::hex::encode(&self.0.to_be_bytes()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not {} hex digits", $n * 2)))
            }
        }
    };
}

hex_id!(
    /// A device's EUI-64.
    DevEui, u64, 8
);
hex_id!(
    /// The join server's EUI-64 (AppEUI in LoRaWAN 1.0).
    JoinEui, u64, 8
);
hex_id!(
    /// A device's 32-bit network address.
    DevAddr, u32, 4
);

impl DevAddr {
    /// The 7-bit NwkID (the DevAddr prefix of a type-0/1 NetID).
    pub fn nwk_id(self) -> u8 {
        (self.0 >> 25) as u8
    }
}

/// An AES-128 key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AesKey(pub [u8; 16]);

impl AesKey {
    pub fn parse(s: &str) -> Option<Self> {
        crate::hex::decode_array::<16>(s).map(AesKey)
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs.
        f.write_str("AesKey(..)")
    }
}

impl Serialize for AesKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for AesKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AesKey::parse(&s).ok_or_else(|| serde::de::Error::custom("a key is 32 hex digits"))
    }
}
