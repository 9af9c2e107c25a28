//! SHA-256 hashes and the identifiers built from them.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest. Module ids, job ids, block hashes and Merkle roots are all `Hash`es.
///
/// In JSON it is a 64-character lowercase hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash: the root of an empty Merkle tree and the parent of block 1.
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 over several byte strings, concatenated.
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    /// SHA-256 of the borsh encoding of `value`.
    pub fn of_borsh<T: BorshSerialize>(value: &T) -> Hash {
        Hash::of(&borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail"))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lowercase hex characters ([`decode_hex`]'s rule).
    pub fn from_hex(s: &str) -> Result<Hash, crate::Error> {
        Ok(Hash(parse_hex_array(s, "hash")?))
    }
}

/// Decodes hex under Cairn's one rule for every input (RPC parameters, JSON files, command
/// arguments): lowercase digits `0-9a-f`, an even number of them, no `0x` prefix — exactly
/// what Cairn writes, so every value has one spelling.
pub fn decode_hex(s: &str, what: &'static str) -> Result<Vec<u8>, crate::Error> {
    if s.starts_with("0x") {
        return Err(crate::Error::Hex { what, reason: "no 0x prefix: write the hex digits alone".into() });
    }
    if let Some(c) = s.chars().find(|c| c.is_ascii_uppercase()) {
        return Err(crate::Error::Hex { what, reason: format!("hex is lowercase ('{c}' is not)") });
    }
    hex::decode(s).map_err(|e| crate::Error::Hex { what, reason: e.to_string() })
}

pub(crate) fn parse_hex_array<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], crate::Error> {
    let bytes = decode_hex(s, what)?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| crate::Error::Hex { what, reason: format!("expected {N} bytes, got {}", b.len()) })
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for Hash {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers that write byte strings as lowercase hex in JSON.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as a hex string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Deserializes a lowercase hex string ([`super::decode_hex`]'s rule) into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        super::decode_hex(&s, "bytes").map_err(serde::de::Error::custom)
    }
}
