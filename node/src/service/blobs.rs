//! Content-addressed blobs (modules) through the DHT. A node that stores a module says so with
//! a Kademlia provider record under its id (the SHA-256 of its bytes); a node that needs a
//! module asks its connected peers and, at the same time, looks up the module's providers
//! and asks them directly — request-response dials a holder it is not connected to. Whatever
//! comes back is checked against the id, as from any peer.
//!
//! - **Announcing.** A module uploaded here or fetched is provided at once; at startup the
//!   node provides the modules it stores (at most [`BLOBS_PROVIDED_AT_START_MAX`]).
//!   Kademlia republishes the records and lets others' expire.
//! - **Accepting.** A provider record a peer sends is kept only under a 32-byte key and only
//!   for the peer itself (Kademlia checks that), in a store bounded by
//!   [`crate::p2p::PROVIDER_KEYS_MAX`] keys of at most 20 providers each.
//! - **Keeping.** The store keeps at most `store_blobs_bytes_max` bytes of modules: past it the
//!   oldest go, except those a job in the state uses and those stored within
//!   [`BLOB_EVICTION_MIN_AGE`].
//! - **Looking up.** At most [`BLOB_LOOKUPS_MAX`] lookups at once, one per module started per
//!   [`BLOB_LOOKUP_BACKOFF`]; each asks at most [`BLOB_HOLDERS_ASKED_MAX`] holders.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_ledger::Hash;
use libp2p::kad;
use libp2p::kad::store::RecordStore;

use super::Node;
use crate::backoff::Backoff;

/// DHT lookups of blobs in flight at once, at most.
pub const BLOB_LOOKUPS_MAX: usize = 16;
/// A blob is looked up again at most this often.
pub const BLOB_LOOKUP_BACKOFF: Duration = Duration::from_secs(1);
/// Holders asked for a blob per lookup, at most.
pub const BLOB_HOLDERS_ASKED_MAX: usize = 4;
/// Blobs whose last lookup time is remembered, at most (the oldest forgotten first).
pub const BLOB_LOOKUP_ENTRIES_MAX: usize = 1_024;
/// Stored blobs a node provides when it starts, at most.
pub const BLOBS_PROVIDED_AT_START_MAX: usize = 1_024;
/// The budget is enforced at most this often: over it, collecting the modules in use and
/// walking the oldest blobs is work for the event loop, and a budget spent on modules in use
/// stays spent until jobs end.
pub const BLOB_EVICTION_INTERVAL: Duration = Duration::from_secs(10);
/// A blob stored less than this long ago is not evicted (a module uploaded ahead of its jobs,
/// or one whose offers wait in the mempool).
pub const BLOB_EVICTION_MIN_AGE: Duration = Duration::from_secs(600);

/// The DHT key of a blob: its id's 32 bytes.
pub fn blob_key(id: &Hash) -> kad::RecordKey {
    kad::RecordKey::new(&id.0)
}

/// The blob a DHT key names, if it is a blob's key.
pub fn blob_of_key(key: &kad::RecordKey) -> Option<Hash> {
    <[u8; 32]>::try_from(key.as_ref()).ok().map(Hash)
}

/// The lookups in flight (by Kademlia query id `Q`) and when each blob was last looked up.
pub struct BlobLookups<Q = kad::QueryId> {
    /// Lookup → (blob, holders asked so far).
    in_flight: HashMap<Q, (Hash, usize)>,
    last: Backoff<Hash>,
}

impl<Q> Default for BlobLookups<Q> {
    fn default() -> Self {
        BlobLookups { in_flight: HashMap::new(), last: Backoff::new(BLOB_LOOKUP_BACKOFF, BLOB_LOOKUP_ENTRIES_MAX) }
    }
}

impl<Q: std::hash::Hash + Eq> BlobLookups<Q> {
    /// Whether a lookup of `id` may start at `now`: fewer than [`BLOB_LOOKUPS_MAX`] in flight,
    /// and none of `id` started within [`BLOB_LOOKUP_BACKOFF`] (an earlier one may still run:
    /// one that asked an unreachable peer waits for Kademlia's query timeout, and holders
    /// that provided the blob since are found by the next). If so it is remembered.
    pub fn may_start(&mut self, id: Hash, now: Instant) -> bool {
        self.in_flight.len() < BLOB_LOOKUPS_MAX && self.last.pass(id, now)
    }

    /// Lookup `query` of `id` started.
    pub fn started(&mut self, query: Q, id: Hash) {
        self.in_flight.insert(query, (id, 0));
    }

    /// Holders found by `query`: the blob, and how many of `found` to ask (the rest of the
    /// lookup's allowance). `None` if it is not a blob lookup of this node.
    pub fn found(&mut self, query: &Q, found: usize) -> Option<(Hash, usize)> {
        let (id, asked) = self.in_flight.get_mut(query)?;
        let ask = found.min(BLOB_HOLDERS_ASKED_MAX - *asked);
        *asked += ask;
        Some((*id, ask))
    }

    /// Lookup `query` ended.
    pub fn finished(&mut self, query: &Q) {
        self.in_flight.remove(query);
    }

    /// Lookups in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl Node {
    /// Says in the DHT that this node holds blob `id`.
    pub(super) fn provide_blob(&mut self, id: Hash) {
        if let Err(e) = self.net.swarm().behaviour_mut().kad.start_providing(blob_key(&id)) {
            tracing::debug!(%id, "cannot provide the module in the DHT: {e}");
        }
    }

    /// Provides the blobs stored here (at startup).
    pub(super) fn provide_stored_blobs(&mut self) -> anyhow::Result<()> {
        for id in self.chain.store.blob_ids(BLOBS_PROVIDED_AT_START_MAX)? {
            self.provide_blob(id);
        }
        Ok(())
    }

    /// Past `store_blobs_bytes_max`, deletes the oldest modules no job in the state uses (nor
    /// a provider here waits for), none stored within [`BLOB_EVICTION_MIN_AGE`]; at most once
    /// per [`BLOB_EVICTION_INTERVAL`].
    pub(super) fn evict_blobs(&mut self) -> anyhow::Result<()> {
        let budget = self.config.store_blobs_bytes_max;
        if self.chain.store.blob_bytes() <= budget || !self.blob_evictions.pass((), Instant::now()) {
            return Ok(());
        }
        let mut used: std::collections::HashSet<Hash> =
            self.chain.state().jobs().map(|(_, job)| job.module_id).collect();
        used.extend(self.provider.iter().flat_map(|p| p.modules_awaited()).copied());
        let deleted = self.chain.store.evict_blobs(budget, BLOB_EVICTION_MIN_AGE, &|id| used.contains(id))?;
        for id in &deleted {
            // No longer a holder: the DHT stops naming this node for it.
            self.net.swarm().behaviour_mut().kad.stop_providing(&blob_key(id));
        }
        if !deleted.is_empty() {
            tracing::info!(
                deleted = deleted.len(),
                left_bytes = self.chain.store.blob_bytes(),
                budget,
                "deleted the oldest modules no job uses, past store_blobs_bytes_max"
            );
        }
        Ok(())
    }

    /// Looks up who holds blob `id`, unless a lookup of it is in flight or recent.
    pub(super) fn lookup_blob(&mut self, id: Hash) {
        if self.blobs.may_start(id, Instant::now()) {
            tracing::debug!(%id, "looking up the holders of a module in the DHT");
            let query = self.net.swarm().behaviour_mut().kad.get_providers(blob_key(&id));
            self.blobs.started(query, id);
        }
    }

    /// What Kademlia reports: provider records peers send (kept if they name a blob), and the
    /// holders a lookup found (asked for the blob if it is still missing here).
    pub(super) fn on_kad(&mut self, ev: kad::Event) -> anyhow::Result<()> {
        match ev {
            kad::Event::InboundRequest { request: kad::InboundRequest::AddProvider { record: Some(record) } }
                if blob_of_key(&record.key).is_some() =>
            {
                // A full store keeps what it has: records are republished and expire.
                let _ = self.net.swarm().behaviour_mut().kad.store_mut().add_provider(record);
            }
            kad::Event::OutboundQueryProgressed { id: query, result, step, .. } => {
                if let kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })) =
                    result
                {
                    let me = *self.net.swarm().local_peer_id();
                    let holders: Vec<libp2p::PeerId> = providers.into_iter().filter(|p| *p != me).collect();
                    tracing::debug!(?query, holders = holders.len(), "the DHT named holders of a module");
                    if let Some((blob, ask)) = self.blobs.found(&query, holders.len())
                        && !self.chain.store.has_blob(&blob)?
                    {
                        for peer in holders.into_iter().take(ask) {
                            tracing::debug!(%peer, %blob, "asking a holder the DHT named for a module");
                            self.metrics.blob_holder_requests.inc();
                            self.request_blob_from(peer, blob);
                        }
                    }
                }
                if step.last {
                    tracing::debug!(?query, "a DHT lookup ended");
                    self.blobs.finished(&query);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_looked_up_once_at_a_time_not_too_often_and_few_holders_are_asked() {
        let mut l = BlobLookups::<u32>::default();
        let t0 = Instant::now();
        let id = Hash::of(b"module");
        assert!(l.may_start(id, t0));
        let q = 7;
        l.started(q, id);
        assert!(!l.may_start(id, t0 + BLOB_LOOKUP_BACKOFF / 2), "one lookup of a blob per backoff");
        assert_eq!(l.found(&q, 3), Some((id, 3)));
        assert_eq!(l.found(&q, 3), Some((id, BLOB_HOLDERS_ASKED_MAX - 3)), "at most the allowance in all");
        assert_eq!(l.found(&q, 3), Some((id, 0)));
        l.finished(&q);
        assert_eq!(l.found(&q, 1), None);
        assert!(l.may_start(id, t0 + BLOB_LOOKUP_BACKOFF), "after it");
        // At most BLOB_LOOKUPS_MAX in flight.
        for i in 0..BLOB_LOOKUPS_MAX as u32 {
            let other = Hash::of(&i.to_le_bytes());
            assert!(l.may_start(other, t0));
            l.started(100 + i, other);
        }
        assert!(!l.may_start(Hash::of(b"one more"), t0));
        assert_eq!(l.in_flight(), BLOB_LOOKUPS_MAX);
        assert_eq!(blob_of_key(&blob_key(&id)), Some(id));
        assert_eq!(blob_of_key(&kad::RecordKey::new(&[1u8; 31])), None);
    }
}
