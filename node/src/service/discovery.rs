//! Peer discovery: a node given one bootstrap address finds the chain's other nodes through
//! Kademlia (the routing table is filled from identify answers and bootstrap walks) and dials
//! them until it has `peers_target` connections, so every gossip topic can form its mesh and
//! the network outlives its bootstrap node.
//!
//! - **Learning.** Each identify answer of a peer that speaks the chain's Kademlia protocol puts
//!   its listen addresses (at most [`p2p::PEER_ADDRESSES_MAX`]) in the routing table. A
//!   bootstrap walk asks the peers known for the nodes closest to random keys, which fills
//!   the table further; Kademlia drops the entries of peers that stop answering.
//! - **Dialing.** At each maintenance tick, while the node has fewer than `peers_target`
//!   peers, it dials at most [`DIALS_PER_TICK`] peers of the table it is not connected to,
//!   none of them again within [`DIAL_BACKOFF`] (the backoff list holds at most
//!   [`DIAL_BACKOFF_ENTRIES_MAX`] peers), and walks again every [`SHORT_BOOTSTRAP_INTERVAL`].
//!   Peers that lied to sync are not dialed while they are distrusted.
//! - **Pruning.** Kademlia's walks open a connection to every peer they ask, and an idle one
//!   lasts [`p2p::IDLE_CONNECTION_TIMEOUT`], so without pruning every node ends up connected
//!   to nearly every other (and gossip floods each message to all of them). Above
//!   [`PEERS_HIGH_FACTOR`] × `peers_target` connections, each tick closes at most
//!   [`PRUNES_PER_TICK`] of the peers that are in none of this node's gossip meshes and are
//!   not validators (consensus wants validators directly connected) nor the peer it syncs
//!   blocks from, choosing by a hash of
//!   both peer ids so that nodes prune different peers; a pruned peer is not dialed again
//!   within [`DIAL_BACKOFF`].
//! - **Accepting.** Inbound connections are not limited here: the node's connection limits
//!   bound them.

use std::time::{Duration, Instant};

use libp2p::{PeerId, identify};

use super::Node;
use crate::backoff::Backoff;
use crate::p2p;

/// Peers dialed per maintenance tick at most, while the node is short of peers.
pub const DIALS_PER_TICK: usize = 4;
/// A peer dialed is not dialed again before this.
pub const DIAL_BACKOFF: Duration = Duration::from_secs(30);
/// Peers remembered in the dial backoff at most (the oldest are forgotten first).
pub const DIAL_BACKOFF_ENTRIES_MAX: usize = 1_024;
/// How often a node short of peers walks the DHT again.
pub const SHORT_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(5);
/// Connections are pruned above this many times `peers_target`.
pub const PEERS_HIGH_FACTOR: usize = 3;
/// Connections closed per maintenance tick at most, while above the high mark.
pub const PRUNES_PER_TICK: usize = 8;

/// The peers to disconnect: of `connected`, those not in `keep`, ordered by
/// `sha256(local ‖ peer)` (each node its own order), as many as bring the count down to
/// `high`, at most [`PRUNES_PER_TICK`].
pub fn surplus(
    local: &PeerId,
    connected: &std::collections::HashSet<PeerId>,
    keep: &std::collections::HashSet<PeerId>,
    high: usize,
) -> Vec<PeerId> {
    let over = connected.len().saturating_sub(high).min(PRUNES_PER_TICK);
    if over == 0 {
        return Vec::new();
    }
    let mut candidates: Vec<(cairn_ledger::Hash, PeerId)> = connected
        .iter()
        .filter(|p| !keep.contains(p))
        .map(|p| (cairn_ledger::Hash::of_parts(&[&local.to_bytes(), &p.to_bytes()]), *p))
        .collect();
    candidates.sort();
    candidates.into_iter().take(over).map(|(_, p)| p).collect()
}

/// What discovery keeps between ticks.
pub struct Discovery {
    /// Peers dialed (or pruned) recently, and when.
    dialed: Backoff<PeerId>,
    /// When the last bootstrap walk started.
    walked: Option<Instant>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery { dialed: Backoff::new(DIAL_BACKOFF, DIAL_BACKOFF_ENTRIES_MAX), walked: None }
    }
}

impl Discovery {
    /// Whether `peer` may be dialed at `now`; if so, it is remembered as dialed.
    fn may_dial(&mut self, peer: PeerId, now: Instant) -> bool {
        self.dialed.pass(peer, now)
    }

    /// Whether a walk is due at `now` (the node is short of peers).
    fn walk_due(&mut self, now: Instant) -> bool {
        let due = self.walked.is_none_or(|at| now.duration_since(at) >= SHORT_BOOTSTRAP_INTERVAL);
        if due {
            self.walked = Some(now);
        }
        due
    }
}

impl Node {
    /// A peer told its listen addresses and protocols: a node of this chain goes into the
    /// routing table.
    pub(super) fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        let kad = self.net.kad_protocol().clone();
        let speaks_kad = info.protocols.contains(&kad);
        for addr in info.listen_addrs.into_iter().take(p2p::PEER_ADDRESSES_MAX) {
            if speaks_kad {
                self.net.swarm().behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            self.net.swarm().add_peer_address(peer, addr);
        }
    }

    /// At each maintenance tick: short of peers, dial some the routing table knows and walk
    /// the DHT again now and then.
    pub(super) fn maintain_discovery(&mut self) {
        let connected: std::collections::HashSet<PeerId> = self.net.peers().into_iter().collect();
        let target = self.config.peers_target;
        let high = target.saturating_mul(PEERS_HIGH_FACTOR);
        if connected.len() > high {
            self.prune_peers(&connected, high);
            return;
        }
        if connected.len() >= target {
            return;
        }
        let now = Instant::now();
        let mut known: Vec<PeerId> = Vec::new();
        for bucket in self.net.swarm().behaviour_mut().kad.kbuckets() {
            known.extend(bucket.iter().map(|e| *e.node.key.preimage()));
        }
        let mut dialed = 0;
        for peer in known {
            if dialed >= DIALS_PER_TICK.min(target - connected.len()) {
                break;
            }
            if connected.contains(&peer) || self.sync.is_distrusted(&peer) || !self.discovery.may_dial(peer, now) {
                continue;
            }
            tracing::debug!(%peer, "discovery: dialing a peer the DHT knows");
            if self.net.swarm().dial(peer).is_ok() {
                dialed += 1;
            }
        }
        if !connected.is_empty() && self.discovery.walk_due(now) {
            // With no peer at all there is no one to ask: the bootstrap addresses are redialed.
            let _ = self.net.swarm().behaviour_mut().kad.bootstrap();
        }
    }
}

impl Node {
    /// Closes connections above `high` to peers in none of this node's meshes, not validators
    /// and not the sync source ([`surplus`]).
    fn prune_peers(&mut self, connected: &std::collections::HashSet<PeerId>, high: usize) {
        let mut keep: std::collections::HashSet<PeerId> =
            self.net.swarm().behaviour().gossipsub.all_mesh_peers().copied().collect();
        keep.extend(self.chain.validators.validators().iter().filter_map(|v| p2p::peer_id_of(&v.address)));
        // Nor the peer this node syncs blocks from.
        keep.extend(self.sync.source());
        let local = *self.net.swarm().local_peer_id();
        let now = Instant::now();
        for peer in surplus(&local, connected, &keep, high) {
            tracing::debug!(%peer, connected = connected.len(), high, "discovery: pruning a connection above the high mark");
            // Not dialed back at once (a Kademlia walk may still connect it again).
            self.discovery.may_dial(peer, now);
            let _ = self.net.swarm().disconnect_peer_id(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_meshes_and_validators_and_brings_the_count_down_a_few_at_a_time() {
        use std::collections::HashSet;
        let local = PeerId::random();
        let connected: HashSet<PeerId> = (0..40).map(|_| PeerId::random()).collect();
        let keep: HashSet<PeerId> = connected.iter().take(10).copied().collect();
        let pruned = surplus(&local, &connected, &keep, 24);
        assert_eq!(pruned.len(), PRUNES_PER_TICK, "at most a few per tick");
        assert!(pruned.iter().all(|p| connected.contains(p) && !keep.contains(p)));
        assert_eq!(pruned, surplus(&local, &connected, &keep, 24), "deterministic");
        assert_ne!(pruned, surplus(&PeerId::random(), &connected, &keep, 24), "another node, another order");
        // Just over the mark: only the excess.
        assert_eq!(surplus(&local, &connected, &keep, 37).len(), 3);
        assert!(surplus(&local, &connected, &keep, 40).is_empty());
        // Everyone kept: nothing to prune.
        assert!(surplus(&local, &connected, &connected, 0).is_empty());
    }

    #[test]
    fn a_peer_is_dialed_again_only_after_the_backoff_and_the_list_stays_bounded() {
        let mut d = Discovery::default();
        let t0 = Instant::now();
        let peer = PeerId::random();
        assert!(d.may_dial(peer, t0));
        assert!(!d.may_dial(peer, t0 + DIAL_BACKOFF / 2), "within the backoff");
        assert!(d.may_dial(peer, t0 + DIAL_BACKOFF), "after it");
        for i in 0..DIAL_BACKOFF_ENTRIES_MAX * 2 {
            assert!(d.may_dial(PeerId::random(), t0 + DIAL_BACKOFF + Duration::from_millis(i as u64)));
            assert!(d.dialed.len() <= DIAL_BACKOFF_ENTRIES_MAX);
        }
        assert!(d.walk_due(t0));
        assert!(!d.walk_due(t0 + SHORT_BOOTSTRAP_INTERVAL / 2));
        assert!(d.walk_due(t0 + SHORT_BOOTSTRAP_INTERVAL));
    }
}
