//! The handlers' verdicts and the peer scores they lead to, over real libp2p on 127.0.0.1.
//!
//! The node under test is a validator built with [`Node::new`] on a real store and swarm,
//! driven turn by turn through its own handlers — swarm events, its background events (verified
//! gossip, executed blocks), then consensus, as its loop does (timers and maintenance left
//! out: nothing here waits for them) — so that a test can read its gossipsub scores between
//! turns. Its peers are bare swarms from [`p2p::build_swarm`] that publish what a test hands
//! them and answer the node's requests.
//!
//! A message's verdict is read from the sender's score at the node. With the node's scoring
//! ([`p2p::peer_score`]) a rejected message costs its sender and nothing else moves the score;
//! the verdict tests also count first deliveries (+1 a message), so an accepted message shows
//! as +1, an ignored one as 0 and a rejected one as a penalty.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use cairn_consensus::ROUNDS_AHEAD_MAX;
use cairn_contracts::NONCE_WINDOW;
use cairn_vm::{Vm, VmConfig};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, request_response};
use tokio::sync::{mpsc, watch};

use super::*;
use crate::backpressure::Admission;
use crate::chain::{Chain, ExecutedBlock, Lookup, persist};
use crate::config::NodeConfig;
use crate::p2p::{BehaviourEvent, GRAYLIST_SCORE, SyncRequest, SyncResponse, Wire};
use crate::service::Parts;
use crate::service::executor::Done;
use crate::service::view::{Request, Verifier};

/// The longest wait for anything (a connection, a verdict, a block): generous, never a
/// condition of the test.
const WAIT: Duration = Duration::from_secs(60);

/// How often conditions are looked at when nothing happens.
const TICK: Duration = Duration::from_millis(20);

/// No challenges or disputes in these blocks.
struct NoVerdicts;

impl cairn_contracts::Reexecute for NoVerdicts {
    fn reexecute(&mut self, job_id: &Hash, _: &cairn_contracts::Job) -> cairn_contracts::Result<cairn_ledger::Outcome> {
        Err(TxError::ReexecutionUnavailable(*job_id))
    }
}

impl Lookup for NoVerdicts {
    fn missing(&self) -> &[Hash] {
        &[]
    }
}

/// How a message was judged, as its sender's score at the node shows it (verdict tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Ignore,
    Reject,
}

/// What first deliveries are worth in the verdict tests' scoring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scoring {
    /// The node's own ([`p2p::peer_score`]).
    Node,
    /// The node's, and +1 for each message accepted (first delivered).
    AcceptsCount,
}

struct Peer {
    swarm: Swarm<Behaviour>,
    id: PeerId,
    /// The answer to the node's next request for finalized blocks (empty if none).
    blocks_answer: Option<SyncResponse>,
}

struct Harness {
    c: TestChain,
    scoring: Scoring,
    node: Node,
    /// The node's validator index.
    me: usize,
    /// A chain of the same genesis where the test builds the blocks its peers bring.
    reference: Chain,
    peers: Vec<Peer>,
    topics: Topics,
    listen: Option<Multiaddr>,
    /// Messages whose verdict the node reported, with the peer each came from.
    judged: HashSet<(MessageId, PeerId)>,
    /// Proposed blocks the node checked: (height, hash, valid).
    checked: Vec<(u64, Hash, bool)>,
    /// Requests the peers received from the node.
    requests: Vec<(usize, SyncRequest)>,
    /// Peers whose answers to its requests the node handled.
    answered: Vec<PeerId>,
    /// Makes every batch's bytes distinct, and is the peers' consensus send number.
    sent: u64,
    _requests: mpsc::Sender<Request>,
    _home: tempfile::TempDir,
}

enum Turn {
    /// Nothing happened for a while: conditions are looked at again (a duplicate message, say,
    /// changes a score without any event).
    Tick,
    Node(Box<SwarmEvent<BehaviourEvent>>),
    Event(Event),
    Peer(usize, Box<SwarmEvent<BehaviourEvent>>),
}

/// The next event of any peer.
fn next_peer_event(peers: &mut [Peer]) -> impl Future<Output = (usize, SwarmEvent<BehaviourEvent>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (i, p) in peers.iter_mut().enumerate() {
            if let Poll::Ready(Some(ev)) = p.swarm.poll_next_unpin(cx) {
                return Poll::Ready((i, ev));
            }
        }
        Poll::Pending
    })
}

impl Harness {
    /// A validator node of [`TestChain`] that proposes neither block 1 nor block 2 (the
    /// test's peers bring those), listening on 127.0.0.1.
    async fn start(scoring: Scoring) -> Harness {
        Harness::start_as(scoring, true).await
    }

    /// As [`Harness::start`]; `validator: false` makes the node one that does not validate.
    async fn start_as(scoring: Scoring, validator: bool) -> Harness {
        let c = TestChain::new();
        let me = (0..c.keys.len()).find(|&i| i != c.proposer(1, 0) && i != c.proposer(2, 0)).expect("a validator");
        let home = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(NodeConfig { home: home.path().to_path_buf(), validator, ..NodeConfig::default() });
        let chain = Chain::open(c.genesis.clone(), &config.db_path()).expect("chain");
        let reference = Chain::open(c.genesis.clone(), &home.path().join("reference")).expect("reference chain");
        let (requests_tx, requests) = mpsc::channel(8);
        let (view, _) = watch::channel(Arc::new(Node::initial_view(&chain)));
        let admission = Arc::new(Admission::new(config.mempool_txs_max, config.block_time_ms));
        let verifier = Verifier::new(chain.signatures.clone(), chain.state().params().output_bytes_max as usize);
        let vm = Arc::new(Vm::new(VmConfig { cache_dir: None, memory_pool_regions: 0, ..VmConfig::default() }));
        let key = c.keys[me].clone();
        let rpc_addr = ([127, 0, 0, 1], 0).into();
        let metrics = Arc::new(crate::metrics::Metrics::new([], None, None));
        let parts =
            Parts { config, key, vm, admission, verifier, requests, view, rpc_addr, metrics, metrics_addr: None };
        let mut node = Node::new(chain, parts).expect("node");
        node.start_consensus().expect("consensus starts");
        let topics = node.net.topics.clone();
        if scoring == Scoring::AcceptsCount {
            let (params, _) = p2p::peer_score(&topics);
            let gossipsub = &mut node.net.swarm.behaviour_mut().gossipsub;
            for t in all_topics(&topics) {
                let mut p = params.topics[&t.hash()].clone();
                p.first_message_deliveries_weight = 1.0;
                p.first_message_deliveries_decay = 0.999_999;
                p.first_message_deliveries_cap = 1_000.0;
                gossipsub.set_topic_params(t.clone(), p).expect("scoring is on");
            }
        }
        let mut h = Harness {
            c,
            scoring,
            node,
            me,
            reference,
            peers: Vec::new(),
            topics,
            listen: None,
            judged: HashSet::new(),
            checked: Vec::new(),
            requests: Vec::new(),
            answered: Vec::new(),
            sent: 0,
            _requests: requests_tx,
            _home: home,
        };
        h.until("the node to listen", |h| h.listen.is_some()).await;
        h
    }

    /// One turn: the next event of the node's swarm, of its background work or of a peer,
    /// handled; then consensus, as after every turn of the node's loop.
    async fn turn(&mut self) {
        let turn = tokio::select! {
            ev = self.node.net.swarm.select_next_some() => Turn::Node(Box::new(ev)),
            Some(ev) = self.node.events_rx.recv() => Turn::Event(ev),
            (i, ev) = next_peer_event(&mut self.peers) => Turn::Peer(i, Box::new(ev)),
            () = tokio::time::sleep(TICK) => Turn::Tick,
        };
        match turn {
            Turn::Tick => {}
            Turn::Node(ev) => {
                let mut judged = None;
                match &*ev {
                    SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                        peer,
                        message: request_response::Message::Response { .. },
                        ..
                    })) => self.answered.push(*peer),
                    SwarmEvent::NewListenAddr { address, .. } => self.listen = Some(address.clone()),
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                        propagation_source,
                        message_id,
                        message: _,
                    })) => {
                        judged = Some((message_id.clone(), *propagation_source));
                    }
                    _ => {}
                }
                // Batches whose signatures went to the verifying threads are judged when they
                // come back.
                let verifying = self.node.verifying;
                self.node.on_swarm_event(*ev).expect("the node handles a swarm event");
                if self.node.verifying == verifying {
                    self.judged.extend(judged);
                }
            }
            Turn::Event(ev) => {
                let judged = match &ev {
                    Event::Verified(v) => Some((v.message_id.clone(), v.source)),
                    Event::Block(Done::Checked { height, block_hash, result, .. }) => {
                        self.checked.push((*height, *block_hash, result.is_ok()));
                        None
                    }
                    _ => None,
                };
                self.node.on_event(ev).expect("the node handles an event");
                self.judged.extend(judged);
            }
            Turn::Peer(i, ev) => self.on_peer_event(i, *ev),
        }
        self.node.pump_consensus().expect("consensus");
        self.node.net.flush_outbox();
    }

    /// A peer answers the node's requests: finalized blocks with what the test set (nothing
    /// by default), no module, no proposed block.
    fn on_peer_event(&mut self, i: usize, ev: SwarmEvent<BehaviourEvent>) {
        let SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Request { request, channel, .. },
            ..
        })) = ev
        else {
            return;
        };
        let request = request.decode::<SyncRequest>("sync request").expect("the node asks well-formed requests");
        let response = match &request {
            SyncRequest::Blocks { .. } => self.peers[i].blocks_answer.take().unwrap_or(SyncResponse::Blocks(vec![])),
            SyncRequest::Blob(_) => SyncResponse::Blob(None),
            SyncRequest::Proposed { .. } => SyncResponse::Proposed(None),
            SyncRequest::Snapshot => SyncResponse::Snapshot(None),
            SyncRequest::StateChunk { .. } => SyncResponse::StateChunk(None),
        };
        let sync = &mut self.peers[i].swarm.behaviour_mut().sync;
        let _ = sync.send_response(channel, Wire::encode(&response));
        self.requests.push((i, request));
    }

    /// Turns until `done` holds (at most [`WAIT`]).
    async fn until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let waited = tokio::time::timeout(WAIT, async {
            while !done(self) {
                self.turn().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }

    /// A peer with `key` joins: connected, and each side knows the other is on every topic.
    /// `blocks_answer`: its answer to the node's first request for finalized blocks.
    async fn join(&mut self, key: &Keypair, blocks_answer: Option<SyncResponse>) -> usize {
        let mut swarm = p2p::build_swarm(key, &self.topics).expect("swarm");
        for t in [&self.topics.consensus, &self.topics.proposals] {
            swarm.behaviour_mut().gossipsub.subscribe(t).expect("subscribe");
        }
        swarm.dial(self.listen.clone().expect("listening")).expect("dial");
        let id = *swarm.local_peer_id();
        self.peers.push(Peer { swarm, id, blocks_answer });
        let i = self.peers.len() - 1;
        self.until("a peer to join every topic", |h| h.joined(i)).await;
        i
    }

    /// A peer of its own key (seed `seed`).
    async fn peer(&mut self, seed: u8) -> usize {
        self.join(&Keypair::from_seed([seed; 32]), None).await
    }

    fn joined(&self, i: usize) -> bool {
        let all: Vec<TopicHash> = all_topics(&self.topics).iter().map(|t| t.hash()).collect();
        let sees = |gossipsub: &gossipsub::Behaviour, peer: &PeerId| {
            gossipsub.all_peers().any(|(id, topics)| id == peer && all.iter().all(|t| topics.contains(&t)))
        };
        let node = *self.node.net.swarm.local_peer_id();
        sees(&self.node.net.swarm.behaviour().gossipsub, &self.peers[i].id)
            && sees(&self.peers[i].swarm.behaviour().gossipsub, &node)
    }

    /// The node's score of peer `i`.
    fn score(&self, i: usize) -> f64 {
        self.node.net.swarm.behaviour().gossipsub.peer_score(&self.peers[i].id).expect("scoring is on")
    }

    /// Peer `i` publishes `data` on `topic`; returns once the node reported its verdict.
    async fn deliver(&mut self, i: usize, topic: Topic, data: Vec<u8>) {
        let id = (self.publish(i, topic, data), self.peers[i].id);
        self.until("the node's verdict", |h| h.judged.contains(&id)).await;
    }

    /// Peer `i` publishes `data` on `topic` (a consensus message with a send number of its
    /// own, as a node does): the message's id.
    fn publish(&mut self, i: usize, topic: Topic, data: Vec<u8>) -> MessageId {
        let ident = self.node.net.ident(topic).clone();
        let data = match topic {
            Topic::Consensus => {
                self.sent += 1;
                p2p::consensus_data(&data, self.sent)
            }
            _ => data,
        };
        self.peers[i].swarm.behaviour_mut().gossipsub.publish(ident, data).expect("published")
    }

    /// The verdict on `data` from peer `i`, read from the change of its score.
    async fn judge(&mut self, i: usize, topic: Topic, data: Vec<u8>) -> Verdict {
        let before = self.score(i);
        self.deliver(i, topic, data).await;
        let change = self.score(i) - before;
        if change > 0.5 {
            Verdict::Accept
        } else if change < -0.5 {
            Verdict::Reject
        } else {
            Verdict::Ignore
        }
    }

    /// A batch of `txs`, with bytes no other batch has.
    fn txs(&mut self, version: u8, txs: Vec<Transaction>) -> Vec<u8> {
        self.sent += 1;
        borsh::to_vec(&TxBatch { version, sent_ms: self.sent, txs }).expect("encodes")
    }

    /// A batch of `results`, with bytes no other batch has.
    fn results(&mut self, version: u8, results: Vec<JobResult>) -> Vec<u8> {
        self.sent += 1;
        borsh::to_vec(&ResultBatch { version, sent_ms: self.sent, results }).expect("encodes")
    }

    /// The next block of the reference chain, proposed by validator `proposer`, not final.
    fn build(&self, proposer: usize, txs: Vec<Transaction>, time_ms: u64) -> ExecutedBlock {
        let (executed, rejected) =
            self.reference.base().build(self.c.keys[proposer].public(), txs, time_ms, &mut NoVerdicts).expect("built");
        assert!(rejected.is_empty());
        executed
    }

    /// Block 1, final with the commit of validators 0, 1 and 2, is brought by peer `i` (it
    /// is accepted) and stored by the node; the reference chain stores it too.
    async fn block_1(&mut self, i: usize) -> (Block, Commit) {
        let executed = self.build(self.c.proposer(1, 0), vec![], 1_000);
        let commit = self.c.commit(&[0, 1, 2], 1, executed.hash);
        persist(&self.reference.store, &executed, &commit).expect("stored");
        self.reference.advance(&executed, commit.clone());
        let msg = block_msg_bytes(WIRE_VERSION, executed.block.clone(), commit.clone());
        assert_eq!(self.judge(i, Topic::Blocks, msg).await, self.accepted());
        self.until("block 1 to be stored", |h| h.node.chain.height() == 1).await;
        (executed.block.clone(), commit)
    }

    /// What an accepted message shows as in this harness's scoring.
    fn accepted(&self) -> Verdict {
        match self.scoring {
            Scoring::AcceptsCount => Verdict::Accept,
            Scoring::Node => Verdict::Ignore,
        }
    }
}

fn all_topics(topics: &Topics) -> [&gossipsub::IdentTopic; 6] {
    [&topics.txs, &topics.results, &topics.blocks, &topics.modules, &topics.consensus, &topics.proposals]
}

/// Finalized blocks: the next one is accepted and stored; one of a stored height (another
/// quorum's copy) is ignored; one ahead is accepted and its sender asked for what the node
/// missed. A forged commit, a commit for another block, another wire version or undecodable
/// bytes are rejected (each from a peer of its own), and none of them is applied.
#[tokio::test]
async fn finalized_block_verdicts() {
    let mut h = Harness::start(Scoring::AcceptsCount).await;
    let a = h.peer(100).await;
    let (block, _) = h.block_1(a).await;
    let stale = block_msg_bytes(WIRE_VERSION, block.clone(), h.c.commit(&[1, 2, 3], 1, block.hash()));
    assert_eq!(h.judge(a, Topic::Blocks, stale).await, Verdict::Ignore, "a stored height");
    let ahead = h.c.block(3, 0, 0);
    let commit = h.c.commit(&[0, 1, 2], 3, ahead.hash());
    let ahead = block_msg_bytes(WIRE_VERSION, ahead, commit);
    assert_eq!(h.judge(a, Topic::Blocks, ahead).await, Verdict::Accept, "a block ahead");
    h.until("the node to ask the sender of a block ahead for what it missed", |h| {
        h.requests.iter().any(|(i, r)| *i == a && matches!(r, SyncRequest::Blocks { from: 2, .. }))
    })
    .await;

    let next = h.build(h.c.proposer(2, 0), vec![], 2_000);
    let commit = h.c.commit(&[0, 1, 2], 2, next.hash);
    let valid = block_msg_bytes(WIRE_VERSION, next.block.clone(), commit.clone());
    let mut forged = commit.clone();
    forged.signatures[0].signature.0[0] ^= 1;
    let other = h.c.commit(&[0, 1, 2], 2, Hash::of(b"another block"));
    let junk = [
        ("a forged commit", block_msg_bytes(WIRE_VERSION, next.block.clone(), forged)),
        ("a commit for another block", block_msg_bytes(WIRE_VERSION, next.block.clone(), other)),
        ("another wire version", block_msg_bytes(WIRE_VERSION + 1, next.block.clone(), commit)),
        ("undecodable", valid[..valid.len() - 1].to_vec()),
    ];
    for (n, (what, data)) in (110..).zip(junk) {
        let j = h.peer(n).await;
        assert_eq!(h.judge(j, Topic::Blocks, data).await, Verdict::Reject, "{what}");
    }
    assert_eq!(h.node.chain.height(), 1, "nothing rejected is applied");
    assert_eq!(h.judge(a, Topic::Blocks, valid).await, Verdict::Accept);
    h.until("block 2 to be stored", |h| h.node.chain.height() == 2).await;
}

/// Offers, account transactions and results: valid ones are accepted (a result while its
/// job awaits it); a sender without the balance, a nonce past the window, a result for a job
/// nobody knows or an empty batch are ignored (honest nodes may send them), and so are a
/// transaction no block would hold (its signature unchecked) and a result from a key that is
/// no provider; a forged
/// signature, a transaction for another chain, a result among transactions, another wire
/// version or undecodable bytes are rejected.
#[tokio::test]
async fn transaction_and_result_verdicts() {
    let mut h = Harness::start(Scoring::AcceptsCount).await;
    let a = h.peer(100).await;
    let transfer = h.c.transfer(&h.c.client, 0);
    let data = h.txs(WIRE_VERSION, vec![transfer.clone()]);
    assert_eq!(h.judge(a, Topic::Txs, data).await, Verdict::Accept, "a valid transfer");
    let offer = h.c.offer(1, 10);
    let data = h.txs(WIRE_VERSION, vec![Transaction::Offer(offer.clone())]);
    assert_eq!(h.judge(a, Topic::Txs, data).await, Verdict::Accept, "a valid offer");
    let result = h.c.result(offer.job_id(), 8);
    let data = h.results(WIRE_VERSION, vec![result.clone()]);
    assert_eq!(h.judge(a, Topic::Results, data).await, Verdict::Accept, "a result its job awaits");

    let unfunded = h.c.transfer(&Keypair::from_seed([40; 32]), 0);
    let Transaction::Account(mut forged_unfunded) = unfunded.clone() else { unreachable!("a transfer") };
    forged_unfunded.signature.0[0] ^= 1;
    let far = h.c.transfer(&h.c.client, 2 + NONCE_WINDOW);
    let stranger = Keypair::from_seed([41; 32]);
    let not_a_provider = JobResult::new(
        ResultClaim { provider: stranger.public(), ..result.claim.clone() },
        result.output.clone(),
        &stranger,
    );
    let mut forged_not_a_provider = not_a_provider.clone();
    forged_not_a_provider.signature.0[0] ^= 1;
    let ignored = [
        ("a sender without the balance", Topic::Txs, h.txs(WIRE_VERSION, vec![unfunded])),
        // Its signature is not even checked: no block would hold it.
        (
            "a forged transfer of a sender without the balance",
            Topic::Txs,
            h.txs(WIRE_VERSION, vec![Transaction::Account(forged_unfunded)]),
        ),
        ("a result from a key that is no provider", Topic::Results, h.results(WIRE_VERSION, vec![not_a_provider])),
        // Its signature is not even checked: no block would take it.
        (
            "a forged result from a key that is no provider",
            Topic::Results,
            h.results(WIRE_VERSION, vec![forged_not_a_provider]),
        ),
        ("a nonce past the window", Topic::Txs, h.txs(WIRE_VERSION, vec![far])),
        ("an empty transaction batch", Topic::Txs, h.txs(WIRE_VERSION, vec![])),
        ("a result nobody awaits", Topic::Results, h.results(WIRE_VERSION, vec![h.c.result(Hash::of(b"?"), 1)])),
        ("an empty result batch", Topic::Results, h.results(WIRE_VERSION, vec![])),
    ];
    for (what, topic, data) in ignored {
        assert_eq!(h.judge(a, topic, data).await, Verdict::Ignore, "{what}");
    }

    let Transaction::Account(mut forged) = h.c.transfer(&h.c.client, 2) else { unreachable!("a transfer") };
    forged.signature.0[0] ^= 1;
    let mut forged_result = result.clone();
    forged_result.signature.0[0] ^= 1;
    let other_chain = transfer_on(Hash::of(b"another chain"), &h.c.client, 2);
    let valid = h.txs(WIRE_VERSION, vec![h.c.transfer(&h.c.client, 2)]);
    let junk = [
        ("a forged transaction", Topic::Txs, h.txs(WIRE_VERSION, vec![Transaction::Account(forged)])),
        ("a forged result", Topic::Results, h.results(WIRE_VERSION, vec![forged_result])),
        ("a transaction for another chain", Topic::Txs, h.txs(WIRE_VERSION, vec![other_chain])),
        ("a result among transactions", Topic::Txs, h.txs(WIRE_VERSION, vec![Transaction::Result(result)])),
        ("a batch of another wire version", Topic::Txs, h.txs(WIRE_VERSION + 1, vec![transfer])),
        ("undecodable", Topic::Results, valid[..valid.len() - 1].to_vec()),
    ];
    for (n, (what, topic, data)) in (110..).zip(junk) {
        let j = h.peer(n).await;
        assert_eq!(h.judge(j, topic, data).await, Verdict::Reject, "{what}");
    }

    // Every verdict is counted, per topic, and each rejection as a penalty.
    let text = h.node.metrics.encode();
    for (line, count) in [
        ("cairn_gossip_messages_total{topic=\"txs\",verdict=\"accepted\"}", 2),
        ("cairn_gossip_messages_total{topic=\"results\",verdict=\"accepted\"}", 1),
        ("cairn_gossip_messages_total{topic=\"txs\",verdict=\"ignored\"}", 4),
        ("cairn_gossip_messages_total{topic=\"results\",verdict=\"ignored\"}", 4),
        ("cairn_gossip_messages_total{topic=\"txs\",verdict=\"rejected\"}", 4),
        ("cairn_gossip_messages_total{topic=\"results\",verdict=\"rejected\"}", 2),
        ("cairn_peers_penalised_total", 6),
    ] {
        assert!(text.contains(&format!("{line} {count}\n")), "{line} {count} in\n{text}");
    }
}

/// Module announcements: one of a module the node holds is accepted (relayed), one of a
/// module nobody may hold is ignored (it goes no further than one hop); another wire version
/// or more bytes than an announcement has are rejected.
#[tokio::test]
async fn module_announcement_verdicts() {
    let mut h = Harness::start(Scoring::AcceptsCount).await;
    let a = h.peer(100).await;
    let unknown = announce_bytes(WIRE_VERSION, Hash::of(b"a module nobody has"));
    assert_eq!(h.judge(a, Topic::Modules, unknown).await, Verdict::Ignore, "a module nobody has");
    let id = h.node.chain.store.put_blob(b"a module").expect("stored");
    assert_eq!(h.judge(a, Topic::Modules, announce_bytes(WIRE_VERSION, id)).await, Verdict::Accept, "a module here");
    let junk = [
        ("another wire version", announce_bytes(WIRE_VERSION + 1, id)),
        ("too long", vec![WIRE_VERSION; MODULE_ANNOUNCE_BYTES_MAX + 1]),
    ];
    for (n, (what, data)) in (110..).zip(junk) {
        let j = h.peer(n).await;
        assert_eq!(h.judge(j, Topic::Modules, data).await, Verdict::Reject, "{what}");
    }
}

/// Consensus messages and proposed blocks. A validator's vote for the next height is
/// accepted, and so is a re-send of it (by anyone), while another within the relay interval
/// is ignored; a vote for a stored height, a height or a round too far ahead is ignored. A proposed block
/// no proposal named, of a stored height or too far ahead is ignored; one a verified proposal
/// named is accepted and checked — found invalid, it costs the peer that passed it on nothing
/// (the fault is its proposer's). Junk, a proposal from a validator that is not the round's
/// proposer, a forged vote, a proposed block of another chain or from a stranger, or
/// undecodable are rejected.
#[tokio::test]
async fn consensus_and_proposal_verdicts() {
    let mut h = Harness::start(Scoring::AcceptsCount).await;
    let a = h.peer(100).await;
    h.block_1(a).await;
    let v = (0..h.c.keys.len()).find(|&i| i != h.me).expect("another validator");
    let key = h.c.keys[v].clone();
    let vp = h.join(&key, None).await;
    let prevote = |c: &TestChain, height, round| {
        ConsensusMessage::Vote(c.vote(v, VoteKind::Prevote, height, round, None)).encode()
    };
    // The first vote for the next height starts it here; the next ones reach the engine.
    assert_eq!(h.judge(vp, Topic::Consensus, prevote(&h.c, 2, 0)).await, Verdict::Accept, "a vote");
    let vote = prevote(&h.c, 2, 1);
    assert_eq!(h.judge(vp, Topic::Consensus, vote.clone()).await, Verdict::Accept, "a vote the engine takes");
    // A re-send, whoever publishes it, is passed on once a `REPEAT_RELAY_INTERVAL`.
    assert_eq!(h.judge(a, Topic::Consensus, vote.clone()).await, Verdict::Accept, "a re-send");
    assert_eq!(h.judge(vp, Topic::Consensus, vote).await, Verdict::Ignore, "another within the interval");
    let ignored = [
        ("a stored height", prevote(&h.c, 1, 0)),
        ("a height too far ahead", prevote(&h.c, 3 + HEIGHTS_AHEAD_MAX, 0)),
        ("a round too far ahead", prevote(&h.c, 2, ROUNDS_AHEAD_MAX + 1)),
    ];
    for (what, data) in ignored {
        assert_eq!(h.judge(a, Topic::Consensus, data).await, Verdict::Ignore, "{what}");
    }
    // A message far ahead also tells the node others decide heights it lacks: it asks the
    // peer that sent it for the blocks.
    assert_eq!(h.node.sync.syncing_from(), Some(h.peers[a].id), "a sync request to the sender");

    // Proposed blocks: `x` is invalid (its state root is made up), `y` valid but never proposed.
    let p = h.c.proposer(2, 0);
    let mut x = h.build(p, vec![], 2_000).block;
    x.header.state_root = Hash::of(b"not the state after it");
    let y = h.build(p, vec![], 3_000).block;
    let ignored = [
        ("a block no proposal named", y),
        ("a block of a stored height", h.c.block(1, p, 0)),
        ("a block too far ahead", h.c.block(3 + HEIGHTS_AHEAD_MAX, p, 0)),
    ];
    for (what, block) in ignored {
        assert_eq!(h.judge(a, Topic::Proposals, proposed_bytes(WIRE_VERSION, block)).await, Verdict::Ignore, "{what}");
    }
    let proposal = h.c.proposal(p, 2, x.hash());
    assert_eq!(h.judge(a, Topic::Consensus, proposal).await, Verdict::Accept, "the round's proposal");
    let x_hash = x.hash();
    h.until("the node to ask for the block the proposal names", |h| {
        h.requests
            .iter()
            .any(|(_, r)| matches!(r, SyncRequest::Proposed { height: 2, block_hash } if *block_hash == x_hash))
    })
    .await;
    assert_eq!(h.judge(a, Topic::Proposals, proposed_bytes(WIRE_VERSION, x.clone())).await, Verdict::Accept);
    let before = h.score(a);
    h.until("the proposed block to be checked", |h| h.checked.contains(&(2, x_hash, false))).await;
    assert_eq!(h.score(a), before, "an invalid proposed block costs the peer that passed it on nothing");

    let mut forged = prevote(&h.c, 2, 2);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut other_chain = x.clone();
    other_chain.header.chain_id = Hash::of(b"another chain");
    let mut stranger = x.clone();
    stranger.header.proposer = Keypair::from_seed([99; 32]).public();
    let valid = proposed_bytes(WIRE_VERSION, x);
    let junk = [
        ("junk", Topic::Consensus, b"not a consensus message".to_vec()),
        ("not the round's proposer", Topic::Consensus, h.c.proposal((p + 1) % h.c.keys.len(), 2, x_hash)),
        ("a forged vote", Topic::Consensus, forged),
        ("a block of another chain", Topic::Proposals, proposed_bytes(WIRE_VERSION, other_chain)),
        ("a block from a stranger", Topic::Proposals, proposed_bytes(WIRE_VERSION, stranger)),
        ("undecodable", Topic::Proposals, valid[..valid.len() - 1].to_vec()),
    ];
    for (n, (what, topic, data)) in (110..).zip(junk) {
        let j = h.peer(n).await;
        assert_eq!(h.judge(j, topic, data).await, Verdict::Reject, "{what}");
    }
}

/// A node that does not validate ignores consensus messages and proposed blocks (it does not
/// subscribe to their topics; were one to reach it, nobody is blamed).
#[tokio::test]
async fn a_node_that_does_not_validate_ignores_consensus_gossip() {
    let mut h = Harness::start_as(Scoring::Node, false).await;
    let vote = ConsensusMessage::Vote(h.c.vote(1, VoteKind::Prevote, 1, 0, None)).encode();
    let acceptance = h.node.on_consensus_gossip(PeerId::random(), &vote);
    assert_eq!(acceptance, MessageAcceptance::Ignore);
    let block = proposed_bytes(WIRE_VERSION, h.c.block(1, 1, 0));
    assert_eq!(h.node.on_proposed_gossip(&block).expect("handled"), MessageAcceptance::Ignore);
    assert_eq!(h.node.on_proposed_gossip(b"junk").expect("handled"), MessageAcceptance::Ignore);
}

/// With the node's own scoring: junk on any topic drops its sender's score below the
/// graylist threshold, below an honest peer's; an honest peer's score does not move; and a
/// peer whose messages are ignored — a stored block, a sender without the balance, a result
/// nobody awaits, an unknown module, a vote or a proposed block out of range, a block no
/// proposal named — keeps its score, also when it passes on a proposed block that a proposal
/// named and that is found invalid only when checked. A block fetched by request that the node
/// refuses costs its sender no gossip score either (there is no gossip message to report):
/// the two cases docs/CONSENSUS.md names where gossip cannot blame a sender.
#[tokio::test]
async fn junk_lowers_its_senders_score_and_nothing_else_does() {
    let mut h = Harness::start(Scoring::Node).await;
    // `liar` joins first, so the node asks it for the blocks after its head; it answers with
    // block 1 under a forged commit, which the node refuses.
    let block_1 = h.build(h.c.proposer(1, 0), vec![], 1_000).block;
    let mut forged = h.c.commit(&[0, 1, 2], 1, block_1.hash());
    forged.signatures[0].signature.0[0] ^= 1;
    let answer = SyncResponse::Blocks(vec![(block_1, forged)]);
    let liar = h.join(&Keypair::from_seed([99; 32]), Some(answer)).await;
    let liar_id = h.peers[liar].id;
    h.until("the node to refuse the block it fetched", |h| h.answered.contains(&liar_id) && h.node.storing.is_none())
        .await;
    assert_eq!(h.node.chain.height(), 0, "the forged block is not applied");
    assert_eq!(h.score(liar), 0.0, "a block fetched by request costs no gossip score");

    let i = h.peer(100).await;
    let honest = h.peer(101).await;
    let (block, _) = h.block_1(honest).await;
    let data = h.txs(WIRE_VERSION, vec![h.c.transfer(&h.c.client, 0)]);
    h.deliver(honest, Topic::Txs, data).await;
    assert_eq!(h.score(honest), 0.0, "honest messages leave the score where it was");

    let p = h.c.proposer(2, 0);
    let v = (0..h.c.keys.len()).find(|&n| n != h.me && n != p).expect("another validator");
    let unnamed = h.build(p, vec![], 3_000).block;
    let ignored = [
        (Topic::Blocks, block_msg_bytes(WIRE_VERSION, block.clone(), h.c.commit(&[1, 2, 3], 1, block.hash()))),
        (Topic::Txs, h.txs(WIRE_VERSION, vec![h.c.transfer(&Keypair::from_seed([40; 32]), 0)])),
        (Topic::Results, h.results(WIRE_VERSION, vec![h.c.result(Hash::of(b"?"), 1)])),
        (Topic::Modules, announce_bytes(WIRE_VERSION, Hash::of(b"a module nobody has"))),
        (Topic::Consensus, ConsensusMessage::Vote(h.c.vote(v, VoteKind::Prevote, 1, 0, None)).encode()),
        (Topic::Proposals, proposed_bytes(WIRE_VERSION, h.c.block(9, p, 0))),
        (Topic::Proposals, proposed_bytes(WIRE_VERSION, unnamed)),
        // Starts the next height here, so the proposal below reaches the engine.
        (Topic::Consensus, ConsensusMessage::Vote(h.c.vote(v, VoteKind::Prevote, 2, 0, None)).encode()),
    ];
    for (topic, data) in ignored {
        h.deliver(i, topic, data).await;
        assert_eq!(h.score(i), 0.0, "{topic:?}: not the sender's fault");
    }
    let mut x = h.build(p, vec![], 2_000).block;
    x.header.state_root = Hash::of(b"not the state after it");
    let x_hash = x.hash();
    h.deliver(i, Topic::Consensus, h.c.proposal(p, 2, x_hash)).await;
    h.until("the node to ask for the proposed block", |h| {
        h.requests.iter().any(|(_, r)| matches!(r, SyncRequest::Proposed { block_hash, .. } if *block_hash == x_hash))
    })
    .await;
    h.deliver(i, Topic::Proposals, proposed_bytes(WIRE_VERSION, x)).await;
    h.until("the proposed block to be checked", |h| h.checked.contains(&(2, x_hash, false))).await;
    assert_eq!(h.score(i), 0.0, "a proposed block found invalid on checking costs the peer that passed it on nothing");

    let junk = [Topic::Txs, Topic::Results, Topic::Blocks, Topic::Modules, Topic::Consensus, Topic::Proposals];
    for (n, topic) in (110..).zip(junk) {
        let j = h.peer(n).await;
        h.deliver(j, topic, format!("junk on {topic:?}").into_bytes()).await;
        let score = h.score(j);
        assert!(score < GRAYLIST_SCORE, "{topic:?}: junk graylists its sender: {score}");
        assert!(score < h.score(honest), "{topic:?}: below the honest peer");
    }
    assert_eq!(h.score(honest), 0.0);
    assert_eq!(h.score(i), 0.0);
}

/// The same bytes on two topics are two messages: junk that a peer sends on one topic, ahead
/// of an honest peer's message of the same bytes on its own topic, neither keeps that message
/// out nor costs the honest peer anything. (With ids of the bytes alone, the honest copy was a
/// duplicate of a rejected message: dropped unseen, and its sender penalised as if it had sent
/// the junk — a peer could have any honest sender it outruns graylisted.)
#[tokio::test]
async fn junk_on_one_topic_does_not_shadow_the_same_bytes_on_another() {
    let mut h = Harness::start(Scoring::Node).await;
    let attacker = h.peer(100).await;
    let honest = h.peer(101).await;
    let batch = h.txs(WIRE_VERSION, vec![h.c.transfer(&h.c.client, 0)]);
    h.deliver(attacker, Topic::Modules, batch.clone()).await;
    assert!(h.score(attacker) < GRAYLIST_SCORE, "not an announcement: rejected");
    let id = (h.publish(honest, Topic::Txs, batch), h.peers[honest].id);
    h.until("the honest batch to be judged, or its sender penalised", |h| {
        h.judged.contains(&id) || h.score(honest) < 0.0
    })
    .await;
    assert_eq!(h.score(honest), 0.0, "the honest sender is not blamed for the junk");
    assert!(h.judged.contains(&id), "the honest batch is judged on its own");
    assert!(h.node.mempool.has_nonce(h.c.client.public(), 0), "and its transaction admitted");
}
