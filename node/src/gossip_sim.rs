//! An in-process simulation of the gossip network at a scale one machine cannot run as
//! processes: `nodes` swarms, each with the node's own behaviours ([`crate::p2p`]: gossipsub
//! configured as the chain runs it, identify, Kademlia, the connection limits) on libp2p's
//! in-memory transport, each dialing `degree` others chosen at random (what discovery does
//! with `peers_target`), and each prunes its connections above the node's high mark as the
//! node does (`service::discovery::surplus`). One node publishes an offer-sized message on the `txs` topic, then a
//! block-sized one on `blocks`, `rounds` times from random publishers; every node accepts what
//! it receives after `validation` (the time a node takes to check a message before it forwards
//! it), and the simulation records when and from whom each node first received each message:
//! how many nodes a message reaches, how fast, and over how many hops.
//!
//! `cairn testnet sim` runs it; BENCHMARKS.md ("Gossip at 200 nodes") has its numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_ledger::{Hash, Keypair};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::p2p::{BehaviourEvent, Topics, build_memory_swarm};

/// The most nodes a simulation runs (each is a swarm in this process).
pub const SIM_NODES_MAX: usize = 2_000;
/// How long the simulation waits for a message to reach every node.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the meshes get to form once every node is connected (several gossipsub
/// heartbeats of 700 ms).
const MESH_SETTLE: Duration = Duration::from_secs(4);

/// What to simulate.
#[derive(Clone, Debug, Serialize)]
pub struct SimOptions {
    /// Nodes.
    pub nodes: usize,
    /// Peers each node dials.
    pub degree: usize,
    /// Messages of each kind published, each by a random node.
    pub rounds: usize,
    /// Bytes of an offer-sized message (a batch of one offer).
    pub offer_bytes: usize,
    /// Bytes of a block-sized message.
    pub block_bytes: usize,
    /// How long a node checks a message before accepting (and forwarding) it.
    pub validation: Duration,
    /// Seed of the graph and the publishers.
    pub seed: u64,
    /// The nodes' `peers_target`: each prunes above `PEERS_HIGH_FACTOR` times it, as a node
    /// does (0: no pruning).
    pub peers_target: usize,
}

/// How one message spread.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    /// `offer` or `block`.
    pub kind: String,
    /// Its size.
    pub bytes: usize,
    /// The node that published it.
    pub publisher: usize,
    /// Nodes that received it (the publisher not counted), of `nodes - 1`.
    pub reached: usize,
    /// Time from the publish until a node received it: median, 90th percentile, last, in ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p90_ms: f64,
    /// See `p50_ms`.
    pub max_ms: f64,
    /// Hops from the publisher along the path it came by: median and largest.
    pub hops_p50: usize,
    /// See `hops_p50`.
    pub hops_max: usize,
}

/// A simulation's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// What was simulated.
    pub options: SimOptions,
    /// Connections per node when the messages were published: mean and largest.
    pub connections_mean: f64,
    /// See `connections_mean`.
    pub connections_max: usize,
    /// Time to start the swarms, connect them and let their meshes form.
    pub setup_s: f64,
    /// Each message.
    pub spreads: Vec<Spread>,
}

enum Cmd {
    Dial(Multiaddr),
    Publish(IdentTopic, Vec<u8>),
    Peers(tokio::sync::oneshot::Sender<usize>),
}

/// A node's first receipt of a message.
struct Receipt {
    node: usize,
    id: gossipsub::MessageId,
    from: PeerId,
    at: Instant,
}

/// Runs the simulation.
pub async fn run(opts: &SimOptions) -> anyhow::Result<SimReport> {
    anyhow::ensure!((2..=SIM_NODES_MAX).contains(&opts.nodes), "2 to {SIM_NODES_MAX} nodes");
    anyhow::ensure!((1..opts.nodes).contains(&opts.degree), "a degree from 1 to nodes − 1");
    let started = Instant::now();
    let topics = Topics::new(&Hash::of(b"cairn gossip simulation"));
    let (receipts_tx, mut receipts) = mpsc::unbounded_channel::<Receipt>();
    let mut cmds = Vec::new();
    let mut addrs = Vec::new();
    let mut peer_ids = Vec::new();
    for i in 0..opts.nodes {
        let key = Keypair::from_seed(Hash::of_parts(&[b"sim node", &(i as u64).to_le_bytes()]).0);
        let mut swarm = build_memory_swarm(&key, &topics)?;
        peer_ids.push(*swarm.local_peer_id());
        swarm.listen_on("/memory/0".parse().expect("a memory address")).context("listen")?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        addrs.push(addr);
        let (tx, rx) = mpsc::unbounded_channel();
        cmds.push(tx);
        let high = opts.peers_target.saturating_mul(crate::service::discovery::PEERS_HIGH_FACTOR);
        tokio::spawn(drive(i, swarm, rx, receipts_tx.clone(), opts.validation, high));
    }
    // The graph: each node dials `degree` others.
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    for (i, cmd) in cmds.iter().enumerate() {
        let mut others: Vec<usize> = (0..opts.nodes).filter(|j| *j != i).collect();
        others.shuffle(&mut rng);
        for j in others.into_iter().take(opts.degree) {
            let _ = cmd.send(Cmd::Dial(addrs[j].clone()));
        }
    }
    // Connected: every node has at least its dials' worth of peers (or all it can have).
    let deadline = Instant::now() + SPREAD_TIMEOUT * 3;
    let connections = loop {
        let counts = peer_counts(&cmds).await;
        if counts.iter().all(|c| *c >= opts.degree) || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(MESH_SETTLE).await;
    let connections = {
        let now = peer_counts(&cmds).await;
        if now.is_empty() { connections } else { now }
    };
    let setup_s = started.elapsed().as_secs_f64();
    let index: BTreeMap<PeerId, usize> = peer_ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut spreads = Vec::new();
    for round in 0..opts.rounds {
        for (kind, topic, bytes) in
            [("offer", &topics.txs, opts.offer_bytes), ("block", &topics.blocks, opts.block_bytes)]
        {
            let publisher = rng.gen_range(0..opts.nodes);
            let mut data = vec![0u8; bytes.max(16)];
            rng.fill(&mut data[..]);
            let published = Instant::now();
            let _ = cmds[publisher].send(Cmd::Publish(topic.clone(), data));
            // First receipt per node of this message (the publisher's own id is unknown until
            // the first receipt names it).
            let mut firsts: BTreeMap<usize, (Instant, PeerId)> = BTreeMap::new();
            let mut id: Option<gossipsub::MessageId> = None;
            let until = Instant::now() + SPREAD_TIMEOUT;
            while firsts.len() < opts.nodes - 1 {
                let left = until.saturating_duration_since(Instant::now());
                let Ok(Some(r)) = tokio::time::timeout(left, receipts.recv()).await else { break };
                if id.get_or_insert_with(|| r.id.clone()) != &r.id {
                    continue;
                }
                firsts.entry(r.node).or_insert((r.at, r.from));
            }
            spreads.push(spread(kind, bytes, publisher, published, &firsts, &index));
            tracing::debug!(round, kind, reached = firsts.len(), "spread measured");
            // Late copies of this message are not the next one's.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while receipts.try_recv().is_ok() {}
        }
    }
    Ok(SimReport {
        options: opts.clone(),
        connections_mean: connections.iter().sum::<usize>() as f64 / connections.len().max(1) as f64,
        connections_max: connections.iter().copied().max().unwrap_or(0),
        setup_s,
        spreads,
    })
}

async fn peer_counts(cmds: &[mpsc::UnboundedSender<Cmd>]) -> Vec<usize> {
    let mut counts = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if cmd.send(Cmd::Peers(tx)).is_ok()
            && let Ok(n) = rx.await
        {
            counts.push(n);
        }
    }
    counts
}

/// The spread of one message from its first receipts.
fn spread(
    kind: &str,
    bytes: usize,
    publisher: usize,
    published: Instant,
    firsts: &BTreeMap<usize, (Instant, PeerId)>,
    index: &BTreeMap<PeerId, usize>,
) -> Spread {
    let mut ms: Vec<f64> = firsts.values().map(|(at, _)| (*at - published).as_secs_f64() * 1_000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mut hops: Vec<usize> = firsts.keys().filter_map(|n| hops_to(*n, publisher, firsts, index)).collect();
    hops.sort_unstable();
    let at = |v: &[f64], q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Spread {
        kind: kind.to_owned(),
        bytes,
        publisher,
        reached: firsts.len(),
        p50_ms: at(&ms, 0.5),
        p90_ms: at(&ms, 0.9),
        max_ms: ms.last().copied().unwrap_or(0.0),
        hops_p50: hops.get(hops.len() / 2).copied().unwrap_or(0),
        hops_max: hops.last().copied().unwrap_or(0),
    }
}

/// Hops from `publisher` to `node` along the peers each first received the message from.
fn hops_to(
    node: usize,
    publisher: usize,
    firsts: &BTreeMap<usize, (Instant, PeerId)>,
    index: &BTreeMap<PeerId, usize>,
) -> Option<usize> {
    let (mut at, mut hops, mut seen) = (node, 0, BTreeSet::new());
    while at != publisher {
        if !seen.insert(at) {
            return None;
        }
        at = *index.get(&firsts.get(&at)?.1)?;
        hops += 1;
    }
    Some(hops)
}

/// One node: carries out commands, accepts every message after `validation`, and reports
/// each message it receives.
async fn drive(
    node: usize,
    mut swarm: libp2p::Swarm<crate::p2p::Behaviour>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    receipts: mpsc::UnboundedSender<Receipt>,
    validation: Duration,
    high: usize,
) {
    let (accept_tx, mut accept) = mpsc::unbounded_channel::<(gossipsub::MessageId, PeerId)>();
    let mut maintenance = tokio::time::interval(Duration::from_millis(700));
    loop {
        tokio::select! {
            _ = maintenance.tick(), if high > 0 => {
                let connected: std::collections::HashSet<PeerId> = swarm.connected_peers().copied().collect();
                let keep = swarm.behaviour().gossipsub.all_mesh_peers().copied().collect();
                let local = *swarm.local_peer_id();
                for peer in crate::service::discovery::surplus(&local, &connected, &keep, high) {
                    let _ = swarm.disconnect_peer_id(peer);
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Dial(addr)) => { let _ = swarm.dial(addr); }
                Some(Cmd::Publish(topic, data)) => { let _ = swarm.behaviour_mut().gossipsub.publish(topic, data); }
                Some(Cmd::Peers(reply)) => { let _ = reply.send(swarm.connected_peers().count()); }
                None => return,
            },
            Some((id, from)) = accept.recv() => {
                swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, MessageAcceptance::Accept);
            }
            ev = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                    propagation_source, message_id, ..
                })) = ev
                {
                    let _ = receipts.send(Receipt { node, id: message_id.clone(), from: propagation_source, at: Instant::now() });
                    if validation.is_zero() {
                        let _ = accept_tx.send((message_id, propagation_source));
                    } else {
                        let accept_tx = accept_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(validation).await;
                            let _ = accept_tx.send((message_id, propagation_source));
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small network: every message reaches every node, over more than one hop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_reaches_every_node_of_a_sparse_network() {
        let opts = SimOptions {
            nodes: 30,
            degree: 3,
            rounds: 2,
            offer_bytes: 400,
            block_bytes: 64 << 10,
            validation: Duration::from_millis(1),
            seed: 1,
            peers_target: 2,
        };
        let report = run(&opts).await.expect("simulation");
        assert_eq!(report.spreads.len(), 4);
        for s in &report.spreads {
            assert_eq!(s.reached, opts.nodes - 1, "{s:?}");
            assert!(s.hops_max >= 1 && s.max_ms >= s.p50_ms, "{s:?}");
        }
        // Kademlia's walks connect more peers; pruning holds each node near its high mark (a
        // node keeps its mesh peers, so it may stay a little above).
        assert!(report.connections_mean >= 2.0, "{report:?}");
    }
}
