//! The DHT's provider records in two shares, each bounded on its own: this node's own (the
//! blobs it holds and announces) and those peers send. Peers' records cost a stranger nothing
//! to send, so in one shared store a stranger who filled it with records under random keys
//! would keep this node's own blobs out of it (and out of the DHT) until the records expired;
//! here they only ever fill their own share.
//!
//! Kademlia keeps no value records for Cairn (`max_records` 0): `put` is refused and `get`
//! finds nothing, in both shares.

use std::borrow::Cow;

use libp2p::PeerId;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{K_VALUE, ProviderRecord, Record, RecordKey};

/// Blobs this node provides in the DHT at most (its own records, one per blob it holds): past
/// it a blob is not announced, and holders of it are found by asking connected peers.
pub const OWN_PROVIDER_KEYS_MAX: usize = 16_384;
/// Keys (blob ids) under which records peers send are kept at most, each with at most
/// Kademlia's K = 20 providers.
pub const PEER_PROVIDER_KEYS_MAX: usize = 4_096;
/// Addresses kept of a provider record, at most, each at most [`PROVIDER_ADDRESS_BYTES_MAX`]
/// bytes (longer ones, and those past the count, are dropped as the record is stored). A
/// record may list as many as fit in a Kademlia message (16 KiB) and is kept for 48 hours:
/// without this the peers' share could hold 4,096 keys × 20 providers × 16 KiB (1.3 GB); with
/// it, at most 512 bytes of addresses a record (42 MB for a full share). A holder's addresses
/// are only where to dial it for a blob: a real node listens on one to three.
pub const PROVIDER_ADDRESSES_MAX: usize = 4;
/// The longest address kept of a provider record, in bytes (a DNS name of 63 characters with
/// its protocol parts, or any IP address with its port and peer id, fits).
pub const PROVIDER_ADDRESS_BYTES_MAX: usize = 128;

/// This node's provider records and peers', apart.
pub struct ProviderStore {
    local: PeerId,
    own: MemoryStore,
    peers: MemoryStore,
}

impl ProviderStore {
    /// The store of node `local`.
    pub fn new(local: PeerId) -> ProviderStore {
        let config = |keys| MemoryStoreConfig {
            max_records: 0,
            max_provided_keys: keys,
            max_providers_per_key: K_VALUE.get(),
            ..MemoryStoreConfig::default()
        };
        ProviderStore {
            local,
            own: MemoryStore::with_config(local, config(OWN_PROVIDER_KEYS_MAX)),
            peers: MemoryStore::with_config(local, config(PEER_PROVIDER_KEYS_MAX)),
        }
    }

    fn share(&mut self, provider: &PeerId) -> &mut MemoryStore {
        if *provider == self.local { &mut self.own } else { &mut self.peers }
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.peers.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        self.peers.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.peers.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.peers.records()
    }

    fn add_provider(&mut self, mut record: ProviderRecord) -> Result<()> {
        record.addresses.retain(|a| a.len() <= PROVIDER_ADDRESS_BYTES_MAX);
        record.addresses.truncate(PROVIDER_ADDRESSES_MAX);
        self.share(&record.provider).add_provider(record)
    }

    /// This node first (it holds the blob for sure), then the peers that said they do, at most
    /// K in all.
    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut found = self.own.providers(key);
        found.extend(self.peers.providers(key));
        found.truncate(K_VALUE.get());
        found
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.own.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.share(p).remove_provider(k, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &RecordKey, provider: PeerId) -> ProviderRecord {
        ProviderRecord::new(key.clone(), provider, Vec::new())
    }

    #[test]
    fn peers_who_fill_their_share_leave_this_nodes_own_records_alone() {
        let me = PeerId::random();
        let mut store = ProviderStore::new(me);
        let stranger = PeerId::random();
        for i in 0..PEER_PROVIDER_KEYS_MAX as u32 {
            let junk = RecordKey::new(&cairn_ledger::Hash::of(&i.to_le_bytes()).0);
            store.add_provider(record(&junk, stranger)).expect("room in the peers' share");
        }
        let one_more = RecordKey::new(&cairn_ledger::Hash::of(b"one more").0);
        assert!(store.add_provider(record(&one_more, stranger)).is_err(), "the peers' share is full");
        // This node's own blob is still provided, and found first.
        let mine = RecordKey::new(&cairn_ledger::Hash::of(b"a module held here").0);
        store.add_provider(record(&mine, me)).expect("the own share has room");
        let other = PeerId::random();
        let junk = RecordKey::new(&cairn_ledger::Hash::of(&0u32.to_le_bytes()).0);
        store.add_provider(record(&junk, other)).expect("a key already kept takes more providers");
        assert_eq!(store.provided().count(), 1);
        assert_eq!(store.providers(&mine).iter().map(|r| r.provider).collect::<Vec<_>>(), vec![me]);
        assert_eq!(store.providers(&junk).len(), 2);
        // Removing goes to the right share.
        store.remove_provider(&mine, &me);
        assert_eq!(store.provided().count(), 0);
        store.remove_provider(&junk, &stranger);
        assert_eq!(store.providers(&junk).iter().map(|r| r.provider).collect::<Vec<_>>(), vec![other]);
        // No value records at all.
        assert!(store.put(Record::new(mine.clone(), vec![1])).is_err());
        assert!(store.get(&mine).is_none());
    }

    /// A record is kept with at most [`PROVIDER_ADDRESSES_MAX`] of the addresses its sender
    /// listed, however many it listed.
    #[test]
    fn a_record_keeps_a_bounded_number_of_addresses() {
        let mut store = ProviderStore::new(PeerId::random());
        let key = RecordKey::new(&cairn_ledger::Hash::of(b"a blob").0);
        let stranger = PeerId::random();
        let long: libp2p::Multiaddr =
            format!("/dns4/{}/tcp/1", "a".repeat(PROVIDER_ADDRESS_BYTES_MAX)).parse().expect("an address");
        let mut addresses = vec![long];
        addresses.extend((0..1_000u16).map(|port| format!("/ip4/10.0.0.1/tcp/{port}").parse().expect("an address")));
        store.add_provider(ProviderRecord::new(key.clone(), stranger, addresses.clone())).expect("room");
        let kept = store.providers(&key);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].addresses,
            addresses[1..=PROVIDER_ADDRESSES_MAX],
            "the long one and those past the count dropped"
        );
    }
}
