//! The peer-to-peer layer: libp2p swarm (TCP + Noise + Yamux, identify, ping, gossipsub,
//! request-response) and the wire formats carried over it.
//!
//! Gossip topics (one per chain, named with the first 16 hex digits of the chain id):
//! `txs` carries [`TxBatch`] (offers and account transactions), `results` [`ResultBatch`], `blocks` [`BlockMsg`] — each
//! borsh with a leading version byte. Validators of a chain with several validators also use
//! `consensus` (the consensus engine's messages, `cairn_consensus::ConsensusMessage` bytes, at
//! most [`CONSENSUS_MESSAGE_BYTES_MAX`]) and `proposals` ([`ProposedBlock`]: the block a
//! proposal names by hash). Request-response (`/cairn/sync/1`) carries a
//! [`SyncRequest`] and answers a [`SyncResponse`], borsh inside a CBOR byte string.

use std::time::Duration;

use anyhow::Context;
use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{Block, Commit, Hash, JobResult, Keypair, Transaction};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, identify, noise, ping, tcp, yamux};
use serde::{Deserialize, Serialize};

/// Version byte of every gossip and sync message.
pub const WIRE_VERSION: u8 = 1;
/// The largest gossip message (a block with its transactions).
pub const GOSSIP_MESSAGE_BYTES_MAX: usize = 10 << 20;
/// The largest consensus message (a vote, proposal or certificate).
pub const CONSENSUS_MESSAGE_BYTES_MAX: usize = 64 << 10;
/// The most items in one offer or result batch.
pub const BATCH_ITEMS_MAX: usize = 1_000;
/// The most blocks in one sync response.
pub const SYNC_BLOCKS_MAX: u32 = 32;
/// The largest sync request.
pub const SYNC_REQUEST_BYTES_MAX: u64 = 1 << 10;
/// The largest sync response (blocks or a module).
pub const SYNC_RESPONSE_BYTES_MAX: u64 = 64 << 20;
/// How long a sync request may take.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
/// Idle connections are closed after this.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);

/// A batch of job offers and account transactions.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct TxBatch {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// Sender's clock; makes a re-broadcast batch a distinct message.
    pub sent_ms: u64,
    /// The transactions (no results: those have their own topic).
    pub txs: Vec<Transaction>,
}

/// A batch of provider results.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct ResultBatch {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// Sender's clock.
    pub sent_ms: u64,
    /// The results.
    pub results: Vec<JobResult>,
}

/// A finalized block with its commit.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct BlockMsg {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// The block.
    pub block: Block,
    /// The commit that finalized it.
    pub commit: Commit,
}

/// A block proposed for consensus (not final): the proposal names it by hash.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct ProposedBlock {
    /// [`WIRE_VERSION`].
    pub version: u8,
    /// The block.
    pub block: Block,
}

/// A request to a peer.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
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
}

/// A peer's answer.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    /// Consecutive finalized blocks with their commits, from the height asked (may be empty).
    Blocks(Vec<(Block, Commit)>),
    /// The blob, if the peer has it.
    Blob(Option<Vec<u8>>),
    /// The peer could not answer.
    Error(String),
    /// The proposed block asked for, if the peer has it.
    Proposed(Option<Box<Block>>),
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
    pub fn decode<T: BorshDeserialize>(&self, what: &'static str) -> anyhow::Result<T> {
        match self.0.split_first() {
            Some((&WIRE_VERSION, body)) => Ok(cairn_ledger::decode(what, body, usize::MAX)?),
            Some((v, _)) => anyhow::bail!("unsupported {what} version {v}"),
            None => anyhow::bail!("empty {what}"),
        }
    }
}

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates an event enum whose variants cannot carry docs.
    #![allow(missing_docs)]
    use super::*;

    /// The node's network behaviour.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Gossip of offers, results and blocks.
        pub gossipsub: gossipsub::Behaviour,
        /// Exchange of listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Block sync and blob fetch.
        pub sync: request_response::Behaviour<request_response::cbor::codec::Codec<Wire, Wire>>,
    }
}

/// The gossip topics of one chain.
#[derive(Clone, Debug)]
pub struct Topics {
    /// Job offers and account transactions.
    pub txs: IdentTopic,
    /// Provider results.
    pub results: IdentTopic,
    /// Finalized blocks.
    pub blocks: IdentTopic,
    /// Consensus messages (validators only).
    pub consensus: IdentTopic,
    /// Proposed blocks (validators only).
    pub proposals: IdentTopic,
}

impl Topics {
    /// The topics of the chain `chain_id`.
    pub fn new(chain_id: &Hash) -> Topics {
        let id = &chain_id.to_hex()[..16];
        Topics {
            txs: IdentTopic::new(format!("/cairn/{id}/txs/1")),
            results: IdentTopic::new(format!("/cairn/{id}/results/1")),
            blocks: IdentTopic::new(format!("/cairn/{id}/blocks/1")),
            consensus: IdentTopic::new(format!("/cairn/{id}/consensus/1")),
            proposals: IdentTopic::new(format!("/cairn/{id}/proposals/1")),
        }
    }
}

/// The libp2p identity of a Cairn key (the same ed25519 key).
pub fn identity(key: &Keypair) -> anyhow::Result<libp2p::identity::Keypair> {
    libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes()).context("ed25519 key for libp2p")
}

/// Builds the swarm, subscribed to the chain's topics.
pub fn build_swarm(key: &Keypair, topics: &Topics) -> anyhow::Result<Swarm<Behaviour>> {
    let id = identity(key)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(id)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .validate_messages()
                .message_id_fn(|m| gossipsub::MessageId::from(Hash::of(&m.data).0.to_vec()))
                .max_transmit_size(GOSSIP_MESSAGE_BYTES_MAX)
                .heartbeat_interval(Duration::from_millis(700))
                // Small clusters: a 3-4 node testnet must form a mesh.
                .mesh_n(3)
                .mesh_n_low(1)
                .mesh_n_high(6)
                .mesh_outbound_min(1)
                .flood_publish(true)
                // Large IHAVE lists get whole RPCs rejected by peers: cap them.
                .max_control_messages_sent(400)
                .build()
                .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
            let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
                .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
            let identify = identify::Behaviour::new(identify::Config::new("/cairn/id/1".into(), key.public()));
            let codec = request_response::cbor::codec::Codec::<Wire, Wire>::default()
                .set_request_size_maximum(SYNC_REQUEST_BYTES_MAX)
                .set_response_size_maximum(SYNC_RESPONSE_BYTES_MAX);
            let sync = request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new("/cairn/sync/1"), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(SYNC_TIMEOUT),
            );
            Ok(Behaviour { gossipsub, identify, ping: ping::Behaviour::default(), sync })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    for t in [&topics.txs, &topics.results, &topics.blocks] {
        swarm.behaviour_mut().gossipsub.subscribe(t).context("subscribe")?;
    }
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trips_and_checks_its_version() {
        let w = Wire::encode(&SyncRequest::Blocks { from: 3, max: 7 });
        assert_eq!(w.0, vec![1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
        assert!(matches!(w.decode::<SyncRequest>("req"), Ok(SyncRequest::Blocks { from: 3, max: 7 })));
        let mut bad = w.clone();
        bad.0[0] = 2;
        assert!(bad.decode::<SyncRequest>("req").is_err());
        assert!(Wire(vec![]).decode::<SyncRequest>("req").is_err());
    }
}
