//! Request-response with peers: finalized blocks a node missed (sync), blobs (modules and job
//! data), and proposed blocks the consensus engine waits for. Answers are read from the store
//! off the loop; synced blocks are applied one at a time by the executor, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_ledger::{Block, Commit, Hash};
use libp2p::PeerId;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use rand::seq::SliceRandom;

use super::{Event, Node};
use crate::p2p::{self, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, Wire};
use cairn_ledger::snapshot::{STATE_CHUNK_BYTES_MAX, STATE_CHUNK_ENTRIES_MAX};
use cairn_store::Store;

/// Connected peers asked for a missing blob at once, at most (the DHT names other holders).
pub const BLOB_PEERS_ASKED_MAX: usize = 4;
/// Distinct blobs being fetched at once, at most: each request may bring a whole blob (up to
/// 4 MiB, `blobs::BLOB_BYTES_MAX`) from each peer asked, so with
/// [`BLOB_REQUESTS_PER_BLOB_MAX`] this bounds what honest answers can take (8 blobs × 8
/// requests × 4 MiB = 256 MiB at the very worst). A blob past it is asked for at a later
/// maintenance tick, while something still waits for it.
pub const BLOB_FETCHES_MAX: usize = 8;
/// Requests for one blob in flight at once, at most (the peers asked, then the holders the
/// DHT names), each to a different peer.
pub const BLOB_REQUESTS_PER_BLOB_MAX: usize = 2 * BLOB_PEERS_ASKED_MAX;
/// Announced modules a provider fetches at once (announcements cost nothing to send, so
/// beyond this they are ignored until the fetches in flight end).
pub const ANNOUNCED_FETCHES_MAX: usize = 16;
/// Requests from peers answered at once; past it a request is answered with an error (the
/// peer asks again or another peer).
pub const SYNC_ANSWERS_AT_ONCE: usize = 4;
/// Bytes of answers handed to libp2p that their peers have not read yet, at most. An answer
/// waits in its stream until its peer reads it (at most `p2p::SYNC_TIMEOUT`), and a block
/// answer may be 32 MiB: a peer that asks and never reads would pile answers up. Past it a
/// request is answered "busy" (each answer in the making may pass it by one answer, and at
/// most [`SYNC_ANSWERS_AT_ONCE`] are: 128 MiB + 4 × 64 MiB at the very worst).
pub const SYNC_UNREAD_ANSWER_BYTES_MAX: usize = 128 << 20;
/// Answers one peer has not read yet, at most; past it its requests are answered "busy".
pub const SYNC_UNREAD_ANSWERS_PER_PEER_MAX: usize = 4;
/// Peers asked at once for a proposed block the engine waits for, at most (validators first:
/// they hold it), each asked again after `bft::BLOCK_FETCH_RETRY` if it does not arrive: each
/// peer that holds the block sends all of it, and every answer is decoded here.
pub const PROPOSED_PEERS_ASKED_MAX: usize = 3;
/// The framing an answer adds to what it carries (its version byte, the answer's variant and
/// an option's tag, a length): an answer to a proposed-block or blob request is refused
/// undecoded past what it may carry plus this.
pub const ANSWER_FRAMING_BYTES: usize = 64;

/// How long a peer that lied to sync (blocks it could not have meant: stale, not linking, a
/// forged commit, or bytes that do not decode) is neither asked again nor kept connected.
pub const SYNC_DISTRUST: Duration = Duration::from_secs(60);
/// How long a peer that did not answer a block request is not asked again.
pub const SYNC_SILENT_PAUSE: Duration = Duration::from_secs(10);
/// Peers remembered as distrusted, at most (the oldest is forgotten first).
pub const SYNC_DISTRUSTED_MAX: usize = 1_024;
/// With no block request in flight, a node asks a peer for the blocks after its head at least
/// this often (an up-to-date peer answers with none): an answer that was refused (busy) or a
/// pause that ended leaves nothing else to start a sync again when no block is gossiped.
pub const SYNC_PROBE_INTERVAL: Duration = Duration::from_secs(3);

/// What a block sync answer is worth, given the head it was asked from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Nothing: the peer has no block after the head (honest).
    Nothing,
    /// Blocks that follow the head one by one: `new` of them.
    Blocks {
        /// How many.
        new: usize,
    },
    /// Only blocks this node already has: asked for the blocks after the head, an honest peer
    /// sends those or nothing.
    Stale,
    /// Blocks that do not follow the head one by one (a gap, a repeat, out of order).
    Unlinked,
}

/// Classifies the blocks a peer sent for "the blocks after `head`" (pure, so every lie is
/// testable without a network). Blocks the node has received meanwhile are skipped when
/// applied, not held against the peer.
pub fn classify_answer(head: u64, heights: &[u64]) -> Answered {
    if heights.is_empty() {
        return Answered::Nothing;
    }
    if heights.iter().all(|h| *h <= head) {
        return Answered::Stale;
    }
    if heights.iter().zip(head + 1..).all(|(h, expected)| *h == expected) {
        Answered::Blocks { new: heights.len() }
    } else {
        Answered::Unlinked
    }
}

/// Answers handed to libp2p and not yet read by their peer (nor failed), by request, with the
/// peer and their size: while [`SYNC_UNREAD_ANSWER_BYTES_MAX`] bytes in all or
/// [`SYNC_UNREAD_ANSWERS_PER_PEER_MAX`] of a peer's are, the peer's requests are answered
/// "busy" (each limit passed by at most the answers in the making). Generic over the request
/// id, which only libp2p makes.
#[derive(Debug)]
pub struct Unread<Id> {
    answers: HashMap<Id, (PeerId, usize)>,
    bytes: usize,
}

impl<Id> Default for Unread<Id> {
    fn default() -> Self {
        Unread { answers: HashMap::new(), bytes: 0 }
    }
}

impl<Id: std::hash::Hash + Eq> Unread<Id> {
    /// Whether a request of `peer` may be answered now.
    pub fn allows(&self, peer: &PeerId) -> bool {
        self.bytes < SYNC_UNREAD_ANSWER_BYTES_MAX
            && self.answers.values().filter(|(p, _)| p == peer).count() < SYNC_UNREAD_ANSWERS_PER_PEER_MAX
    }

    /// An answer of `bytes` to `peer`'s request `id` was handed to libp2p.
    pub fn handed(&mut self, id: Id, peer: PeerId, bytes: usize) {
        if let Some((_, old)) = self.answers.insert(id, (peer, bytes)) {
            self.bytes -= old;
        }
        self.bytes += bytes;
    }

    /// The answer to request `id` was read, or never will be.
    pub fn gone(&mut self, id: &Id) {
        if let Some((_, bytes)) = self.answers.remove(id) {
            self.bytes -= bytes;
        }
    }

    /// The bytes not read yet.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Which of `peers` to ask for a proposed block: at most [`PROPOSED_PEERS_ASKED_MAX`], the
/// `validators` among them first, each group in a random order (so that a retry asks others).
pub fn peers_for_a_proposed_block(
    mut peers: Vec<PeerId>,
    validators: &HashSet<PeerId>,
    rng: &mut impl rand::Rng,
) -> Vec<PeerId> {
    peers.shuffle(rng);
    peers.sort_by_key(|p| !validators.contains(p));
    peers.truncate(PROPOSED_PEERS_ASKED_MAX);
    peers
}

/// Requests in flight and what arrived.
#[derive(Default)]
pub struct SyncState {
    /// The last proposed block answered from memory, encoded: peers ask for the same block,
    /// and each answer is then a copy of its bytes rather than a clone and an encoding.
    proposed_answer: Option<(u64, Hash, Wire)>,
    /// The block sync request in flight, the peer asked, and the first height asked for.
    syncing: Option<(OutboundRequestId, PeerId, u64)>,
    /// Finalized blocks received, to apply in order (at most one response's worth).
    queue: VecDeque<(Block, Commit)>,
    /// The peer the queued blocks came from.
    source: Option<PeerId>,
    /// The height of the synced block being applied.
    applying: Option<u64>,
    /// Whether the response they came in was full (there may be more).
    more: Option<PeerId>,
    /// Peers not asked for blocks until the time given, and whether they lied (then they are
    /// not kept connected either) or only did not answer; at most [`SYNC_DISTRUSTED_MAX`].
    distrusted: HashMap<PeerId, (Instant, bool)>,
    /// Blob requests in flight.
    blob_requests: HashMap<OutboundRequestId, (Hash, PeerId)>,
    /// Fetched blobs being stored, off the loop.
    storing: HashSet<Hash>,
    /// Announced modules being fetched (at most [`ANNOUNCED_FETCHES_MAX`]).
    announced: HashSet<Hash>,
    /// Proposed-block requests in flight.
    proposed_requests: HashMap<OutboundRequestId, (u64, Hash)>,
    /// Requests from peers being answered.
    answering: usize,
    /// Answers handed to libp2p and not yet read by their peer.
    unread: Unread<InboundRequestId>,
    /// When the last block request was sent.
    last_request: Option<Instant>,
}

impl SyncState {
    /// The peer this node syncs blocks from now, if any.
    pub fn source(&self) -> Option<PeerId> {
        self.source
    }

    /// Whether `peer` may be asked for `blob`: it is not asked already, fewer than
    /// [`BLOB_REQUESTS_PER_BLOB_MAX`] are, and the blob is being fetched already or fewer
    /// than [`BLOB_FETCHES_MAX`] blobs are.
    fn may_fetch_blob(&self, blob: &Hash, peer: &PeerId) -> bool {
        let fetching: HashSet<&Hash> = self.blob_requests.values().map(|(b, _)| b).collect();
        let asked: Vec<&PeerId> = self.blob_requests.values().filter(|(b, _)| b == blob).map(|(_, p)| p).collect();
        !asked.contains(&peer)
            && asked.len() < BLOB_REQUESTS_PER_BLOB_MAX
            && (fetching.contains(blob) || fetching.len() < BLOB_FETCHES_MAX)
    }

    /// Whether an announced module is being fetched.
    pub fn is_announced(&self, id: &Hash) -> bool {
        self.announced.contains(id)
    }

    /// Starts fetching an announced module, if there is room.
    pub fn announce(&mut self, id: Hash) -> bool {
        self.announced.len() < ANNOUNCED_FETCHES_MAX && self.announced.insert(id)
    }

    /// Announced fetches that ended without the module (no peer had it) free their place.
    pub fn forget_finished_announcements(&mut self) {
        let requested: HashSet<Hash> = self.blob_requests.values().map(|(b, _)| *b).collect();
        self.announced.retain(|id| requested.contains(id));
    }

    /// The next synced block to apply.
    pub fn next_block(&mut self) -> Option<(Block, Commit)> {
        self.queue.pop_front()
    }

    /// The peer a block request is in flight to (tests).
    #[cfg(test)]
    pub fn syncing_from(&self) -> Option<PeerId> {
        self.syncing.map(|(_, peer, _)| peer)
    }

    /// Whether `peer` is not to be asked for blocks now.
    pub fn is_distrusted(&self, peer: &PeerId) -> bool {
        self.distrusted.get(peer).is_some_and(|(until, _)| *until > Instant::now())
    }

    /// Whether `peer` lied to sync lately: it is not kept connected meanwhile.
    pub fn is_liar(&self, peer: &PeerId) -> bool {
        self.distrusted.get(peer).is_some_and(|(until, lied)| *lied && *until > Instant::now())
    }

    /// Stops asking `peer` for [`SYNC_SILENT_PAUSE`]: it did not answer, or could not.
    pub fn pause(&mut self, peer: PeerId) {
        self.distrust(peer, SYNC_SILENT_PAUSE, false);
    }

    /// Stops asking `peer` for blocks for `pause` (`lied`: it lied, rather than not answering).
    fn distrust(&mut self, peer: PeerId, pause: Duration, lied: bool) {
        let now = Instant::now();
        self.distrusted.retain(|_, (until, _)| *until > now);
        if !self.distrusted.contains_key(&peer)
            && self.distrusted.len() >= SYNC_DISTRUSTED_MAX
            && let Some(oldest) = self.distrusted.iter().min_by_key(|(_, (until, _))| *until).map(|(p, _)| *p)
        {
            self.distrusted.remove(&oldest);
        }
        let entry = self.distrusted.entry(peer).or_insert((now, false));
        *entry = (entry.0.max(now + pause), entry.1 || lied);
    }
}

/// A peer's request, answered from the store off the loop (`None`: not answered, a test's
/// silent peer).
pub struct Answer {
    peer: PeerId,
    request_id: InboundRequestId,
    channel: ResponseChannel<Wire>,
    response: Option<SyncResponse>,
}

impl Node {
    /// Asks `peer` for the finalized blocks after the head (one request at a time); another
    /// peer if `peer` is distrusted.
    pub(super) fn request_sync(&mut self, peer: PeerId) {
        if self.sync.syncing.is_some() || !self.sync.queue.is_empty() || self.state_sync.busy() {
            return;
        }
        if self.sync.is_distrusted(&peer) {
            return self.sync_from_any_peer();
        }
        if self.state_sync_first() {
            return self.ask_snapshot(peer);
        }
        let from = self.chain.height() + 1;
        let req = SyncRequest::Blocks { from, max: SYNC_BLOCKS_MAX };
        let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&req));
        self.sync.syncing = Some((id, peer, from));
        self.sync.last_request = Some(Instant::now());
    }

    /// Whether blocks are being fetched or applied from a sync answer.
    pub(super) fn sync_in_flight(&self) -> bool {
        self.sync.syncing.is_some() || !self.sync.queue.is_empty()
    }

    /// At each maintenance tick: with no block request in flight, asks a trusted peer for the
    /// blocks after the head when peers showed a higher one, and at least every
    /// [`SYNC_PROBE_INTERVAL`] otherwise.
    pub(super) fn probe_sync(&mut self) {
        if self.sync.syncing.is_some() || self.storing_block() {
            return;
        }
        let behind = self.net_info.peer_height > self.chain.height();
        let due = self.sync.last_request.is_none_or(|t| t.elapsed() >= SYNC_PROBE_INTERVAL);
        if behind || due {
            self.sync_from_any_peer();
        }
    }

    /// Asks a connected peer that is not distrusted for the blocks after the head.
    pub(super) fn sync_from_any_peer(&mut self) {
        if let Some(peer) = self.trusted_peer() {
            self.request_sync(peer);
        }
    }

    /// A connected peer that sync does not distrust.
    pub(super) fn trusted_peer(&mut self) -> Option<PeerId> {
        self.net.peers().into_iter().find(|p| !self.sync.is_distrusted(p))
    }

    /// `peer` lied to sync: it is disconnected, not asked again for [`SYNC_DISTRUST`] (nor
    /// kept connected meanwhile), and another peer is asked.
    pub(super) fn sync_liar(&mut self, peer: PeerId, why: &str) {
        if let crate::log_limit::Allow::Log { suppressed } = self.penalty_logs.allow(Instant::now()) {
            tracing::warn!(
                %peer,
                reason = why,
                suppressed,
                "sync peer lied ({why}): peer penalised, disconnected, distrusted for {} s",
                SYNC_DISTRUST.as_secs()
            );
        }
        self.sync.distrust(peer, SYNC_DISTRUST, true);
        self.metrics.peers_penalised.inc();
        if self.sync.source == Some(peer) {
            self.sync.queue.clear();
            self.sync.more = None;
        }
        let _ = self.net.swarm().disconnect_peer_id(peer);
        self.sync_from_any_peer();
    }

    /// Asks connected peers for a blob (at most [`BLOB_PEERS_ASKED_MAX`], once at a time: each
    /// that holds it sends all of it), and looks up in the DHT who else holds it (`blobs.rs`).
    pub(super) fn request_blob(&mut self, blob: Hash) {
        // Arrived and being stored.
        if self.sync.storing.contains(&blob) {
            return;
        }
        self.lookup_blob(blob);
        // Asked already.
        if self.sync.blob_requests.values().any(|(b, _)| *b == blob) || self.faults.blobs_by_dht_only() {
            return;
        }
        let mut peers = self.net.peers();
        // Which peers are asked varies with the blob, so that different blobs spread over them.
        let len = peers.len().max(1);
        peers.rotate_left(usize::from(blob.0[0]) % len);
        for peer in peers.into_iter().take(BLOB_PEERS_ASKED_MAX) {
            self.request_blob_from(peer, blob);
        }
    }

    /// Asks `peer` for `blob`, unless it is asked already, or the requests for the blob or the
    /// blobs being fetched are at their bounds ([`SyncState::may_fetch_blob`]).
    pub(super) fn request_blob_from(&mut self, peer: PeerId, blob: Hash) {
        if !self.sync.may_fetch_blob(&blob, &peer) {
            return;
        }
        let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&SyncRequest::Blob(blob)));
        self.sync.blob_requests.insert(id, (blob, peer));
    }

    /// Asks connected peers for a proposed block the engine waits for: at most
    /// [`PROPOSED_PEERS_ASKED_MAX`], the validators among them first (they hold it), picked
    /// anew at each retry.
    pub(super) fn request_proposed(&mut self, height: u64, block_hash: Hash) {
        let validators: HashSet<PeerId> =
            self.chain.validators.validators().iter().filter_map(|v| p2p::peer_id_of(&v.address)).collect();
        for peer in peers_for_a_proposed_block(self.net.peers(), &validators, &mut rand::thread_rng()) {
            let req = Wire::encode(&SyncRequest::Proposed { height, block_hash });
            let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, req);
            self.sync.proposed_requests.insert(id, (height, block_hash));
        }
    }

    pub(super) fn on_sync(&mut self, ev: request_response::Event<Wire, Wire>) -> anyhow::Result<()> {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request_id, request, channel } => {
                    self.answer(peer, request_id, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_response(peer, request_id, response)?;
                }
            },
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                tracing::debug!(%peer, "request failed: {error}");
                if self.sync.syncing.is_some_and(|(id, _, _)| id == request_id) {
                    // No answer: ask another peer, and this one not again for a while.
                    tracing::warn!(%peer, "sync peer did not answer ({error}): asking another");
                    self.sync.syncing = None;
                    self.sync.distrust(peer, SYNC_SILENT_PAUSE, false);
                    self.sync_from_any_peer();
                }
                self.sync.blob_requests.remove(&request_id);
                self.sync.proposed_requests.remove(&request_id);
                self.state_sync_request_failed(peer, request_id);
            }
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => self.answer_gone(request_id),
        }
        Ok(())
    }

    /// An answer was read by its peer, or will never be: its bytes no longer count.
    fn answer_gone(&mut self, request_id: InboundRequestId) {
        self.sync.unread.gone(&request_id);
    }

    /// Answers a peer's request: proposed blocks from memory at once, the rest read from the
    /// store on a blocking thread; "busy" while too much of what was answered is not read yet.
    fn answer(&mut self, peer: PeerId, request_id: InboundRequestId, request: Wire, channel: ResponseChannel<Wire>) {
        let request = match request.decode::<SyncRequest>("sync request") {
            Ok(r) => r,
            Err(e) => return self.respond(peer, request_id, channel, SyncResponse::Error(e.to_string())),
        };
        if !self.sync.unread.allows(&peer) {
            let busy = SyncResponse::Error("busy: earlier answers are not read yet; ask again shortly".into());
            return self.respond(peer, request_id, channel, busy);
        }
        // A proposed block in memory is answered at once; the rest (a block this validator
        // proposed before a restart, blocks, blobs) is read from the store off the loop, a few
        // answers at a time.
        if let SyncRequest::Proposed { height, block_hash } = request {
            if let Some((h, hash, wire)) = &self.sync.proposed_answer
                && (*h, *hash) == (height, block_hash)
            {
                let wire = wire.clone();
                return self.respond_wire(peer, request_id, channel, wire);
            }
            if let Some(block) = self.proposed_in_memory(height, &block_hash) {
                let wire = Wire::encode(&SyncResponse::Proposed(Some(Box::new(block.clone()))));
                self.sync.proposed_answer = Some((height, block_hash, wire.clone()));
                return self.respond_wire(peer, request_id, channel, wire);
            }
        }
        if self.sync.answering >= SYNC_ANSWERS_AT_ONCE {
            return self.respond(peer, request_id, channel, SyncResponse::Error("busy; ask again shortly".into()));
        }
        self.sync.answering += 1;
        let store = self.chain.store.clone();
        let head = self.chain.height();
        let events = self.events.clone();
        let lie = self.faults.sync_lie();
        tokio::spawn(async move {
            let response = tokio::task::spawn_blocking(move || match request {
                SyncRequest::Snapshot => Some(match snapshot_of(&store, head) {
                    Ok(head) => SyncResponse::Snapshot(head.map(Box::new)),
                    Err(e) => SyncResponse::Error(e.to_string()),
                }),
                SyncRequest::StateChunk { height, start, max } => {
                    let max = max.clamp(1, STATE_CHUNK_ENTRIES_MAX) as usize;
                    let reading = std::time::Instant::now();
                    let chunk = Store::state_chunk(&store, height, start, max, STATE_CHUNK_BYTES_MAX);
                    tracing::debug!(
                        height,
                        entries = chunk.as_ref().map_or(0, |c| c.entries.len()),
                        read_us = reading.elapsed().as_micros() as u64,
                        "state sync: read a chunk for a peer"
                    );
                    Some(match chunk {
                        Ok(chunk) if lie == Some(crate::config::SyncLie::TamperedState) => {
                            SyncResponse::StateChunk(Some(super::faults::tampered_chunk(chunk)))
                        }
                        Ok(chunk) => SyncResponse::StateChunk(Some(chunk)),
                        // That height's state is not kept (pruned, or ahead of this node).
                        Err(cairn_store::Error::Invalid(_)) => SyncResponse::StateChunk(None),
                        Err(e) => SyncResponse::Error(e.to_string()),
                    })
                }
                SyncRequest::Blocks { from, max } => {
                    let budget = p2p::SYNC_RESPONSE_BYTES_MAX as usize / 2;
                    let read = |from| crate::chain::blocks_from(&store, head, from, max.min(SYNC_BLOCKS_MAX), budget);
                    let blocks = match lie {
                        None => read(from),
                        Some(lie) => match super::faults::lying_answer(lie, from, read) {
                            Some(answer) => answer,
                            None => return None,
                        },
                    };
                    Some(match blocks {
                        Ok(blocks) => SyncResponse::Blocks(blocks),
                        Err(e) => SyncResponse::Error(e.to_string()),
                    })
                }
                SyncRequest::Blob(id) => Some(match store.blob(&id) {
                    Ok(b) => SyncResponse::Blob(b),
                    Err(e) => SyncResponse::Error(e.to_string()),
                }),
                SyncRequest::Proposed { height, block_hash } => Some(match store.proposed(height, &block_hash) {
                    Ok(b) => SyncResponse::Proposed(b.map(Box::new)),
                    Err(e) => SyncResponse::Error(e.to_string()),
                }),
            })
            .await
            .unwrap_or_else(|e| Some(SyncResponse::Error(format!("reading the store failed: {e}"))));
            let _ = events.send(Event::Answer(Answer { peer, request_id, channel, response })).await;
        });
    }

    /// A request's answer was read from the store: send it.
    pub(super) fn on_answer(&mut self, answer: Answer) {
        self.sync.answering = self.sync.answering.saturating_sub(1);
        if let Some(response) = answer.response {
            self.respond(answer.peer, answer.request_id, answer.channel, response);
        }
    }

    /// Hands an answer to libp2p; its bytes count as unread until its peer reads it.
    fn respond(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        channel: ResponseChannel<Wire>,
        response: SyncResponse,
    ) {
        self.respond_wire(peer, request_id, channel, Wire::encode(&response));
    }

    /// Hands an encoded answer to libp2p, as [`Node::respond`].
    fn respond_wire(&mut self, peer: PeerId, request_id: InboundRequestId, channel: ResponseChannel<Wire>, wire: Wire) {
        let bytes = wire.0.len();
        if self.net.swarm().behaviour_mut().sync.send_response(channel, wire).is_ok() {
            self.sync.unread.handed(request_id, peer, bytes);
        }
    }

    fn on_response(&mut self, peer: PeerId, request_id: OutboundRequestId, response: Wire) -> anyhow::Result<()> {
        // What a proposed block or a blob may take, checked before the bytes are decoded here:
        // a larger answer is no honest peer's.
        let carries = if self.sync.proposed_requests.contains_key(&request_id) {
            Some(p2p::GOSSIP_MESSAGE_BYTES_MAX)
        } else if self.sync.blob_requests.contains_key(&request_id) {
            Some(super::blobs::BLOB_BYTES_MAX)
        } else {
            self.state_sync_carries(request_id)
        };
        if let Some(carries) = carries
            && response.0.len() > carries + ANSWER_FRAMING_BYTES
        {
            self.sync.proposed_requests.remove(&request_id);
            self.sync.blob_requests.remove(&request_id);
            if self.is_state_sync_request(request_id) {
                self.on_state_sync_response(
                    peer,
                    request_id,
                    Err(cairn_ledger::Error::Invalid("an answer larger than asked for".into())),
                );
                return Ok(());
            }
            self.sync_liar(
                peer,
                &format!("an answer of {} bytes, more than what was asked for can be", response.0.len()),
            );
            return Ok(());
        }
        let decoded = response.decode::<SyncResponse>("sync response");
        if self.is_state_sync_request(request_id) {
            self.on_state_sync_response(peer, request_id, decoded);
            return Ok(());
        }
        if let Some((_, _, from)) = self.sync.syncing.filter(|(id, _, _)| *id == request_id) {
            self.sync.syncing = None;
            match decoded {
                Ok(SyncResponse::Blocks(blocks)) => {
                    // Judged against what was asked: the head may have moved since (gossip).
                    let heights: Vec<u64> = blocks.iter().map(|(b, _)| b.header.height).collect();
                    if heights.len() > SYNC_BLOCKS_MAX as usize {
                        self.sync_liar(peer, "sent more blocks than asked for");
                        return Ok(());
                    }
                    match classify_answer(from - 1, &heights) {
                        Answered::Nothing => {}
                        Answered::Stale => self.sync_liar(peer, "sent only blocks this node has"),
                        Answered::Unlinked => self.sync_liar(peer, "sent blocks that do not follow the head"),
                        Answered::Blocks { .. } => {
                            // At most one answer (32 blocks) past what commits proved so far.
                            if let Some(last) = heights.last() {
                                self.peer_at(*last);
                            }
                            // Answers are cut by count and size: ask again until one is empty.
                            self.sync.more = Some(peer);
                            self.sync.source = Some(peer);
                            self.sync.queue.extend(blocks);
                            self.apply_next_synced()?;
                        }
                    }
                }
                // Busy, or its store failed: another peer may answer.
                Ok(SyncResponse::Error(why)) => {
                    tracing::debug!(%peer, "sync answer: {why}");
                    self.sync.distrust(peer, SYNC_SILENT_PAUSE, false);
                    self.sync_from_any_peer();
                }
                Ok(_) => self.sync_liar(peer, "answered a block request with something else"),
                Err(e) => self.sync_liar(peer, &format!("undecodable answer: {e}")),
            }
        } else if let Some((height, block_hash)) = self.sync.proposed_requests.remove(&request_id) {
            if let Ok(SyncResponse::Proposed(Some(block))) = decoded
                && block.header.height == height
                && block.hash() == block_hash
                // The body must be the header's (the hash covers only the header).
                && block.check_structure().is_ok()
            {
                self.proposed_arrived(*block)?;
            }
        } else if let Some((blob, _)) = self.sync.blob_requests.remove(&request_id)
            && let Ok(SyncResponse::Blob(Some(bytes))) = decoded
        {
            self.on_blob(blob, bytes);
        }
        Ok(())
    }

    /// Applies the next synced block, if the executor is free for it; once the queue is empty
    /// after a full answer, asks the same peer for more.
    pub(super) fn apply_next_synced(&mut self) -> anyhow::Result<()> {
        while !self.storing_block() {
            let Some((block, commit)) = self.sync.next_block() else {
                if let Some(peer) = self.sync.more.take() {
                    self.request_sync(peer);
                }
                return Ok(());
            };
            if block.header.height != self.chain.height() + 1 {
                continue;
            }
            self.sync.applying = Some(block.header.height);
            self.apply_finalized(block, commit, false)?;
        }
        Ok(())
    }

    /// A finalized block at `height` could not be applied: forget the rest of the answer; if
    /// it came from sync and is invalid (its commit does not verify, it does not link), the
    /// peer that sent it lied.
    pub(super) fn sync_failed(&mut self, height: u64, invalid: bool) {
        let synced = self.sync.applying.take() == Some(height);
        self.sync.queue.clear();
        self.sync.more = None;
        if synced
            && invalid
            && let Some(peer) = self.sync.source.take()
        {
            self.sync_liar(peer, &format!("sent block {height}, which is invalid"));
        }
    }

    /// A finalized block was stored: a synced one is done.
    pub(super) fn sync_stored(&mut self, height: u64) {
        if self.sync.applying == Some(height) {
            self.sync.applying = None;
        }
    }

    /// A blob this node asked for arrived: stored off the event loop, then announced to the
    /// loop as stored.
    fn on_blob(&mut self, id: Hash, bytes: Vec<u8>) {
        // Only blobs this node asked for arrive here; the hash is the check. It asks every
        // peer, so the same blob may arrive more than once.
        if bytes.len() > super::blobs::BLOB_BYTES_MAX || Hash::of(&bytes) != id || !self.sync.storing.insert(id) {
            return;
        }
        let store = self.chain.store.clone();
        let events = self.events.clone();
        let wasm = bytes.starts_with(b"\0asm");
        tokio::spawn(async move {
            // Stored as it is, valid or not: a job on an invalid module ends `invalid_module`
            // everywhere (its reason says why), and re-executing one needs its bytes. Whoever
            // runs a job validates the module then.
            let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
                if store.has_blob(&id)? {
                    return Ok(false);
                }
                store.put_blob(&bytes)?;
                Ok(true)
            })
            .await;
            let stored = match stored {
                Ok(Ok(stored)) => Ok(stored),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("storing the blob failed: {e}")),
            };
            // Sent either way, so the loop forgets the blob is being stored.
            let _ = events.send(Event::BlobFetched { id, wasm, stored }).await;
        });
    }

    /// A fetched blob was stored (or was there already, or storing it failed: fatal). What
    /// waits for it goes on either way: a re-execution that missed it just before another
    /// fetch stored it asks again, and finds it here. A module is compiled ahead.
    pub(super) fn on_blob_fetched(&mut self, id: Hash, wasm: bool, stored: anyhow::Result<bool>) -> anyhow::Result<()> {
        self.sync.storing.remove(&id);
        if stored.with_context(|| format!("storing blob {id}"))? {
            self.sync.announced.remove(&id);
            if wasm {
                self.prepare_in_background(id);
            }
        }
        self.blob_stored(id)
    }
}

/// The head block and its commit, as `store` holds them at `head` (`None` before the first
/// block): what a peer restores the state at.
fn snapshot_of(store: &Store, head: u64) -> anyhow::Result<Option<(Block, Commit)>> {
    if head == 0 {
        return Ok(None);
    }
    let block = store.block(head)?.with_context(|| format!("block {head}, the head, is missing"))?;
    let commit = store.commit(head)?.with_context(|| format!("the commit of block {head} is missing"))?;
    Ok(Some((block, commit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_judged_against_the_head_it_was_asked_from() {
        // Honest answers: nothing, or the blocks after the head, one by one.
        assert_eq!(classify_answer(10, &[]), Answered::Nothing);
        assert_eq!(classify_answer(10, &[11]), Answered::Blocks { new: 1 });
        assert_eq!(classify_answer(10, &[11, 12, 13]), Answered::Blocks { new: 3 });
        assert_eq!(classify_answer(0, &[1, 2]), Answered::Blocks { new: 2 });
        // Only blocks the node has.
        assert_eq!(classify_answer(10, &[9, 10]), Answered::Stale);
        assert_eq!(classify_answer(10, &[3]), Answered::Stale);
        // A gap, a repeat, out of order, or old blocks in front of new ones.
        assert_eq!(classify_answer(10, &[12, 13]), Answered::Unlinked);
        assert_eq!(classify_answer(10, &[11, 11]), Answered::Unlinked);
        assert_eq!(classify_answer(10, &[12, 11]), Answered::Unlinked);
        assert_eq!(classify_answer(10, &[10, 11]), Answered::Unlinked);
        assert_eq!(classify_answer(10, &[11, 13]), Answered::Unlinked);
    }

    /// A peer that asks and does not read its answers gets "busy" once it has its share of
    /// answers unread, and every peer once the unread bytes reach their bound; an answer read
    /// (or failed) frees its share.
    #[test]
    fn answers_not_read_yet_are_bounded_per_peer_and_in_bytes() {
        let mut u: Unread<u64> = Unread::default();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        for id in 0..SYNC_UNREAD_ANSWERS_PER_PEER_MAX as u64 {
            assert!(u.allows(&greedy));
            u.handed(id, greedy, 1_000);
        }
        assert!(!u.allows(&greedy), "its share of unread answers");
        assert!(u.allows(&other), "another peer is answered");
        u.gone(&0);
        assert!(u.allows(&greedy), "one read, one more answered");
        u.gone(&0);
        assert_eq!(u.bytes(), 1_000 * (SYNC_UNREAD_ANSWERS_PER_PEER_MAX - 1), "gone twice counts once");
        // Large answers to many peers: once the bytes reach the bound, nobody is answered.
        let mut id = 100;
        while u.bytes() < SYNC_UNREAD_ANSWER_BYTES_MAX {
            assert!(u.allows(&other) || u.bytes() >= SYNC_UNREAD_ANSWER_BYTES_MAX);
            u.handed(id, PeerId::random(), 32 << 20);
            id += 1;
        }
        assert!(!u.allows(&PeerId::random()) && !u.allows(&other));
        u.gone(&100);
        assert!(u.allows(&other));
    }

    /// A proposed block is asked of a few peers, the validators among them first.
    #[test]
    fn a_proposed_block_is_asked_of_a_few_peers_validators_first() {
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let validators: HashSet<PeerId> = [peers[7], peers[13]].into_iter().collect();
        let mut rng = rand::thread_rng();
        let mut asked_others = HashSet::new();
        for _ in 0..50 {
            let asked = peers_for_a_proposed_block(peers.clone(), &validators, &mut rng);
            assert_eq!(asked.len(), PROPOSED_PEERS_ASKED_MAX);
            assert!(validators.iter().all(|v| asked[..2].contains(v)), "validators first: {asked:?}");
            asked_others.extend(asked[2..].iter().copied());
        }
        assert!(asked_others.len() > 1, "retries ask other peers");
        assert_eq!(peers_for_a_proposed_block(peers[..2].to_vec(), &HashSet::new(), &mut rng).len(), 2);
    }

    #[test]
    fn distrust_expires_and_is_bounded() {
        let mut s = SyncState::default();
        let liar = PeerId::random();
        s.distrust(liar, Duration::from_secs(60), true);
        assert!(s.is_distrusted(&liar) && s.is_liar(&liar));
        assert!(!s.is_distrusted(&PeerId::random()));
        // A peer that did not answer is not asked for a while, but is no liar.
        let silent = PeerId::random();
        s.distrust(silent, Duration::from_secs(10), false);
        assert!(s.is_distrusted(&silent) && !s.is_liar(&silent));
        // A liar's pause is not shortened, nor its lie forgotten, by a later silence.
        s.distrust(liar, Duration::from_secs(1), false);
        assert!(s.is_liar(&liar));
        let brief = PeerId::random();
        s.distrust(brief, Duration::ZERO, true);
        assert!(!s.is_distrusted(&brief), "a pause that has passed no longer counts");
        for _ in 0..SYNC_DISTRUSTED_MAX + 10 {
            s.distrust(PeerId::random(), Duration::from_secs(60), true);
        }
        assert!(s.distrusted.len() <= SYNC_DISTRUSTED_MAX);
    }
}
