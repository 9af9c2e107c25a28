//! State sync: a node with no block yet, whose peer is far ahead, restores the state at that
//! peer's head instead of replaying every block since genesis (`cairn_ledger::snapshot`).
//!
//! 1. It asks the peer for its head block and commit (`Snapshot`), and trusts the height and
//!    state root only once the commit verifies against the genesis validators.
//! 2. It asks for the state at that height in chunks (`StateChunk`), round-robin over its
//!    trusted peers; each chunk must prove against the state root. A large state is fetched in
//!    several ranges of the key space at once ([`LanedRestore`]), each range one request at a
//!    time, at most [`CHUNK_REQUESTS_PER_PEER`] to one peer at once. A peer whose chunk does
//!    not is a liar (disconnected, distrusted), and the restore starts over from another peer.
//!    A busy peer is paused and another asked (with none to ask, the next maintenance tick asks
//!    again). A peer without that height's tree is paused and another asked too, since it may
//!    not have reached the height yet ([`after_missing_height`]); but when the peer whose head
//!    is restored no longer keeps it, or [`MISSING_HEIGHT_MAX`] answers came without a chunk
//!    (busy or not keeping it), the restore starts over at a newer head.
//! 3. The last chunk in, the tree is rebuilt and checked as a whole, then written with the block
//!    and its commit in one batch off the loop; the chain reloads its head from the store
//!    (comparing the stored tree's root with the head's), and block sync goes on from there.
//!
//! Until it is done, the node syncs no block. A peer less than `state_sync_min_blocks` ahead
//! makes it replay blocks as usual ([`after_short_head`]) — unless another peer has shown a
//! head that far ahead: then the short one (a node as new as this one, say) is paused and
//! another asked; and a node that replays but has no block yet tries state sync again once a
//! peer shows such a head.

use std::time::Instant;

use anyhow::Context;
use cairn_ledger::snapshot::{
    LanedRestore, STATE_CHUNK_ANSWER_BYTES_MAX, STATE_CHUNK_ENTRIES_MAX, StateChunk, StateRestore,
};
use cairn_ledger::{Block, Commit, Result};
use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;

use super::{Event, Node};
use crate::p2p::{SyncRequest, SyncResponse, Wire};

/// Answers without a chunk ("that height's tree is not kept here" from peers other than the one
/// whose head it restores, or an error) one restore takes before it starts over at a newer head.
pub const MISSING_HEIGHT_MAX: u32 = 8;

/// Chunk requests a restore has in flight to one peer at once (a node answers
/// `SYNC_ANSWERS_AT_ONCE` requests of all kinds at once).
pub const CHUNK_REQUESTS_PER_PEER: usize = 2;

/// Where state sync is.
#[derive(Default)]
pub enum StateSync {
    /// Not tried yet.
    #[default]
    Idle,
    /// A peer's head is asked for.
    Asking {
        /// The request.
        request: OutboundRequestId,
    },
    /// Chunks are being fetched and checked.
    Restoring(Box<Restoring>),
    /// The restored state is being written.
    Writing,
    /// Done, or not used in this run: blocks are synced as usual.
    Off,
}

/// A restore in progress.
pub struct Restoring {
    block: Block,
    commit: Commit,
    restore: LanedRestore<PeerId>,
    /// Each lane's chunk request in flight, and its peer.
    requests: Vec<Option<(OutboundRequestId, PeerId)>>,
    /// The peer whose head is restored.
    source: PeerId,
    /// Answers so far without a chunk ([`MISSING_HEIGHT_MAX`]).
    missing: u32,
    /// Chunks asked so far (the round-robin turn).
    asked: usize,
    started: Instant,
}

impl Restoring {
    /// The lane whose request `request_id` is.
    fn lane_of(&self, request_id: OutboundRequestId) -> Option<usize> {
        self.requests.iter().position(|r| r.is_some_and(|(id, _)| id == request_id))
    }
}

/// How long each part of a restore took (logged when it is done).
#[derive(Clone, Copy)]
struct Phases {
    started: Instant,
    fetched: std::time::Duration,
    written: std::time::Duration,
}

/// What writing the restored state gave, sent back to the loop.
pub struct Restored {
    height: u64,
    entries: usize,
    chunks: usize,
    phases: Phases,
    /// Written, or the store failed (fatal).
    written: anyhow::Result<()>,
}

/// What a restore does when a peer answers without a chunk (busy, or not keeping the height).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingHeight {
    /// The peer may not have reached the height yet: pause it, ask another.
    AskAnother,
    /// The height is pruned: start over at a newer head.
    StartOver,
}

/// [`MissingHeight`] after an answer without a chunk: `from_source` when the peer whose head is
/// restored says it does not keep the height (it had it, so it pruned it); `missing` such
/// answers so far in this restore, this one included.
pub fn after_missing_height(from_source: bool, missing: u32) -> MissingHeight {
    if from_source || missing >= MISSING_HEIGHT_MAX { MissingHeight::StartOver } else { MissingHeight::AskAnother }
}

/// What a node with no block does when a peer's head is not `min_blocks` ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortHead {
    /// Another peer showed a head far enough ahead: ask one of the others.
    AskAnother,
    /// No peer is that far ahead: replay the blocks.
    Replay,
}

/// [`ShortHead`] for a node at `height`, the highest head its peers showed being `seen`.
pub fn after_short_head(height: u64, seen: u64, min_blocks: u64) -> ShortHead {
    if seen >= height.saturating_add(min_blocks.max(1)) { ShortHead::AskAnother } else { ShortHead::Replay }
}

impl StateSync {
    /// Whether state sync holds block sync back (it is being tried).
    pub fn busy(&self) -> bool {
        matches!(self, StateSync::Asking { .. } | StateSync::Restoring(_) | StateSync::Writing)
    }
}

impl Node {
    /// Whether this node may restore a state: enabled, not a validator, and no block here yet.
    fn may_restore(&self) -> bool {
        self.config.state_sync && self.chain.height() == 0 && self.consensus.is_none()
    }

    /// Whether block sync should first try state sync: it may restore, and has not tried yet.
    pub(super) fn state_sync_first(&self) -> bool {
        self.may_restore() && matches!(self.state_sync, StateSync::Idle)
    }

    /// At each maintenance tick: a restore that stopped for want of a peer to ask (all paused
    /// or gone) asks again once one is there.
    pub(super) fn resume_state_sync(&mut self) {
        match &self.state_sync {
            StateSync::Idle if self.state_sync_first() && self.net_info.peer_height > self.chain.height() => {
                self.sync_from_any_peer();
            }
            StateSync::Restoring(_) => self.request_chunks(),
            // Replaying from a peer that had nothing to give, while another shows a head far
            // ahead: restore after all.
            StateSync::Off
                if self.may_restore()
                    && !self.sync_in_flight()
                    && after_short_head(0, self.net_info.peer_height, self.config.state_sync_min_blocks)
                        == ShortHead::AskAnother =>
            {
                tracing::info!(
                    seen = self.net_info.peer_height,
                    "state sync: a peer is far ahead; trying state sync again"
                );
                self.state_sync = StateSync::Idle;
                self.sync_from_any_peer();
            }
            _ => {}
        }
    }

    /// Asks `peer` for its head, to restore the state there if it is far enough ahead.
    pub(super) fn ask_snapshot(&mut self, peer: PeerId) {
        let request = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&SyncRequest::Snapshot));
        self.state_sync = StateSync::Asking { request };
    }

    /// Whether `request_id` is a state sync request.
    pub(super) fn is_state_sync_request(&self, request_id: OutboundRequestId) -> bool {
        match &self.state_sync {
            StateSync::Asking { request, .. } => *request == request_id,
            StateSync::Restoring(r) => r.lane_of(request_id).is_some(),
            _ => false,
        }
    }

    /// What an answer to `request_id` may take, if it is a state sync request: a head block
    /// with its commit, or a chunk. A larger one is refused before it is decoded.
    pub(super) fn state_sync_carries(&self, request_id: OutboundRequestId) -> Option<usize> {
        match &self.state_sync {
            StateSync::Asking { request, .. } if *request == request_id => Some(crate::p2p::GOSSIP_MESSAGE_BYTES_MAX),
            StateSync::Restoring(r) if r.lane_of(request_id).is_some() => Some(STATE_CHUNK_ANSWER_BYTES_MAX),
            _ => None,
        }
    }

    /// The answer to a state sync request.
    pub(super) fn on_state_sync_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        decoded: Result<SyncResponse>,
    ) {
        match &self.state_sync {
            StateSync::Asking { .. } => self.on_snapshot(peer, decoded),
            StateSync::Restoring(_) => self.on_chunk(peer, request_id, decoded),
            _ => {}
        }
    }

    /// A state sync request failed (no answer): another peer is asked.
    pub(super) fn state_sync_request_failed(&mut self, peer: PeerId, request_id: OutboundRequestId) {
        if !self.is_state_sync_request(request_id) {
            return;
        }
        tracing::info!(%peer, "state sync: the peer did not answer; asking another");
        self.sync.pause(peer);
        match &mut self.state_sync {
            StateSync::Asking { .. } => {
                self.state_sync = StateSync::Idle;
                self.sync_from_any_peer();
            }
            StateSync::Restoring(r) => {
                if let Some(lane) = r.lane_of(request_id) {
                    r.requests[lane] = None;
                }
                self.request_chunks();
            }
            _ => {}
        }
    }

    fn on_snapshot(&mut self, peer: PeerId, decoded: Result<SyncResponse>) {
        self.state_sync = StateSync::Idle;
        let head = match decoded {
            Ok(SyncResponse::Snapshot(head)) => head,
            Ok(SyncResponse::Error(why)) => {
                tracing::debug!(%peer, "state sync: the peer cannot tell its head ({why})");
                self.sync.pause(peer);
                return self.sync_from_any_peer();
            }
            Ok(_) => return self.sync_liar(peer, "answered a head request with something else"),
            Err(e) => return self.sync_liar(peer, &format!("undecodable answer: {e}")),
        };
        let height = head.as_ref().map_or(0, |h| h.0.header.height);
        let Some((block, commit)) = head.filter(|_| height >= self.config.state_sync_min_blocks.max(1)).map(|h| *h)
        else {
            let min = self.config.state_sync_min_blocks;
            if after_short_head(self.chain.height(), self.net_info.peer_height, min) == ShortHead::AskAnother {
                // This peer is behind the others (as new as this node, say): ask another.
                tracing::debug!(%peer, height, "state sync: the peer is behind the others; asking another");
                self.sync.pause(peer);
                return self.sync_from_any_peer();
            }
            // Close enough: replaying the blocks costs less than a restore.
            tracing::debug!(%peer, height, "state sync: the peer is not far enough ahead; syncing blocks");
            self.state_sync = StateSync::Off;
            return self.request_sync(peer);
        };
        let check = block.check_structure().map_err(|e| e.to_string()).and_then(|()| {
            if commit.height != height || commit.block_hash != block.hash() {
                return Err("the commit is not for the block".into());
            }
            if block.header.chain_id != self.chain.chain_id {
                return Err("the block is of another chain".into());
            }
            commit.verify(self.chain.chain_id, &self.chain.validators).map(|_| ()).map_err(|e| e.to_string())
        });
        if let Err(why) = check {
            return self.sync_liar(peer, &format!("sent a head that is not final ({why})"));
        }
        self.peer_at(height);
        let restore = match StateRestore::new(height, block.header.state_root) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("state sync: cannot start a restore ({e}); syncing blocks");
                self.state_sync = StateSync::Off;
                return self.request_sync(peer);
            }
        };
        tracing::info!(%peer, height, state_root = %block.header.state_root, "state sync: restoring the state at the peer's head");
        self.state_sync = StateSync::Restoring(Box::new(Restoring {
            block,
            commit,
            restore: LanedRestore::new(restore),
            requests: vec![None],
            source: peer,
            missing: 0,
            asked: 0,
            started: Instant::now(),
        }));
        self.request_chunks();
    }

    /// Entries a chunk is asked for (the configured count, within the wire's bound).
    fn chunk_entries(&self) -> u32 {
        self.config.state_sync_chunk_entries.clamp(1, STATE_CHUNK_ENTRIES_MAX)
    }

    /// Each lane that wants a chunk and has no request in flight asks the next peer in turn
    /// with room for one ([`CHUNK_REQUESTS_PER_PEER`]); with none, the next maintenance tick
    /// asks again.
    fn request_chunks(&mut self) {
        let mut peers: Vec<PeerId> =
            self.net.peers().into_iter().filter(|p| !self.sync.is_distrusted(p)).collect::<Vec<_>>();
        peers.sort();
        let max = self.chunk_entries();
        let StateSync::Restoring(r) = &mut self.state_sync else { return };
        r.requests.resize(r.restore.lanes(), None);
        let height = r.restore.version();
        let mut asks = Vec::new();
        for lane in 0..r.restore.lanes() {
            let Some(start) = r.restore.wants(lane).filter(|_| r.requests[lane].is_none()) else { continue };
            let busy = |p: &PeerId| {
                r.requests.iter().flatten().filter(|(_, q)| q == p).count()
                    + asks.iter().filter(|(_, q, _)| q == p).count()
            };
            let Some(peer) = (0..peers.len())
                .map(|i| peers[(r.asked + i) % peers.len()])
                .find(|p| busy(p) < CHUNK_REQUESTS_PER_PEER)
            else {
                if peers.is_empty() {
                    tracing::debug!("state sync: no peer to ask for the next chunk now");
                }
                break;
            };
            r.asked += 1;
            asks.push((lane, peer, start));
        }
        for (lane, peer, start) in asks {
            let request = SyncRequest::StateChunk { height, start: start.0, max };
            let id = self.net.swarm().behaviour_mut().sync.send_request(&peer, Wire::encode(&request));
            if let StateSync::Restoring(r) = &mut self.state_sync {
                r.requests[lane] = Some((id, peer));
            }
        }
    }

    fn on_chunk(&mut self, peer: PeerId, request_id: OutboundRequestId, decoded: Result<SyncResponse>) {
        let max = self.chunk_entries() as usize;
        let StateSync::Restoring(r) = &mut self.state_sync else { return };
        let Some(lane) = r.lane_of(request_id) else { return };
        r.requests[lane] = None;
        let height = r.restore.version();
        let chunk: StateChunk = match decoded {
            Ok(SyncResponse::StateChunk(Some(chunk))) => chunk,
            Ok(answer @ (SyncResponse::Error(_) | SyncResponse::StateChunk(None))) => {
                // No chunk. An error: busy, another peer may answer (no chunk from some key
                // hash on at all, as when a liar's chunk hid that it was the last, answers so
                // too). `None`: that height's state is not kept there, not yet (a peer behind
                // the one whose head this is) or no longer (the chain moved on).
                let pruned_at_source = matches!(answer, SyncResponse::StateChunk(None)) && peer == r.source;
                r.missing += 1;
                self.sync.pause(peer);
                if after_missing_height(pruned_at_source, r.missing) == MissingHeight::AskAnother {
                    tracing::debug!(%peer, height, "state sync: no chunk from this peer now; asking another");
                    return self.request_chunks();
                }
                tracing::info!(%peer, height, "state sync: the height is not kept, or too many peers gave no chunk; starting over");
                self.state_sync = StateSync::Idle;
                return self.sync_from_any_peer();
            }
            Ok(_) => {
                self.state_sync = StateSync::Idle;
                return self.sync_liar(peer, "answered a state chunk request with something else");
            }
            Err(e) => {
                self.state_sync = StateSync::Idle;
                return self.sync_liar(peer, &format!("undecodable answer: {e}"));
            }
        };
        match r.restore.take(lane, chunk, peer, max) {
            Err((server, e)) => {
                // The partial tree took the bad chunk (or the chunks ended the state without
                // one marked last): start over, without its server.
                self.state_sync = StateSync::Idle;
                self.sync_liar(server, &format!("served state of height {height} that does not prove ({e})"));
            }
            Ok(false) => self.request_chunks(),
            Ok(true) => self.write_restored_state(),
        }
    }

    /// The last chunk is in: the tree is checked as a whole, then written off the loop. A
    /// whole that does not prove blames the peer that said its chunk was the last.
    fn write_restored_state(&mut self) {
        let StateSync::Restoring(r) = std::mem::replace(&mut self.state_sync, StateSync::Writing) else { return };
        let Restoring { block, commit, restore, started, asked, .. } = *r;
        let height = block.header.height;
        let fetched = started.elapsed();
        let (entries, tree) = match restore.finish() {
            Ok(done) => done,
            Err((last_server, e)) => {
                self.state_sync = StateSync::Idle;
                match last_server {
                    Some(peer) => self.sync_liar(peer, &format!("ended the state of height {height} early ({e})")),
                    None => self.sync_from_any_peer(),
                }
                return;
            }
        };
        let store = self.chain.store.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let count = entries.len();
            let writing = Instant::now();
            let written = tokio::task::spawn_blocking(move || {
                store
                    .restore_state(&block, &commit, &entries, &tree)
                    .with_context(|| format!("writing the state of height {height} restored from peers"))
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("writing the restored state failed: {e}")));
            let phases = Phases { started, fetched, written: writing.elapsed() };
            let restored = Restored { height, entries: count, chunks: asked, phases, written };
            let _ = events.send(Event::StateRestored(restored)).await;
        });
    }

    /// The restored state was written (or refused): the head moves to it, and blocks after it
    /// are synced.
    pub(super) fn on_state_restored(&mut self, restored: Restored) -> anyhow::Result<()> {
        let Restored { height, entries, chunks, phases, written } = restored;
        written?;
        let loading = Instant::now();
        self.chain.reload().context("loading the restored state")?;
        self.state_sync = StateSync::Off;
        tracing::info!(
            height,
            entries,
            chunks,
            fetch_ms = phases.fetched.as_millis() as u64,
            write_ms = phases.written.as_millis() as u64,
            load_ms = loading.elapsed().as_millis() as u64,
            took_ms = phases.started.elapsed().as_millis() as u64,
            "state sync: restored the state of height {height} from peers; syncing the blocks after it"
        );
        self.executed.head_moved(height);
        self.publish_view();
        crate::metrics::set(&self.metrics.head_height, height);
        self.sync_from_any_peer();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_head_is_replayed_from_unless_another_peer_is_far_ahead() {
        // A peer 50 blocks ahead with a minimum of 100: replay, if nobody showed more.
        assert_eq!(after_short_head(0, 50, 100), ShortHead::Replay);
        // A new peer (head 0) while another showed height 5,000: ask another.
        assert_eq!(after_short_head(0, 5_000, 100), ShortHead::AskAnother);
        assert_eq!(after_short_head(0, 100, 100), ShortHead::AskAnother, "the minimum is inclusive");
        assert_eq!(after_short_head(10, 105, 100), ShortHead::Replay, "counted from the node's height");
        assert_eq!(after_short_head(0, 0, 0), ShortHead::Replay, "a minimum of 0 counts as 1");
    }

    #[test]
    fn a_missing_height_starts_over_only_from_the_source_or_after_many_answers() {
        // Another peer may be a block or two behind the head restored: ask someone else.
        assert_eq!(after_missing_height(false, 1), MissingHeight::AskAnother);
        assert_eq!(after_missing_height(false, MISSING_HEIGHT_MAX - 1), MissingHeight::AskAnother);
        // The peer whose head it is had the height: it pruned it.
        assert_eq!(after_missing_height(true, 1), MissingHeight::StartOver);
        // Everyone pruned it, or keeps saying so: a newer head.
        assert_eq!(after_missing_height(false, MISSING_HEIGHT_MAX), MissingHeight::StartOver);
    }
}
