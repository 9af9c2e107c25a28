//! ed25519 identities and domain-separated signatures.
//!
//! Every signature in Cairn covers `domain_tag || 0x00 || borsh(body)`. Each signed type has
//! its own tag (see [`Domain`]), and tags contain no NUL byte, so a signature made for one
//! type can never verify as another.
//!
//! Verification follows ZIP-215 (the rules of the `ed25519-zebra` crate): the public key
//! and `R` must decode to curve points, non-canonical encodings accepted; `S` must be reduced;
//! and `[8][S]B = [8]R + [8][k]A` must hold (the cofactored equation). Under these rules a
//! [`SignatureBatch`] accepts exactly the signatures that single verification accepts, so a
//! node may check a block's signatures one by one, in batches, or not at all (already cached)
//! and reach the same verdict as every other node. Every signature RFC 8032's cofactorless
//! equation accepts is accepted too; ed25519-dalek signs.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::Signer;
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

    /// Checks `signature` over `body` in `domain` (ZIP-215 rules: the module's doc).
    pub fn verify<T: BorshSerialize>(&self, domain: Domain, body: &T, signature: &Signature) -> Result<()> {
        let key = ed25519_zebra::VerificationKey::try_from(self.0).map_err(|_| Error::BadPublicKey)?;
        key.verify(&ed25519_zebra::Signature::from(signature.0), &domain.message(body))
            .map_err(|_| bad_signature(domain))
    }
}

fn bad_signature(domain: Domain) -> Error {
    Error::BadSignature { domain: String::from_utf8_lossy(domain.tag()).into_owned() }
}

/// Where a signed record's signature is checked: at once ([`VerifyNow`]) or queued in a
/// [`SignatureBatch`] to be checked with others.
pub trait SignatureSink {
    /// Checks, or queues for checking, `signature` by `key` over `body` in `domain`. A queued
    /// signature is `Ok` here; its batch's verdict comes later.
    fn check<T: BorshSerialize>(
        &mut self,
        key: &PublicKey,
        domain: Domain,
        body: &T,
        signature: &Signature,
    ) -> Result<()>;
}

/// Verifies each signature when it is given ([`PublicKey::verify`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifyNow;

impl SignatureSink for VerifyNow {
    fn check<T: BorshSerialize>(
        &mut self,
        key: &PublicKey,
        domain: Domain,
        body: &T,
        signature: &Signature,
    ) -> Result<()> {
        key.verify(domain, body, signature)
    }
}

/// Signatures verified together: one multi-scalar multiplication for the batch, with the
/// signatures of one key sharing its term — about half the work of verifying each alone when
/// the batch is large or one key signed many of them.
///
/// Under ZIP-215 a batch passes exactly when every signature in it would pass
/// [`PublicKey::verify`] (up to a chance of 2^-128 that a bad one hides behind random
/// coefficients). A failed batch does not say which signature failed: verify them one by one
/// then ([`crate::SignedOffer::verify`] and the like), which also gives each its own error.
#[derive(Default)]
pub struct SignatureBatch {
    verifier: ed25519_zebra::batch::Verifier,
    len: usize,
}

impl SignatureBatch {
    /// An empty batch.
    pub fn new() -> SignatureBatch {
        SignatureBatch::default()
    }

    /// How many signatures are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every queued signature is valid (an empty batch is).
    pub fn verify(self) -> bool {
        self.len == 0 || self.verifier.verify(rand::thread_rng()).is_ok()
    }
}

impl SignatureSink for SignatureBatch {
    fn check<T: BorshSerialize>(
        &mut self,
        key: &PublicKey,
        domain: Domain,
        body: &T,
        signature: &Signature,
    ) -> Result<()> {
        let message = domain.message(body);
        self.verifier.queue((
            ed25519_zebra::VerificationKeyBytes::from(key.0),
            ed25519_zebra::Signature::from(signature.0),
            &message,
        ));
        self.len += 1;
        Ok(())
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

    /// A point of order 8 (its encoding): a "public key" whose every multiple by 8 is the
    /// identity, so with `R` the identity and `S = 0` the cofactored equation holds for any
    /// message.
    const ORDER_8: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";

    /// `R = 0` and `S = 0` with `R` given as `r`.
    fn edge_signature(r: [u8; 32]) -> Signature {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        Signature(sig)
    }

    fn identity() -> [u8; 32] {
        let mut y = [0u8; 32];
        y[0] = 1;
        y
    }

    /// The identity read from `y = p + 1`, a non-canonical encoding.
    fn identity_non_canonical() -> [u8; 32] {
        let mut y = [0xff; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        y
    }

    #[test]
    fn verification_follows_zip215_cofactored_with_non_canonical_encodings() {
        let key = PublicKey::from_hex(ORDER_8).expect("hex");
        let mut cofactorless_refused = 0;
        for m in 0u64..16 {
            for r in [identity(), identity_non_canonical()] {
                let sig = edge_signature(r);
                key.verify(Domain::Tx, &m, &sig).expect("valid under ZIP-215 for every message");
                let mut batch = SignatureBatch::new();
                batch.check(&key, Domain::Tx, &m, &sig).expect("queued");
                assert!(batch.verify(), "the batch agrees");
            }
            // RFC 8032's cofactorless equation (ed25519-dalek's `verify`) refuses most of them.
            let dalek = ed25519_dalek::VerifyingKey::from_bytes(&key.0).expect("a point");
            let sig = ed25519_dalek::Signature::from_bytes(&edge_signature(identity()).0);
            if ed25519_dalek::Verifier::verify(&dalek, &Domain::Tx.message(&m), &sig).is_err() {
                cofactorless_refused += 1;
            }
        }
        assert!(cofactorless_refused > 0, "the rules differ from the cofactorless ones");
        // `S` must be reduced; `R` must decode; the key must decode.
        let mut unreduced = edge_signature(identity());
        unreduced.0[32..].copy_from_slice(&[0xff; 32]);
        assert!(key.verify(Domain::Tx, &0u64, &unreduced).is_err());
        let mut off_curve = identity();
        off_curve[0] = 2; // y = 2 is not on the curve
        assert!(key.verify(Domain::Tx, &0u64, &edge_signature(off_curve)).is_err());
        assert!(matches!(
            PublicKey(off_curve).verify(Domain::Tx, &0u64, &edge_signature(identity())),
            Err(Error::BadPublicKey)
        ));
    }

    #[test]
    fn a_batch_passes_exactly_when_every_signature_does() {
        let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
        let edge_key = PublicKey::from_hex(ORDER_8).expect("hex");
        let mut items: Vec<(PublicKey, u64, Signature)> = (0..40u64)
            .map(|m| {
                let k = &keys[(m % 4) as usize];
                (k.public(), m, k.sign(Domain::JobResult, &m))
            })
            .collect();
        items.push((edge_key, 99, edge_signature(identity_non_canonical())));
        let batch_of = |items: &[(PublicKey, u64, Signature)]| {
            let mut batch = SignatureBatch::new();
            for (k, m, s) in items {
                batch.check(k, Domain::JobResult, m, s).expect("queued");
            }
            assert_eq!(batch.len(), items.len());
            batch.verify()
        };
        assert!(batch_of(&items), "all valid");
        assert!(SignatureBatch::new().verify(), "an empty batch passes");
        // Any one bad signature, wherever it is, fails the batch; so does one in another domain.
        for bad in [0, 17, 40] {
            let mut tampered = items.clone();
            tampered[bad].2.0[5] ^= 1;
            assert!(tampered[bad].0.verify(Domain::JobResult, &tampered[bad].1, &tampered[bad].2).is_err());
            assert!(!batch_of(&tampered), "a bad signature at {bad}");
        }
        let mut other_message = items.clone();
        other_message[3].1 += 1000;
        assert!(!batch_of(&other_message));
        let mut bad_key = items.clone();
        bad_key[9].0 = PublicKey([0xff; 32]);
        assert!(!batch_of(&bad_key), "a key that does not decode");
    }

    #[test]
    fn domain_message_bytes_are_pinned() {
        assert_eq!(Domain::Vote.message(&1u8), b"cairn/v1/vote\x00\x01".to_vec());
    }
}
