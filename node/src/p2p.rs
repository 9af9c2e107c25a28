//! The peer-to-peer layer: libp2p swarm (TCP + Noise + Yamux, identify, ping, gossipsub,
//! request-response, Kademlia for discovery) and the wire formats carried over it — those are the `cairn-wire`
//! crate's (`wire/src/lib.rs`), re-exported here.
//!
//! Gossip topics (one per chain, named with the first 16 hex digits of the chain id):
//! `txs` carries [`TxBatch`] (offers and account transactions), `results` [`ResultBatch`], `blocks` [`BlockMsg`],
//! `modules` [`ModuleAnnounce`] (a module uploaded to a node, so providers fetch and compile it
//! before its first job) — each borsh with a leading version byte. Validators of a chain with several validators also use
//! `consensus` (the consensus engine's messages, `cairn_consensus::ConsensusMessage` bytes, at
//! most [`CONSENSUS_MESSAGE_BYTES_MAX`]) and `proposals` ([`ProposedBlock`]: the block a
//! proposal names by hash). Request-response (`/cairn/sync/1`) carries a
//! [`SyncRequest`] and answers a [`SyncResponse`], borsh inside a CBOR byte string.

use std::time::Duration;

use anyhow::Context;
use cairn_ledger::{Hash, Keypair};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, connection_limits, identify, kad, noise, ping, tcp, yamux};

pub use cairn_wire::{
    BATCH_BYTES_MAX, BATCH_ITEMS_MAX, BATCH_MESSAGE_BYTES_MAX, BlockMsg, CONSENSUS_MESSAGE_BYTES_MAX,
    CONSENSUS_SEND_BYTES, GOSSIP_ENVELOPE_BYTES, GOSSIP_MESSAGE_BYTES_MAX, MODULE_ANNOUNCE_BYTES_MAX, ModuleAnnounce,
    ProposedBlock, ResultBatch, SYNC_BLOCKS_MAX, SYNC_REQUEST_BYTES_MAX, SYNC_RESPONSE_BYTES_MAX, SyncRequest,
    SyncResponse, TxBatch, WIRE_VERSION, Wire, consensus_data, split_consensus_data,
};

/// Messages waiting to be sent on one connection. A peer too slow to keep up loses the
/// oldest ones (gossipsub reports it: [`SLOW_PEER_REPORTS_MAX`]); the wait is also bounded in
/// time ([`PUBLISH_QUEUE_DURATION`], [`FORWARD_QUEUE_DURATION`]). With the per-topic sizes
/// ([`BATCH_MESSAGE_BYTES_MAX`], [`GOSSIP_MESSAGE_BYTES_MAX`], …), one connection's queue holds
/// at most a few seconds of the chain's traffic.
pub const CONNECTION_QUEUE_MESSAGES_MAX: usize = 128;
/// How long a message this node publishes may wait for a slow peer before it is dropped for
/// that peer.
pub const PUBLISH_QUEUE_DURATION: Duration = Duration::from_secs(2);
/// How long a message this node forwards may wait for a slow peer.
pub const FORWARD_QUEUE_DURATION: Duration = Duration::from_millis(500);
/// A received message larger than this (its protobuf encoding) is announced at once to the
/// node's mesh peers with IDONTWANT, so that they do not send it again: each copy costs its
/// receiver a decoding and a hash before it is found a duplicate. Every
/// batch of transactions or results under load is larger; single votes are not.
pub const IDONTWANT_BYTES_MIN: usize = 1024;
/// A peer reported slow (messages dropped for it) this many times within
/// [`SLOW_PEER_WINDOW`] is disconnected: it can reconnect and sync, but it does not hold
/// this node's queues meanwhile.
pub const SLOW_PEER_REPORTS_MAX: u32 = 3;
/// See [`SLOW_PEER_REPORTS_MAX`].
pub const SLOW_PEER_WINDOW: Duration = Duration::from_secs(10);
/// How long a sync request may take.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
/// Sync streams open at once on one connection, requests this node sends and answers it
/// owes together, at most (libp2p's own default is 100): a peer cannot have more requests
/// waiting here on a connection than this. A node's own requests to one peer stay well under
/// it: four state-sync lanes, one block request, its blob fetches and proposed blocks.
pub const SYNC_STREAMS_PER_CONNECTION_MAX: usize = 32;
/// How long a Kademlia query (a bootstrap's random walk, a lookup) may take.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Kademlia re-bootstraps this often on its own (besides when the node is short of peers).
pub const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// Inbound connections established at once, at most: strangers cannot take more of the
/// node's sockets and memory than this (outbound ones are the node's own dials).
pub const INBOUND_CONNECTIONS_MAX: u32 = 128;
/// Inbound connections still in their handshake, at most.
pub const PENDING_INBOUND_MAX: u32 = 32;
/// Connections to one peer at most (two nodes dialing each other at once get two).
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Addresses of one peer taken from its identify answer (a peer may claim any number).
pub const PEER_ADDRESSES_MAX: usize = 8;
/// Idle connections are closed after this.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);
/// Gossipsub score of each message a peer delivered that the node rejected in validation, on
/// every topic (squared over the count: two rejected messages cost four times one).
pub const INVALID_MESSAGE_PENALTY: f64 = -100.0;
/// How much of a peer's count of rejected messages is left after each second.
pub const INVALID_MESSAGE_DECAY: f64 = 0.5;
/// Below this score nothing a peer sends is processed, and nothing is gossiped to it (one
/// rejected message puts a peer here for about a second, repeated ones much longer).
pub const GRAYLIST_SCORE: f64 = -80.0;

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates an event enum whose variants cannot carry docs.
    #![allow(missing_docs)]
    use super::*;

    /// The node's network behaviour.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Bounds on connections ([`INBOUND_CONNECTIONS_MAX`], …). First: a connection it
        /// denies is never seen by the others (a behaviour after it would have counted a
        /// connection the swarm then drops, and request-response asserts on that).
        pub limits: connection_limits::Behaviour,
        /// Gossip of offers, results and blocks.
        pub gossipsub: gossipsub::Behaviour,
        /// Exchange of listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Liveness.
        pub ping: ping::Behaviour,
        /// Block sync and blob fetch.
        pub sync: request_response::Behaviour<request_response::cbor::codec::Codec<Wire, Wire>>,
        /// Peer discovery (a routing table of the chain's nodes, filled from identify and
        /// bootstrap walks) and who holds which blob (provider records; no other records).
        pub kad: kad::Behaviour<crate::provider_store::ProviderStore>,
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
    /// Modules uploaded to a node.
    pub modules: IdentTopic,
    /// The chain's Kademlia protocol: nodes of other chains are not in its routing table.
    pub kad: StreamProtocol,
}

impl Topics {
    /// The topics of the chain `chain_id`.
    pub fn new(chain_id: &Hash) -> Topics {
        let id = &chain_id.to_hex()[..16];
        Topics {
            txs: IdentTopic::new(format!("/cairn/{id}/txs/2")),
            results: IdentTopic::new(format!("/cairn/{id}/results/2")),
            blocks: IdentTopic::new(format!("/cairn/{id}/blocks/2")),
            consensus: IdentTopic::new(format!("/cairn/{id}/consensus/2")),
            proposals: IdentTopic::new(format!("/cairn/{id}/proposals/2")),
            modules: IdentTopic::new(format!("/cairn/{id}/modules/2")),
            kad: StreamProtocol::try_from_owned(format!("/cairn/{id}/kad/1")).expect("starts with a slash"),
        }
    }
}

/// Gossipsub peer scoring: a peer loses [`INVALID_MESSAGE_PENALTY`] for every message of
/// any of the chain's topics the node rejects in validation (undecodable, a bad signature, a
/// signer that is not a validator, …), decaying by [`INVALID_MESSAGE_DECAY`] a second; below
/// [`GRAYLIST_SCORE`] it is ignored. The other score components are off: delivery-rate
/// penalties would punish the quiet peers of a small idle testnet, and the IP colocation
/// penalty every testnet on one machine.
pub fn peer_score(topics: &Topics) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_PENALTY,
        invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
        ..Default::default()
    };
    let params = gossipsub::PeerScoreParams {
        topics: [&topics.txs, &topics.results, &topics.blocks, &topics.consensus, &topics.proposals, &topics.modules]
            .into_iter()
            .map(|t| (t.hash(), topic.clone()))
            .collect(),
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: 0.0,
        slow_peer_weight: 0.0,
        decay_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: GRAYLIST_SCORE,
        ..Default::default()
    };
    (params, thresholds)
}

/// The id of a gossip message: the hash of its topic and bytes, so that identical
/// transactions, results or blocks published by several nodes are one message, and the same
/// bytes on two topics are two (junk sent on one topic must not pass for a duplicate of an
/// honest message on another: gossipsub would drop the honest one unseen and penalise its
/// senders as it penalised the junk's). Gossip is not signed, so nothing else identifies a
/// message; a validator's re-sends of its votes differ in their send number
/// ([`cairn_wire::consensus_data`]).
pub fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = m.topic.as_str().as_bytes();
    let id = Hash::of_parts(&[&(topic.len() as u64).to_be_bytes(), topic, &m.data]);
    gossipsub::MessageId::from(id.0.to_vec())
}

/// The libp2p peer id of the node whose key is `key` (a node's libp2p identity is its Cairn
/// key); `None` if the bytes are not an ed25519 public key.
pub fn peer_id_of(key: &cairn_ledger::PublicKey) -> Option<libp2p::PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(libp2p::identity::PublicKey::from(ed).to_peer_id())
}

/// The libp2p identity of a Cairn key (the same ed25519 key).
pub fn identity(key: &Keypair) -> anyhow::Result<libp2p::identity::Keypair> {
    libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes()).context("ed25519 key for libp2p")
}

/// Builds the swarm on TCP, subscribed to the chain's topics.
pub fn build_swarm(key: &Keypair, topics: &Topics) -> anyhow::Result<Swarm<Behaviour>> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(identity(key)?)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key| behaviour(key, topics).map_err(Box::<dyn std::error::Error + Send + Sync>::from))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    subscribed(swarm, topics)
}

/// Builds the same swarm on libp2p's in-memory transport (`/memory/<port>` addresses, Noise
/// and Yamux as on TCP): many nodes in one process, for simulations of the network.
pub fn build_memory_swarm(key: &Keypair, topics: &Topics) -> anyhow::Result<Swarm<Behaviour>> {
    use libp2p::Transport;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(identity(key)?)
        .with_tokio()
        .with_other_transport(|key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            Ok(libp2p::core::transport::MemoryTransport::default()
                .upgrade(libp2p::core::upgrade::Version::V1)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .boxed())
        })?
        .with_behaviour(|key| behaviour(key, topics).map_err(Box::<dyn std::error::Error + Send + Sync>::from))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    subscribed(swarm, topics)
}

fn subscribed(mut swarm: Swarm<Behaviour>, topics: &Topics) -> anyhow::Result<Swarm<Behaviour>> {
    for t in [&topics.txs, &topics.results, &topics.blocks, &topics.modules] {
        swarm.behaviour_mut().gossipsub.subscribe(t).context("subscribe")?;
    }
    Ok(swarm)
}

/// The node's behaviours: gossipsub as the chain needs it, identify, ping, sync, Kademlia and
/// the connection limits.
fn behaviour(key: &libp2p::identity::Keypair, topics: &Topics) -> anyhow::Result<Behaviour> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        // Not signed: every payload worth trusting carries its own signature (offers,
        // results, votes, commits), and each copy of a signed gossip message cost its
        // receiver a signature check before it was found a duplicate. A message that carries
        // an author, a sequence number or a signature is rejected.
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(GOSSIP_MESSAGE_BYTES_MAX)
        // Received messages are held to these with their envelope (topic, framing);
        // validation then holds the data to its own limit.
        .max_transmit_size_for_topic(BATCH_MESSAGE_BYTES_MAX + GOSSIP_ENVELOPE_BYTES, topics.txs.hash())
        .max_transmit_size_for_topic(BATCH_MESSAGE_BYTES_MAX + GOSSIP_ENVELOPE_BYTES, topics.results.hash())
        .max_transmit_size_for_topic(
            CONSENSUS_MESSAGE_BYTES_MAX + CONSENSUS_SEND_BYTES + GOSSIP_ENVELOPE_BYTES,
            topics.consensus.hash(),
        )
        .max_transmit_size_for_topic(MODULE_ANNOUNCE_BYTES_MAX + GOSSIP_ENVELOPE_BYTES, topics.modules.hash())
        .connection_handler_queue_len(CONNECTION_QUEUE_MESSAGES_MAX)
        .publish_queue_duration(PUBLISH_QUEUE_DURATION)
        .forward_queue_duration(FORWARD_QUEUE_DURATION)
        // Messages worth it (blocks, batches) are not sent to a peer that has them already.
        .idontwant_message_size_threshold(IDONTWANT_BYTES_MIN)
        .idontwant_on_publish(true)
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
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
    let (params, thresholds) = peer_score(topics);
    gossipsub.with_peer_score(params, thresholds).map_err(|e| anyhow::anyhow!("gossipsub scoring: {e}"))?;
    let identify = identify::Behaviour::new(identify::Config::new("/cairn/id/1".into(), key.public()));
    let codec = request_response::cbor::codec::Codec::<Wire, Wire>::default()
        .set_request_size_maximum(SYNC_REQUEST_BYTES_MAX)
        .set_response_size_maximum(SYNC_RESPONSE_BYTES_MAX);
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new("/cairn/sync/1"), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(SYNC_TIMEOUT)
            .with_max_concurrent_streams(SYNC_STREAMS_PER_CONNECTION_MAX),
    );
    let mut kad_config = kad::Config::new(topics.kad.clone());
    kad_config
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_periodic_bootstrap_interval(Some(KAD_BOOTSTRAP_INTERVAL))
        // Nothing a peer sends is stored by Kademlia itself: the node keeps only provider
        // records of blobs, in their own bounded share (`service/blobs.rs`, `provider_store`).
        .set_record_filtering(kad::StoreInserts::FilterBoth);
    let peer_id = key.public().to_peer_id();
    let store = crate::provider_store::ProviderStore::new(peer_id);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
    // A server from the start: nodes of a local network (or a testnet) have no
    // confirmed external address, and clients alone find nobody.
    kad.set_mode(Some(kad::Mode::Server));
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(Some(INBOUND_CONNECTIONS_MAX))
            .with_max_pending_incoming(Some(PENDING_INBOUND_MAX))
            .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX)),
    );
    Ok(Behaviour { limits, gossipsub, identify, ping: ping::Behaviour::default(), sync, kad })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that sends a message the node rejects in validation is penalised: its score
    /// drops below the graylist threshold at once.
    #[tokio::test]
    async fn a_peer_whose_message_is_rejected_loses_score() {
        use futures::StreamExt;
        use libp2p::swarm::SwarmEvent;

        let topics = Topics::new(&Hash::of(b"scoring"));
        let mut a = build_swarm(&Keypair::from_seed([1; 32]), &topics).expect("swarm a");
        let mut b = build_swarm(&Keypair::from_seed([2; 32]), &topics).expect("swarm b");
        for s in [&mut a, &mut b] {
            s.behaviour_mut().gossipsub.subscribe(&topics.consensus).expect("subscribe");
        }
        b.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address")).expect("listen");
        let a_id = *a.local_peer_id();
        let b_id = *b.local_peer_id();
        let run = async {
            let mut published = false;
            loop {
                tokio::select! {
                    ev = b.select_next_some() => match ev {
                        SwarmEvent::NewListenAddr { address, .. } => a.dial(address).expect("dial"),
                        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                            propagation_source,
                            message_id,
                            ..
                        })) => {
                            assert_eq!(propagation_source, a_id);
                            assert_eq!(b.behaviour().gossipsub.peer_score(&a_id), Some(0.0), "no penalty yet");
                            b.behaviour_mut().gossipsub.report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                gossipsub::MessageAcceptance::Reject,
                            );
                            return b.behaviour().gossipsub.peer_score(&a_id);
                        }
                        _ => {}
                    },
                    ev = a.select_next_some() => {
                        if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                            peer_id,
                            topic,
                        })) = ev
                            && peer_id == b_id
                            && topic == topics.consensus.hash()
                            && !published
                        {
                            a.behaviour_mut()
                                .gossipsub
                                .publish(topics.consensus.clone(), b"not a consensus message".to_vec())
                                .expect("publish");
                            published = true;
                        }
                    }
                }
            }
        };
        let score = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the message arrives");
        let score = score.expect("scoring is on");
        assert!(score < GRAYLIST_SCORE, "one rejected message graylists its sender: {score}");
    }

    /// How fast one connection carries sync answers of about 1 MiB (a state chunk's size), one
    /// request at a time, as state sync asks them. Run by hand, release build:
    /// `cargo test --release -p cairn-node --lib -- --ignored --nocapture sync_answers_per_second`.
    #[tokio::test]
    #[ignore = "a measurement, run by hand"]
    async fn sync_answers_per_second() {
        use futures::StreamExt;
        use libp2p::swarm::SwarmEvent;

        const ANSWERS: usize = 50;
        let topics = Topics::new(&Hash::of(b"throughput"));
        let mut server = build_swarm(&Keypair::from_seed([1; 32]), &topics).expect("swarm");
        let mut client = build_swarm(&Keypair::from_seed([2; 32]), &topics).expect("swarm");
        server.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address")).expect("listen");
        let server_id = *server.local_peer_id();
        let answer = Wire::encode(&SyncResponse::Blob(Some(vec![7; 1 << 20])));
        let request = Wire::encode(&SyncRequest::Blob(Hash::of(b"x")));
        let mut started = None;
        let mut times = Vec::new();
        let mut asked = std::time::Instant::now();
        loop {
            tokio::select! {
                ev = server.select_next_some() => match ev {
                    SwarmEvent::NewListenAddr { address, .. } => client.dial(address).expect("dial"),
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. },
                        ..
                    })) => {
                        server.behaviour_mut().sync.send_response(channel, answer.clone()).expect("respond");
                    }
                    _ => {}
                },
                ev = client.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        started = Some(std::time::Instant::now());
                        asked = std::time::Instant::now();
                        client.behaviour_mut().sync.send_request(&server_id, request.clone());
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                        message: request_response::Message::Response { .. },
                        ..
                    })) => {
                        times.push(asked.elapsed());
                        if times.len() == ANSWERS {
                            break;
                        }
                        asked = std::time::Instant::now();
                        client.behaviour_mut().sync.send_request(&server_id, request.clone());
                    }
                    _ => {}
                },
            }
        }
        let all = started.expect("connected").elapsed();
        times.sort();
        println!(
            "{ANSWERS} answers of 1 MiB in {all:?}: median {:?}, max {:?}",
            times[ANSWERS / 2],
            times[ANSWERS - 1]
        );
    }

    #[test]
    fn a_rebroadcast_consensus_message_is_a_new_gossip_message_and_a_repeated_transaction_is_not() {
        let topics = Topics::new(&Hash::of(b"ids"));
        let message = |topic: &IdentTopic, data: Vec<u8>| gossipsub::Message {
            source: None,
            data,
            sequence_number: None,
            topic: topic.hash(),
        };
        let vote = |send: u64| message(&topics.consensus, cairn_wire::consensus_data(b"the same vote", send));
        assert_eq!(message_id(&vote(1)), message_id(&vote(1)), "one publication");
        assert_ne!(message_id(&vote(1)), message_id(&vote(2)), "a re-send");
        let txs = || message(&topics.txs, b"the same transactions".to_vec());
        assert_eq!(message_id(&txs()), message_id(&txs()), "published by two nodes: one message");
    }

    #[test]
    fn a_validators_peer_id_is_derived_from_its_key() {
        let key = Keypair::from_seed([4; 32]);
        let id = identity(&key).expect("identity").public().to_peer_id();
        assert_eq!(peer_id_of(&key.public()), Some(id));
        assert_ne!(peer_id_of(&Keypair::from_seed([5; 32]).public()), Some(id));
    }
}
