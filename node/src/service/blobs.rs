//! Content-addressed blobs through the DHT: modules, and job data — inputs offers name by hash
//! and outputs results leave in a blob. A node that stores a blob says so with a Kademlia
//! provider record under its id (the SHA-256 of its bytes); a node that needs a blob asks its
//! connected peers and, at the same time, looks up the blob's providers and asks them directly
//! — request-response dials a holder it is not connected to. Whatever comes back is checked
//! against the id, as from any peer, and is at most [`BLOB_BYTES_MAX`] bytes.
//!
//! - **Announcing.** A blob uploaded here (`module_put`, `blob_put`), fetched, or written by a
//!   run here is provided at once; at startup the node provides the blobs it stores (at most
//!   [`BLOBS_PROVIDED_AT_START_MAX`]). Kademlia republishes the records and lets others' expire.
//! - **Availability of outputs.** A result whose output is in a blob is admitted to a node's
//!   mempool only once the node holds the blob (fetched from the provider or any holder): so
//!   the proposer of any block that includes it holds the output, and says so in the DHT.
//!   Results wait for their blob in [`ResultsAwaitingBlobs`].
//! - **Accepting.** A provider record a peer sends is kept only under a 32-byte key and only
//!   for the peer itself (Kademlia checks that), in the peers' share of the provider store
//!   ([`crate::provider_store`]: at most 4,096 keys of at most 20 providers each), apart from
//!   this node's own records, so that strangers' records never crowd out its own.
//! - **Keeping.** The store keeps at most `store_blobs_bytes_max` bytes of blobs: past it the
//!   oldest go, except those a job in the state uses (its module, its input, its delivered
//!   outputs), those something here waits for, and those stored within
//!   [`BLOB_EVICTION_MIN_AGE`].
//! - **Looking up.** At most [`BLOB_LOOKUPS_MAX`] lookups at once, one per module started per
//!   [`BLOB_LOOKUP_BACKOFF`]; each asks at most [`BLOB_HOLDERS_ASKED_MAX`] holders.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_ledger::{Hash, JobResult};
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

/// Whether a blob store holding `stored` bytes has room, within `budget`
/// (`store_blobs_bytes_max`), for `size` more.
pub fn has_room(stored: u64, size: u64, budget: u64) -> bool {
    stored.saturating_add(size) <= budget
}

/// Whether a blob store holding `stored` bytes has room, within `budget`, for one more blob
/// of the largest size ([`BLOB_BYTES_MAX`]).
pub fn room_for_a_blob(stored: u64, budget: u64) -> bool {
    has_room(stored, BLOB_BYTES_MAX as u64, budget)
}

/// The largest blob a node fetches or stores for others: a job data blob
/// ([`cairn_ledger::DATA_BLOB_BYTES_MAX`]) or a module (the sandbox's default
/// `module_size_bytes_max`), whichever is larger.
pub const BLOB_BYTES_MAX: usize = {
    let (data, module) = (cairn_ledger::DATA_BLOB_BYTES_MAX, cairn_vm::MODULE_SIZE_BYTES_MAX_DEFAULT);
    if data > module { data } else { module }
};
/// Results held while their output blob is fetched, at most (the oldest dropped first: its
/// provider re-broadcasts it).
pub const RESULTS_AWAITING_BLOBS_MAX: usize = 1_024;
/// How long a result waits for its output blob at most.
pub const RESULT_BLOB_WAIT: Duration = Duration::from_secs(60);

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

/// Results whose output is in a blob this node does not hold yet, by blob.
#[derive(Debug, Default)]
pub struct ResultsAwaitingBlobs {
    by_blob: HashMap<Hash, Vec<(JobResult, Instant)>>,
    len: usize,
}

impl ResultsAwaitingBlobs {
    /// Holds `r` until its output blob arrives (a result already held is held once); past
    /// [`RESULTS_AWAITING_BLOBS_MAX`] the oldest goes. Whether its blob was not awaited yet.
    pub fn hold(&mut self, r: JobResult, now: Instant) -> bool {
        let blob = r.claim.output_hash;
        let new_blob = !self.by_blob.contains_key(&blob);
        let held = self.by_blob.entry(blob).or_default();
        if held.iter().any(|(h, _)| h.claim == r.claim) {
            return false;
        }
        held.push((r, now));
        self.len += 1;
        if self.len > RESULTS_AWAITING_BLOBS_MAX
            && let Some(oldest) = self.by_blob.values().flatten().map(|(_, at)| *at).min()
        {
            self.retain(|at| at > oldest);
        }
        new_blob
    }

    /// The results whose output is `blob`, no longer held.
    pub fn take(&mut self, blob: &Hash) -> Vec<JobResult> {
        let taken: Vec<JobResult> = self.by_blob.remove(blob).unwrap_or_default().into_iter().map(|(r, _)| r).collect();
        self.len -= taken.len();
        taken
    }

    /// Drops what waited longer than [`RESULT_BLOB_WAIT`].
    pub fn expire(&mut self, now: Instant) {
        self.retain(|at| now.duration_since(at) <= RESULT_BLOB_WAIT);
    }

    /// The blobs results wait for.
    pub fn blobs(&self) -> impl Iterator<Item = &Hash> {
        self.by_blob.keys()
    }

    /// How many results are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.len
    }

    fn retain(&mut self, keep: impl Fn(Instant) -> bool) {
        for held in self.by_blob.values_mut() {
            held.retain(|(_, at)| keep(*at));
        }
        self.by_blob.retain(|_, held| !held.is_empty());
        self.len = self.by_blob.values().map(Vec::len).sum();
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

    /// Past `store_blobs_bytes_max`, deletes the oldest blobs no job in the state uses (its
    /// module, input or delivered outputs) and nothing here waits for, none stored within
    /// [`BLOB_EVICTION_MIN_AGE`]; at most once per [`BLOB_EVICTION_INTERVAL`].
    pub(super) fn evict_blobs(&mut self) -> anyhow::Result<()> {
        let budget = self.config.store_blobs_bytes_max;
        if self.chain.store.blob_bytes() <= budget || !self.blob_evictions.pass((), Instant::now()) {
            return Ok(());
        }
        let mut used: std::collections::HashSet<Hash> = std::collections::HashSet::new();
        for (_, job) in self.chain.state().jobs() {
            used.extend([job.module_id, job.input_hash]);
            used.extend(job.deliveries().map(|d| d.outcome.output_hash));
        }
        used.extend(self.provider.iter().flat_map(|p| p.blobs_awaited()).copied());
        used.extend(self.reexec.blobs_needed().copied());
        used.extend(self.blob_results.blobs().copied());
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
                "deleted the oldest blobs no job uses, past store_blobs_bytes_max"
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

    fn result(output: &[u8], provider: u8) -> JobResult {
        let key = cairn_ledger::Keypair::from_seed([provider; 32]);
        let claim = cairn_ledger::ResultClaim {
            version: cairn_ledger::FORMAT_VERSION,
            job_id: Hash::of(b"job"),
            module_id: Hash::of(b"m"),
            input_hash: Hash::of(b"i"),
            output_hash: Hash::of(output),
            fuel_used: 1,
            status: cairn_ledger::JobStatus::Ok,
            provider: key.public(),
        };
        JobResult::with_output_in_blob(claim, &key)
    }

    #[test]
    fn announced_modules_are_fetched_ahead_only_while_the_store_has_room_for_one_more() {
        let max = BLOB_BYTES_MAX as u64;
        let budget = 10 * max;
        assert!(room_for_a_blob(0, budget));
        assert!(room_for_a_blob(budget - max, budget), "the largest blob still fits");
        assert!(!room_for_a_blob(budget - max + 1, budget));
        assert!(!room_for_a_blob(budget, budget));
        assert!(!room_for_a_blob(u64::MAX, budget), "no overflow");
        assert!(!room_for_a_blob(0, max - 1), "a budget smaller than a blob has no room");
    }

    #[test]
    fn results_wait_for_their_output_blob_within_a_bound_and_a_time() {
        let mut w = ResultsAwaitingBlobs::default();
        let t0 = Instant::now();
        assert!(w.hold(result(b"a", 1), t0), "a new blob to fetch");
        assert!(!w.hold(result(b"a", 1), t0), "held once");
        assert!(!w.hold(result(b"a", 2), t0), "the blob is awaited already");
        assert_eq!(w.held(), 2);
        assert_eq!(w.take(&Hash::of(b"a")).len(), 2);
        assert_eq!(w.held(), 0);
        // Bounded: past the most, the oldest go.
        for i in 0..=RESULTS_AWAITING_BLOBS_MAX {
            w.hold(result(&(i as u64).to_le_bytes(), 1), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(w.held(), RESULTS_AWAITING_BLOBS_MAX);
        assert!(w.take(&Hash::of(&0u64.to_le_bytes())).is_empty(), "the oldest went");
        // Expired after the wait.
        w.expire(t0 + RESULT_BLOB_WAIT + Duration::from_secs(2));
        assert_eq!(w.held(), 0);
        assert_eq!(w.blobs().count(), 0);
    }

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
