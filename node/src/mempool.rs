//! Transactions waiting for a block: offers ordered by (client, nonce), then results.
//! Bounded; re-broadcast until included; pruned when they can no longer apply.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cairn_contracts::{State, TxError};
use cairn_ledger::{Block, Hash, JobResult, PublicKey, SignedOffer, Transaction};

/// Why a transaction was not admitted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The mempool holds its maximum.
    #[error("the mempool is full ({0} transactions); retry shortly")]
    Full(usize),
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    last_sent: Instant,
}

/// The pending transactions.
#[derive(Debug)]
pub struct Mempool {
    offers: BTreeMap<(PublicKey, u64), Entry<SignedOffer>>,
    offer_ids: HashMap<Hash, (PublicKey, u64)>,
    results: BTreeMap<Hash, Entry<JobResult>>,
    txs_max: usize,
}

impl Mempool {
    /// An empty mempool holding at most `txs_max` transactions.
    pub fn new(txs_max: usize) -> Mempool {
        Mempool { offers: BTreeMap::new(), offer_ids: HashMap::new(), results: BTreeMap::new(), txs_max }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.offers.len() + self.results.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an offer (already checked). `Ok(false)` if it, or another offer with the same
    /// client and nonce, is already here.
    pub fn insert_offer(&mut self, offer: SignedOffer) -> Result<bool, MempoolError> {
        let key = (offer.offer.client, offer.offer.nonce);
        if self.offers.contains_key(&key) {
            return Ok(false);
        }
        if self.len() >= self.txs_max {
            return Err(MempoolError::Full(self.txs_max));
        }
        self.offer_ids.insert(offer.job_id(), key);
        self.offers.insert(key, Entry { item: offer, last_sent: Instant::now() });
        Ok(true)
    }

    /// Adds a result (already checked). `Ok(false)` if one for the job is already here.
    pub fn insert_result(&mut self, result: JobResult) -> Result<bool, MempoolError> {
        if self.results.contains_key(&result.claim.job_id) {
            return Ok(false);
        }
        if self.len() >= self.txs_max {
            return Err(MempoolError::Full(self.txs_max));
        }
        self.results.insert(result.claim.job_id, Entry { item: result, last_sent: Instant::now() });
        Ok(true)
    }

    /// The pending offer of a job.
    pub fn offer(&self, job_id: &Hash) -> Option<&SignedOffer> {
        self.offer_ids.get(job_id).and_then(|k| self.offers.get(k)).map(|e| &e.item)
    }

    /// Block candidates: offers by client and nonce, then results (a result may follow its
    /// offer in the same block).
    pub fn candidates(&self) -> Vec<Transaction> {
        let offers = self.offers.values().map(|e| Transaction::Offer(e.item.clone()));
        let results = self.results.values().map(|e| Transaction::Result(e.item.clone()));
        offers.chain(results).collect()
    }

    /// The next nonce of `client` counting its consecutive pending offers after `state_nonce`.
    pub fn next_nonce(&self, client: PublicKey, state_nonce: u64) -> u64 {
        let mut n = state_nonce;
        while self.offers.contains_key(&(client, n)) {
            n += 1;
        }
        n
    }

    fn remove_tx(&mut self, tx: &Transaction) {
        match tx {
            Transaction::Offer(o) => {
                let key = (o.offer.client, o.offer.nonce);
                if self.offers.get(&key).is_some_and(|e| e.item == *o) {
                    self.offers.remove(&key);
                    self.offer_ids.remove(&o.job_id());
                }
            }
            Transaction::Result(r) => {
                self.results.remove(&r.claim.job_id);
            }
        }
    }

    /// Drops what a finalized block included.
    pub fn remove_included(&mut self, block: &Block) {
        for tx in &block.txs {
            self.remove_tx(tx);
        }
    }

    /// Drops transactions a block builder refused for good; keeps those that may apply later
    /// (a result whose offer is not in yet, an offer waiting for an earlier nonce).
    pub fn remove_rejected(&mut self, rejected: &[(Transaction, TxError)]) {
        for (tx, e) in rejected {
            let transient = match e {
                TxError::UnknownJob(_) | TxError::InsufficientBalance { .. } => true,
                TxError::Nonce { expected, got } => got > expected,
                _ => false,
            };
            if !transient {
                self.remove_tx(tx);
            }
        }
    }

    /// Drops what can no longer apply at `height`: offers with a used nonce or past their
    /// deadline, results for jobs that are closed on chain or expired.
    pub fn prune(&mut self, state: &State, height: u64) {
        let stale: Vec<Transaction> = self
            .offers
            .values()
            .filter(|e| {
                let o = &e.item.offer;
                o.nonce < state.account(&o.client).nonce || o.deadline_height < height
            })
            .map(|e| Transaction::Offer(e.item.clone()))
            .chain(
                self.results
                    .values()
                    .filter(|e| {
                        let id = e.item.claim.job_id;
                        match state.job(&id) {
                            Some(job) => job.phase != cairn_contracts::JobPhase::Open,
                            None => !self.offer_ids.contains_key(&id),
                        }
                    })
                    .map(|e| Transaction::Result(e.item.clone())),
            )
            .collect();
        for tx in &stale {
            self.remove_tx(tx);
        }
    }

    /// Offers and results not sent for `interval`, marked as sent now (at most `max` of each).
    pub fn due_for_rebroadcast(&mut self, interval: Duration, max: usize) -> (Vec<SignedOffer>, Vec<JobResult>) {
        let now = Instant::now();
        let mut offers = Vec::new();
        for e in self.offers.values_mut().filter(|e| now - e.last_sent >= interval).take(max) {
            e.last_sent = now;
            offers.push(e.item.clone());
        }
        let mut results = Vec::new();
        for e in self.results.values_mut().filter(|e| now - e.last_sent >= interval).take(max) {
            e.last_sent = now;
            results.push(e.item.clone());
        }
        (offers, results)
    }
}
