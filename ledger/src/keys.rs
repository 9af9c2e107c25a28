//! ed25519 identities and domain-separated signatures.
//!
//! Every signature in Cairn covers `domain_tag || 0x00 || borsh(body)`. Each signed type has
//! its own tag (see [`Domain`]), and tags contain no NUL byte, so a signature made for one
//! type can never verify as another.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::parse_hex_array;
use crate::{Error, Result};

/// The signing domains. Their tags are frozen: changing one invalidates every signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A client's job offer.
    JobOffer,
    /// A provider's execution claim (the signed part of a job result and of a receipt).
    JobResult,
    /// A validator's consensus vote.
    Vote,
    /// A validator's consensus proposal (the block hash it proposes for a height and round).
    Proposal,
    /// An account's transaction (transfer, provider registration, challenge, …).
    Tx,
}

impl Domain {
    /// The domain's tag, prepended (then a 0x00 byte) to the borsh body before signing.
    pub fn tag(self) -> &'static [u8] {
        match self {
            Domain::JobOffer => b"cairn/v1/job-offer",
            Domain::JobResult => b"cairn/v1/job-result",
            Domain::Vote => b"cairn/v1/vote",
            Domain::Proposal => b"cairn/v1/proposal",
            Domain::Tx => b"cairn/v1/tx",
        }
    }

    /// The exact bytes that are signed for `body` in this domain.
    pub fn message<T: BorshSerialize>(self, body: &T) -> Vec<u8> {
        let mut m = Vec::with_capacity(64);
        m.extend_from_slice(self.tag());
        m.push(0);
        borsh::to_writer(&mut m, body).expect("borsh encoding into a Vec cannot fail");
        m
    }
}

/// An ed25519 public key: a node's, client's, provider's or validator's address.
///
/// In JSON it is 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature (64 bytes; 128 hex characters in JSON).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<PublicKey> {
        Ok(PublicKey(parse_hex_array(s, "public key")?))
    }

    /// Checks `signature` over `body` in `domain`.
    pub fn verify<T: BorshSerialize>(&self, domain: Domain, body: &T, signature: &Signature) -> Result<()> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| Error::BadPublicKey)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify(&domain.message(body), &sig)
            .map_err(|_| Error::BadSignature { domain: String::from_utf8_lossy(domain.tag()).into_owned() })
    }
}

impl Signature {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 128 hex characters.
    pub fn from_hex(s: &str) -> Result<Signature> {
        Ok(Signature(parse_hex_array(s, "signature")?))
    }
}

macro_rules! hex_display_serde {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", &self.to_hex()[..16])
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <String as Deserialize>::deserialize(d)?;
                <$t>::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_display_serde!(PublicKey);
hex_display_serde!(Signature);

impl std::str::FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PublicKey::from_hex(s)
    }
}

/// A secret signing key with its public key.
#[derive(Clone)]
pub struct Keypair {
    signing: ed25519_dalek::SigningKey,
}

/// The on-disk form of a key file (JSON): `{"version":1,"secret_key":"<64 hex>","public_key":"<64 hex>"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u8,
    secret_key: String,
    public_key: PublicKey,
}

/// The version of the key file format.
pub const KEY_FILE_VERSION: u8 = 1;

impl Keypair {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Keypair {
        Keypair { signing: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// The key whose 32-byte secret seed is `seed` (deterministic; for tests and fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair { signing: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    /// The 32-byte secret seed.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key (address).
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `body` in `domain`.
    pub fn sign<T: BorshSerialize>(&self, domain: Domain, body: &T) -> Signature {
        Signature(self.signing.sign(&domain.message(body)).to_bytes())
    }

    /// The key file's JSON text.
    pub fn to_json(&self) -> String {
        let file = KeyFile {
            version: KEY_FILE_VERSION,
            secret_key: hex::encode(self.secret_bytes()),
            public_key: self.public(),
        };
        serde_json::to_string_pretty(&file).expect("a key file always serializes")
    }

    /// Parses a key file's JSON text, checking that its public key matches its secret.
    pub fn from_json(text: &str) -> Result<Keypair> {
        let file: KeyFile = serde_json::from_str(text).map_err(|e| Error::KeyFile(e.to_string()))?;
        if file.version != KEY_FILE_VERSION {
            return Err(Error::KeyFile(format!("unsupported key file version {}", file.version)));
        }
        let key = Keypair::from_seed(parse_hex_array(&file.secret_key, "secret key")?);
        if key.public() != file.public_key {
            return Err(Error::KeyFile("public_key does not match secret_key".into()));
        }
        Ok(key)
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Keypair> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::KeyFile(format!("cannot read {}: {e}", path.display())))?;
        Keypair::from_json(&text)
    }

    /// Writes a key file (mode 0600 on Unix). Refuses to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| Error::KeyFile(format!("cannot create {}: {e}", path.display())))?;
        f.write_all(self.to_json().as_bytes())
            .map_err(|e| Error::KeyFile(format!("cannot write {}: {e}", path.display())))
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_bound_to_its_domain() {
        let k = Keypair::from_seed([7; 32]);
        let sig = k.sign(Domain::JobOffer, &42u64);
        k.public().verify(Domain::JobOffer, &42u64, &sig).expect("valid");
        assert!(k.public().verify(Domain::Vote, &42u64, &sig).is_err());
        assert!(k.public().verify(Domain::JobOffer, &43u64, &sig).is_err());
    }

    #[test]
    fn key_file_round_trips_and_rejects_mismatch() {
        let k = Keypair::from_seed([1; 32]);
        let back = Keypair::from_json(&k.to_json()).expect("round trip");
        assert_eq!(back.public(), k.public());
        let tampered = k.to_json().replace(&k.public().to_hex(), &Keypair::from_seed([2; 32]).public().to_hex());
        assert!(Keypair::from_json(&tampered).is_err());
    }

    #[test]
    fn domain_message_bytes_are_pinned() {
        assert_eq!(Domain::Vote.message(&1u8), b"cairn/v1/vote\x00\x01".to_vec());
    }
}
