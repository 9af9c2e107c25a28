//! Request-response with peers: finalized blocks a node missed (sync), modules (blobs), and
//! proposed blocks the consensus engine waits for. Answers are read from the store off the
//! loop; synced blocks are applied one at a time by the executor, in order.

use std::collections::{HashMap, HashSet, VecDeque};

use anyhow::Context;
use cairn_ledger::{Block, Commit, Hash};
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};

use super::{Event, Node};
use crate::p2p::{self, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, Wire};

/// Announced modules a provider fetches at once (announcements cost nothing to send, so
/// beyond this they are ignored until the fetches in flight end).
pub const ANNOUNCED_FETCHES_MAX: usize = 16;
/// Requests from peers answered at once; past it a request is answered with an error (the
/// peer asks again or another peer).
pub const SYNC_ANSWERS_AT_ONCE: usize = 4;

/// Requests in flight and what arrived.
#[derive(Default)]
pub struct SyncState {
    /// The block sync request in flight, and the peer asked.
    syncing: Option<(OutboundRequestId, PeerId)>,
    /// Finalized blocks received, to apply in order (at most one response's worth).
    queue: VecDeque<(Block, Commit)>,
    /// Whether the response they came in was full (there may be more).
    more: Option<PeerId>,
    /// Blob requests in flight.
    blob_requests: HashMap<OutboundRequestId, Hash>,
    /// Fetched modules being stored, off the loop.
    storing: HashSet<Hash>,
    /// Announced modules being fetched (at most [`ANNOUNCED_FETCHES_MAX`]).
    announced: HashSet<Hash>,
    /// Proposed-block requests in flight.
    proposed_requests: HashMap<OutboundRequestId, (u64, Hash)>,
    /// Requests from peers being answered.
    answering: usize,
}

impl SyncState {
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
        let requested: HashSet<Hash> = self.blob_requests.values().copied().collect();
        self.announced.retain(|id| requested.contains(id));
    }

    /// The next synced block to apply.
    pub fn next_block(&mut self) -> Option<(Block, Commit)> {
        self.queue.pop_front()
    }
}

/// A peer's request, answered from the store off the loop.
pub struct Answer {
    channel: ResponseChannel<Wire>,
    response: SyncResponse,
}

impl Node {
    /// Asks `peer` for the finalized blocks after the head (one request at a time).
    pub(super) fn request_sync(&mut self, peer: PeerId) {
        if self.sync.syncing.is_some() || !self.sync.queue.is_empty() {
            return;
        }
        let from = self.chain.height() + 1;
        let req = SyncRequest::Blocks { from, max: SYNC_BLOCKS_MAX };
        let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&req));
        self.sync.syncing = Some((id, peer));
    }

    /// Asks any connected peer for the blocks after the head.
    pub(super) fn sync_from_any_peer(&mut self) {
        if let Some(peer) = self.net.any_peer() {
            self.request_sync(peer);
        }
    }

    /// Asks every connected peer for a module (once at a time).
    pub(super) fn request_blob(&mut self, module_id: Hash) {
        // Asked already, or arrived and being stored.
        if self.sync.storing.contains(&module_id) || self.sync.blob_requests.values().any(|m| *m == module_id) {
            return;
        }
        for peer in self.net.peers() {
            self.request_blob_from(peer, module_id);
        }
    }

    pub(super) fn request_blob_from(&mut self, peer: PeerId, module_id: Hash) {
        let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&SyncRequest::Blob(module_id)));
        self.sync.blob_requests.insert(id, module_id);
    }

    /// Asks every connected peer for a proposed block the engine waits for.
    pub(super) fn request_proposed(&mut self, height: u64, block_hash: Hash) {
        for peer in self.net.peers() {
            let req = Wire::encode(&SyncRequest::Proposed { height, block_hash });
            let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, req);
            self.sync.proposed_requests.insert(id, (height, block_hash));
        }
    }

    pub(super) fn on_sync(&mut self, ev: request_response::Event<Wire, Wire>) -> anyhow::Result<()> {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.answer(request, channel),
                request_response::Message::Response { request_id, response } => {
                    self.on_response(peer, request_id, response)?;
                }
            },
            request_response::Event::OutboundFailure { request_id, peer, error, .. } => {
                tracing::debug!(%peer, "request failed: {error}");
                if self.sync.syncing.is_some_and(|(id, _)| id == request_id) {
                    self.sync.syncing = None;
                }
                self.sync.blob_requests.remove(&request_id);
                self.sync.proposed_requests.remove(&request_id);
            }
            _ => {}
        }
        Ok(())
    }

    /// Answers a peer's request: proposed blocks from memory at once, the rest read from the
    /// store on a blocking thread.
    fn answer(&mut self, request: Wire, channel: ResponseChannel<Wire>) {
        let request = match request.decode::<SyncRequest>("sync request") {
            Ok(r) => r,
            Err(e) => return self.respond(channel, SyncResponse::Error(e.to_string())),
        };
        if let SyncRequest::Proposed { height, block_hash } = request {
            let block = self.proposed_block(height, &block_hash).map(Box::new);
            return self.respond(channel, SyncResponse::Proposed(block));
        }
        if self.sync.answering >= SYNC_ANSWERS_AT_ONCE {
            return self.respond(channel, SyncResponse::Error("busy; ask again shortly".into()));
        }
        self.sync.answering += 1;
        let store = self.chain.store.clone();
        let head = self.chain.height();
        let events = self.events.clone();
        tokio::spawn(async move {
            let response = tokio::task::spawn_blocking(move || match request {
                SyncRequest::Blocks { from, max } => {
                    let budget = p2p::SYNC_RESPONSE_BYTES_MAX as usize / 2;
                    match crate::chain::blocks_from(&store, head, from, max.min(SYNC_BLOCKS_MAX), budget) {
                        Ok(blocks) => SyncResponse::Blocks(blocks),
                        Err(e) => SyncResponse::Error(e.to_string()),
                    }
                }
                SyncRequest::Blob(id) => match store.blob(&id) {
                    Ok(b) => SyncResponse::Blob(b),
                    Err(e) => SyncResponse::Error(e.to_string()),
                },
                SyncRequest::Proposed { .. } => SyncResponse::Error("answered on the loop".into()),
            })
            .await
            .unwrap_or_else(|e| SyncResponse::Error(format!("reading the store failed: {e}")));
            let _ = events.send(Event::Answer(Answer { channel, response })).await;
        });
    }

    /// A request's answer was read from the store: send it.
    pub(super) fn on_answer(&mut self, answer: Answer) {
        self.sync.answering = self.sync.answering.saturating_sub(1);
        self.respond(answer.channel, answer.response);
    }

    fn respond(&mut self, channel: ResponseChannel<Wire>, response: SyncResponse) {
        let _ = self.net.swarm().behaviour_mut().sync.send_response(channel, Wire::encode(&response));
    }

    fn on_response(&mut self, peer: PeerId, request_id: OutboundRequestId, response: Wire) -> anyhow::Result<()> {
        let decoded = response.decode::<SyncResponse>("sync response");
        if self.sync.syncing.is_some_and(|(id, _)| id == request_id) {
            self.sync.syncing = None;
            if let Ok(SyncResponse::Blocks(blocks)) = decoded {
                // Answers are cut by count and size: ask again until one is empty.
                self.sync.more = (!blocks.is_empty()).then_some(peer);
                let head = self.chain.height();
                self.sync.queue.extend(blocks.into_iter().filter(|(b, _)| b.header.height > head));
                self.apply_next_synced()?;
            }
        } else if let Some((height, block_hash)) = self.sync.proposed_requests.remove(&request_id) {
            if let Ok(SyncResponse::Proposed(Some(block))) = decoded
                && block.header.height == height
                && block.hash() == block_hash
            {
                self.proposed_arrived(*block)?;
            }
        } else if let Some(module_id) = self.sync.blob_requests.remove(&request_id)
            && let Ok(SyncResponse::Blob(Some(bytes))) = decoded
        {
            self.on_blob(module_id, bytes);
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
            self.apply_finalized(block, commit, false)?;
        }
        Ok(())
    }

    /// A synced block could not be applied: forget the rest of the answer.
    pub(super) fn sync_failed(&mut self) {
        self.sync.queue.clear();
        self.sync.more = None;
    }

    /// A module this node asked for arrived: stored off the event loop, then announced to the
    /// loop as stored.
    fn on_blob(&mut self, module_id: Hash, bytes: Vec<u8>) {
        // Only blobs this node asked for arrive here; the hash is the check. It asks every
        // peer, so the same module may arrive more than once.
        if Hash::of(&bytes) != module_id || !self.sync.storing.insert(module_id) {
            return;
        }
        let store = self.chain.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            // Stored as it is, valid or not: a job on an invalid module ends `invalid_module`
            // everywhere (its reason says why), and re-executing one needs its bytes. Whoever
            // runs a job validates the module then.
            let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
                if store.has_blob(&module_id)? {
                    return Ok(false);
                }
                store.put_blob(&bytes)?;
                Ok(true)
            })
            .await;
            let stored = match stored {
                Ok(Ok(stored)) => Ok(stored),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("storing the module failed: {e}")),
            };
            // Sent either way, so the loop forgets the module is being stored.
            let _ = events.send(Event::ModuleFetched { module_id, stored }).await;
        });
    }

    /// A fetched module was stored (or was there already, or storing it failed: fatal).
    pub(super) fn on_module_fetched(&mut self, module_id: Hash, stored: anyhow::Result<bool>) -> anyhow::Result<()> {
        self.sync.storing.remove(&module_id);
        if stored.with_context(|| format!("storing module {module_id}"))? {
            self.sync.announced.remove(&module_id);
            self.prepare_in_background(module_id);
            self.module_stored(module_id);
        }
        Ok(())
    }
}
