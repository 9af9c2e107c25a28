//! What Cairn nodes say to each other, as bytes: the gossip envelopes, the `/cairn/sync/1`
//! requests and answers, their version byte and size limits, and their decoders. No
//! networking: the libp2p swarm that carries them is `cairn-node`'s (`node/src/p2p.rs`, which
//! re-exports everything here), and the layouts are specified in `docs/WIRE.md`.
//!
//! Gossip topics carry [`TxBatch`] (offers and account transactions), [`ResultBatch`],
//! [`BlockMsg`], [`ModuleAnnounce`] and [`ProposedBlock`] — each borsh with a leading version
//! byte ([`WIRE_VERSION`]) — and consensus messages (`cairn_consensus::ConsensusMessage`
//! bytes, at most [`CONSENSUS_MESSAGE_BYTES_MAX`], followed by the publisher's send number:
//! [`consensus_data`]). Request-response (`/cairn/sync/1`) carries a
//! [`SyncRequest`] and answers a [`SyncResponse`], borsh inside a CBOR byte string ([`Wire`]).
//!
//! Every encoding is canonical: a decoder accepts only what the encoder writes (no trailing
//! bytes, `Option` and `bool` bytes 0 or 1, known tags, UTF-8 strings), so decoding then
//! encoding an accepted message gives back its bytes. The fuzz targets in `fuzz/` check it.
//!
//! ```
//! use cairn_wire::{ModuleAnnounce, WIRE_VERSION};
//! let announce = ModuleAnnounce { version: WIRE_VERSION, module_id: cairn_ledger::Hash::of(b"") };
//! let bytes = announce.encode();
//! assert_eq!(bytes.len(), 33);
//! assert_eq!(ModuleAnnounce::decode(&bytes).unwrap(), announce);
//! assert!(ModuleAnnounce::decode(&[2; 33]).is_err());
//! ```

use borsh::{BorshDeserialize, BorshSerialize};
pub use cairn_ledger::snapshot::{STATE_CHUNK_BYTES_MAX, STATE_CHUNK_ENTRIES_MAX, StateChunk};
use cairn_ledger::{Block, Commit, Error, Hash, JobResult, Result, Transaction};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Version byte of every gossip and sync message.
pub const WIRE_VERSION: u8 = 1;
/// The largest gossip message (a block with its transactions): on `blocks` and `proposals`.
pub const GOSSIP_MESSAGE_BYTES_MAX: usize = 10 << 20;
/// The largest message on `txs` and `results`: a batch is cut at [`BATCH_BYTES_MAX`] of
/// items, and one item may be an offer with an input of `input_bytes_max` (256 KiB by
/// default) or a result with an output of `output_bytes_max`.
pub const BATCH_MESSAGE_BYTES_MAX: usize = 2 << 20;
/// What a gossip message carries besides its data (its topic and the protobuf framing; gossip
/// is not signed), with room to spare: per-topic size limits apply to the whole.
pub const GOSSIP_ENVELOPE_BYTES: usize = 1 << 10;
// What a chain may set fits the wire: one offer or result with the largest input or output
// (plus its other fields, under 1 KiB) in a batch message, and the largest block with a
// commit of 256 signatures (about 25 KiB) in a block message, each with its envelope.
const _: () = assert!(
    cairn_ledger::PARAMS_INPUT_BYTES_LIMIT as usize + (1 << 10) + GOSSIP_ENVELOPE_BYTES <= BATCH_MESSAGE_BYTES_MAX
);
const _: () = assert!(
    cairn_ledger::PARAMS_OUTPUT_BYTES_LIMIT as usize + (1 << 10) + GOSSIP_ENVELOPE_BYTES <= BATCH_MESSAGE_BYTES_MAX
);
const _: () = assert!(
    cairn_ledger::PARAMS_BLOCK_BYTES_LIMIT as usize + (64 << 10) + GOSSIP_ENVELOPE_BYTES <= GOSSIP_MESSAGE_BYTES_MAX
);

/// A batch holds items of at most this many bytes in all (or one larger item).
pub const BATCH_BYTES_MAX: usize = 1 << 20;
/// The largest consensus message (a vote, proposal or certificate): the version byte and the
/// largest body [`cairn_consensus::ConsensusMessage::decode`] accepts.
pub const CONSENSUS_MESSAGE_BYTES_MAX: usize = 1 + cairn_consensus::message::MESSAGE_SIZE_MAX;
/// The bytes after a consensus message on the consensus topic: its publisher's send number.
pub const CONSENSUS_SEND_BYTES: usize = 8;
/// The most items in one offer or result batch.
pub const BATCH_ITEMS_MAX: usize = 1_000;
/// The most blocks in one sync response.
pub const SYNC_BLOCKS_MAX: u32 = 32;
/// The largest sync request.
pub const SYNC_REQUEST_BYTES_MAX: u64 = 1 << 10;
/// The largest sync response (blocks or a module).
pub const SYNC_RESPONSE_BYTES_MAX: u64 = 64 << 20;

/// A batch of job offers and account transactions.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxBatch {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// Sender's clock; makes a re-broadcast batch a distinct message.
    pub sent_ms: u64,
    /// The transactions (no results: those have their own topic).
    pub txs: Vec<Transaction>,
}

/// A batch of provider results.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ResultBatch {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// Sender's clock.
    pub sent_ms: u64,
    /// The results.
    pub results: Vec<JobResult>,
}

/// A module stored on the sender (uploaded over RPC): providers fetch it by id over
/// request-response and compile it ahead of its first job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModuleAnnounce {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// The module's id (SHA-256 of its bytes).
    pub module_id: Hash,
}

/// The largest module announcement (it is a version byte and an id).
pub const MODULE_ANNOUNCE_BYTES_MAX: usize = 64;

/// A finalized block with its commit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockMsg {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// The block.
    pub block: Block,
    /// The commit that finalized it.
    pub commit: Commit,
}

/// A block proposed for consensus (not final): the proposal names it by hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProposedBlock {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// The block.
    pub block: Block,
}

/// A request to a peer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncRequest {
    /// Finalized blocks from `from`, at most `max` of them.
    Blocks {
        /// First height wanted.
        from: u64,
        /// How many at most.
        max: u32,
    },
    /// A blob (module) by hash.
    Blob(Hash),
    /// A block proposed at `height` (not yet final), by hash.
    Proposed {
        /// Its height.
        height: u64,
        /// Its hash.
        block_hash: Hash,
    },
    /// The peer's head block and the commit that finalized it: a height whose state it can
    /// serve (state sync).
    Snapshot,
    /// A chunk of the state at `height`: the entries from key hash `start`, at most `max`
    /// ([`STATE_CHUNK_ENTRIES_MAX`]).
    StateChunk {
        /// The height (state tree version).
        height: u64,
        /// The first key hash wanted.
        start: [u8; 32],
        /// How many entries at most.
        max: u32,
    },
}

/// A peer's answer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    /// Consecutive finalized blocks with their commits, from the height asked (may be empty).
    Blocks(Vec<(Block, Commit)>),
    /// The blob, if the peer has it.
    Blob(Option<Vec<u8>>),
    /// The peer could not answer.
    Error(String),
    /// The proposed block asked for, if the peer has it.
    Proposed(Option<Box<Block>>),
    /// The peer's head block and its commit (`None` before its first block).
    Snapshot(Option<Box<(Block, Commit)>>),
    /// The state chunk asked for (`None`: that height's state is no longer, or not yet, kept).
    StateChunk(Option<StateChunk>),
}

/// Bytes inside a CBOR byte string: the request-response envelope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Wire(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Wire {
    /// `version || borsh(value)`.
    pub fn encode<T: BorshSerialize>(value: &T) -> Wire {
        let mut b = vec![WIRE_VERSION];
        borsh::to_writer(&mut b, value).expect("borsh encoding into a Vec cannot fail");
        Wire(b)
    }

    /// Decodes, checking the version.
    pub fn decode<T: BorshDeserialize>(&self, what: &'static str) -> Result<T> {
        match self.0.split_first() {
            Some((&WIRE_VERSION, body)) => cairn_ledger::decode(what, body, usize::MAX),
            Some((&version, _)) => Err(Error::Version { what, version }),
            None => Err(Error::Decode { what, reason: "empty".into() }),
        }
    }
}

/// The `data` of a gossip message on the consensus topic: the consensus message's bytes, then
/// `send`, a `u64` little-endian that the publisher changes with every message it publishes.
/// Gossip is not signed and a message's id is the hash of its topic and data, so a
/// validator's re-send of its last votes (Tendermint's rebroadcast, byte for byte) is a new
/// gossip message only thanks to it; the copies of one publication still share one id.
pub fn consensus_data(message: &[u8], send: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + CONSENSUS_SEND_BYTES);
    data.extend_from_slice(message);
    data.extend_from_slice(&send.to_le_bytes());
    data
}

/// The consensus message and the send number of a consensus topic's `data`
/// ([`consensus_data`]); an error if it is shorter than [`CONSENSUS_SEND_BYTES`] or its
/// message longer than [`CONSENSUS_MESSAGE_BYTES_MAX`].
pub fn split_consensus_data(data: &[u8]) -> Result<(&[u8], u64)> {
    let Some(at) = data.len().checked_sub(CONSENSUS_SEND_BYTES) else {
        return Err(Error::Invalid(format!("consensus data of {} bytes, shorter than its send number", data.len())));
    };
    if at > CONSENSUS_MESSAGE_BYTES_MAX {
        return Err(Error::Invalid(format!(
            "a consensus message of {at} bytes, more than {CONSENSUS_MESSAGE_BYTES_MAX}"
        )));
    }
    let (message, send) = data.split_at(at);
    Ok((message, u64::from_le_bytes(send.try_into().expect("8 bytes"))))
}

/// Decodes a gossip envelope: at most `bytes_max` bytes, [`WIRE_VERSION`] first (every
/// envelope's first field is its version), then borsh of a `T` without trailing bytes.
fn decode_envelope<T: BorshDeserialize>(what: &'static str, data: &[u8], bytes_max: usize) -> Result<T> {
    if data.len() > bytes_max {
        return Err(Error::TooLarge { what, size: data.len(), max: bytes_max });
    }
    match data.first() {
        Some(&WIRE_VERSION) => cairn_ledger::decode(what, data, bytes_max),
        Some(&version) => Err(Error::Version { what, version }),
        None => Err(Error::Decode { what, reason: "empty".into() }),
    }
}

fn encode_envelope<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

impl TxBatch {
    /// Decodes a `txs` message: at most [`BATCH_MESSAGE_BYTES_MAX`] bytes, this wire version,
    /// at most [`BATCH_ITEMS_MAX`] transactions, each an offer or an account transaction.
    /// Signatures are not checked.
    pub fn decode(data: &[u8]) -> Result<TxBatch> {
        let batch: TxBatch = decode_envelope("transaction batch", data, BATCH_MESSAGE_BYTES_MAX)?;
        if batch.txs.len() > BATCH_ITEMS_MAX {
            return Err(Error::TooLarge { what: "transaction batch", size: batch.txs.len(), max: BATCH_ITEMS_MAX });
        }
        if batch.txs.iter().any(|tx| !matches!(tx, Transaction::Offer(_) | Transaction::Account(_))) {
            return Err(Error::Invalid("a transaction batch holds only offers and account transactions".into()));
        }
        Ok(batch)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(self)
    }
}

impl ResultBatch {
    /// Decodes a `results` message: at most [`BATCH_MESSAGE_BYTES_MAX`] bytes, this wire
    /// version, at most [`BATCH_ITEMS_MAX`] results. Signatures are not checked.
    pub fn decode(data: &[u8]) -> Result<ResultBatch> {
        let batch: ResultBatch = decode_envelope("result batch", data, BATCH_MESSAGE_BYTES_MAX)?;
        if batch.results.len() > BATCH_ITEMS_MAX {
            return Err(Error::TooLarge { what: "result batch", size: batch.results.len(), max: BATCH_ITEMS_MAX });
        }
        Ok(batch)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(self)
    }
}

impl BlockMsg {
    /// Decodes a `blocks` message: at most [`GOSSIP_MESSAGE_BYTES_MAX`] bytes, this wire
    /// version. The commit and the block's structure are not checked.
    pub fn decode(data: &[u8]) -> Result<BlockMsg> {
        decode_envelope("block", data, GOSSIP_MESSAGE_BYTES_MAX)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(self)
    }
}

impl ProposedBlock {
    /// Decodes a `proposals` message: at most [`GOSSIP_MESSAGE_BYTES_MAX`] bytes, this wire
    /// version. The block's structure is not checked.
    pub fn decode(data: &[u8]) -> Result<ProposedBlock> {
        decode_envelope("proposed block", data, GOSSIP_MESSAGE_BYTES_MAX)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(self)
    }
}

impl ModuleAnnounce {
    /// Decodes a `modules` message: at most [`MODULE_ANNOUNCE_BYTES_MAX`] bytes, this wire
    /// version.
    pub fn decode(data: &[u8]) -> Result<ModuleAnnounce> {
        decode_envelope("module announcement", data, MODULE_ANNOUNCE_BYTES_MAX)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_envelope(self)
    }
}
