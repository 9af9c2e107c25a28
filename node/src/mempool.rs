//! Transactions waiting for a block: nonce-ordered ones (offers and account transactions,
//! which share each account's nonce) by (sender, nonce), then results. Bounded; re-broadcast
//! until included; pruned when they can no longer apply. Block candidates pay the most per
//! byte first, each sender's in nonce order.
//!
//! # The nonce rule
//!
//! One rule, followed by every layer (STATE.md, "Pending transactions"):
//!
//! - admission: a nonce within [`NONCE_WINDOW`] of the account's next one, and a balance that
//!   covers the transaction on top of everything the sender's other pending transactions
//!   spend ([`Mempool::pending_spend`]);
//! - a transaction is *includable* when every nonce from the account's next one up to its
//!   own is pending here: only includable transactions are block candidates, only they keep
//!   block production going, and a provider executes an offer only when it is includable (or
//!   on chain) — an offer behind a gap costs nobody anything until the gap fills;
//! - a pending transaction is replaced by another with the same sender and nonce whose fee is
//!   at least [`REPLACEMENT_FEE_BUMP_PERCENT`] higher (at least 1 more): that is how a client
//!   replaces or cancels an offer;
//! - whatever leaves without being included (replaced, its nonce used by another transaction,
//!   its deadline passed, refused by block building for good) is reported as dropped, with
//!   the reason, so every offer's subscriber gets a terminal event.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_contracts::{State, TxError, balance_needed};
use cairn_ledger::{Block, Hash, JobResult, PublicKey, SignedOffer, Transaction};

/// How much higher (in percent, rounded up, and at least 1) a replacement's fee must be than
/// the fee of the pending transaction it replaces.
pub const REPLACEMENT_FEE_BUMP_PERCENT: u64 = 10;

/// Why a transaction was not admitted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The mempool holds its maximum.
    #[error("the mempool is full ({0} transactions); retry shortly")]
    Full(usize),
    /// Results go through [`Mempool::insert_result`].
    #[error("not a nonce-ordered transaction")]
    NotNonced,
    /// Another transaction with this sender and nonce is pending, and this one's fee is not
    /// enough higher to replace it.
    #[error(
        "another transaction with this nonce is pending; to replace it, sign this one with a fee of at least {fee_min}"
    )]
    Underpriced {
        /// The least fee a replacement needs.
        fee_min: u64,
    },
}

/// What [`Mempool::insert_nonced`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// A new transaction.
    New,
    /// This very transaction was already pending.
    Duplicate,
    /// It replaced the pending transaction with the same sender and nonce (returned).
    Replaced(Box<Transaction>),
}

/// A pending transaction that left without being included, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The transaction.
    pub tx: Transaction,
    /// Why, for people (the `dropped` event's reason).
    pub reason: String,
}

/// The least fee that replaces a pending transaction paying `fee`.
pub fn replacement_fee_min(fee: u64) -> u64 {
    let bump = fee.saturating_mul(REPLACEMENT_FEE_BUMP_PERCENT).div_ceil(100).max(1);
    fee.saturating_add(bump)
}

/// The fee a nonce-ordered transaction pays.
fn fee_of(tx: &Transaction) -> u64 {
    match tx {
        Transaction::Offer(o) => o.offer.fee,
        Transaction::Account(t) => t.tx.fee,
        Transaction::Result(_) | Transaction::Resolve { .. } => 0,
    }
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    /// Its encoded size, counted against the room's bytes.
    size_bytes: usize,
    last_sent: Instant,
    /// How many times it was re-broadcast.
    sends: u32,
    added: Instant,
}

impl<T: borsh::BorshSerialize> Entry<T> {
    fn new(item: T) -> Entry<T> {
        let now = Instant::now();
        let size_bytes = borsh::object_length(&item).expect("borsh sizing cannot fail");
        Entry { item, size_bytes, last_sent: now, sends: 0, added: now }
    }

    /// Whether it is due for a re-broadcast: `interval` after it was last sent, doubling with
    /// every re-broadcast (peers that missed it once usually have it by then), and never
    /// after [`REBROADCASTS_MAX`] (it stays a block candidate all the same).
    fn due(&self, now: Instant, interval: Duration) -> bool {
        self.sends < REBROADCASTS_MAX && now.duration_since(self.last_sent) >= interval * (1 << self.sends.min(4))
    }
}

/// How many times a pending transaction or result is re-broadcast at most.
pub const REBROADCASTS_MAX: u32 = 6;

/// The rooms of the mempool: offers and account transactions in one, results in another, so
/// that offers never take the place of results (results complete work and free capacity;
/// offers add work). Each bounded in count and in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// The most offers and account transactions.
    pub txs_max: usize,
    /// Their most bytes (encoded).
    pub tx_bytes_max: usize,
    /// The most results.
    pub results_max: usize,
    /// Their most bytes (encoded).
    pub result_bytes_max: usize,
}

impl MempoolLimits {
    /// These counts, and bytes enough for them at any size a block takes.
    pub fn counts(txs_max: usize, results_max: usize) -> MempoolLimits {
        MempoolLimits { txs_max, tx_bytes_max: usize::MAX, results_max, result_bytes_max: usize::MAX }
    }
}

/// One room: its count and bytes.
#[derive(Debug, Default)]
struct Room {
    len: usize,
    bytes: usize,
}

impl Room {
    fn fits(&self, size_bytes: usize, len_max: usize, bytes_max: usize) -> bool {
        self.len < len_max && self.bytes.saturating_add(size_bytes) <= bytes_max
    }

    /// Whether an entry of `size_bytes` fits in place of one of `old_bytes`.
    fn fits_instead(&self, old_bytes: usize, size_bytes: usize, bytes_max: usize) -> bool {
        (self.bytes - old_bytes).saturating_add(size_bytes) <= bytes_max
    }

    fn add(&mut self, size_bytes: usize) {
        self.len += 1;
        self.bytes += size_bytes;
    }

    fn remove(&mut self, size_bytes: usize) {
        self.len -= 1;
        self.bytes -= size_bytes;
    }
}

/// A transaction's fee per byte of its encoding, compared exactly (cross-multiplied).
#[derive(Debug, Clone, Copy)]
struct FeeRate {
    fee: u64,
    size_bytes: u64,
}

impl FeeRate {
    fn of(e: &Entry<Transaction>) -> FeeRate {
        FeeRate { fee: fee_of(&e.item), size_bytes: (e.size_bytes as u64).max(1) }
    }
}

impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.fee) * u128::from(other.size_bytes))
            .cmp(&(u128::from(other.fee) * u128::from(self.size_bytes)))
    }
}

impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FeeRate {}

/// The sender and nonce of an offer or account transaction.
pub fn nonce_key(tx: &Transaction) -> Option<(PublicKey, u64)> {
    match tx {
        Transaction::Offer(o) => Some((o.offer.client, o.offer.nonce)),
        Transaction::Account(t) => Some((t.tx.sender, t.tx.nonce)),
        Transaction::Result(_) | Transaction::Resolve { .. } => None,
    }
}

/// The pending transactions.
#[derive(Debug)]
pub struct Mempool {
    nonced: BTreeMap<(PublicKey, u64), Entry<Transaction>>,
    offer_ids: HashMap<Hash, (PublicKey, u64)>,
    /// Results by (job, provider): a job with redundancy k takes one from each of k providers.
    results: BTreeMap<(Hash, PublicKey), Entry<JobResult>>,
    limits: MempoolLimits,
    tx_room: Room,
    result_room: Room,
}

impl Mempool {
    /// An empty mempool within `limits`.
    pub fn new(limits: MempoolLimits) -> Mempool {
        Mempool {
            nonced: BTreeMap::new(),
            offer_ids: HashMap::new(),
            results: BTreeMap::new(),
            limits,
            tx_room: Room::default(),
            result_room: Room::default(),
        }
    }

    /// Whether the room of offers and account transactions is full: a new one is refused at
    /// once, before anything about it is checked (the node is past what it can finalize
    /// soon).
    pub fn txs_full(&self) -> bool {
        !self.tx_room.fits(0, self.limits.txs_max, self.limits.tx_bytes_max)
    }

    /// Offers and account transactions pending.
    pub fn txs_len(&self) -> usize {
        self.tx_room.len
    }

    /// Results pending.
    pub fn results_len(&self) -> usize {
        self.results.len()
    }

    /// Whether a transaction of `sender` with `nonce` is pending.
    pub fn has_nonce(&self, sender: PublicKey, nonce: u64) -> bool {
        self.nonced.contains_key(&(sender, nonce))
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.nonced.len() + self.results.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an offer or account transaction (already checked against the state with
    /// [`Self::pending_spend`]), or replaces the pending one with the same sender and nonce if
    /// its fee is enough higher ([`replacement_fee_min`]).
    pub fn insert_nonced(&mut self, tx: Transaction) -> Result<Admitted, MempoolError> {
        let key = nonce_key(&tx).ok_or(MempoolError::NotNonced)?;
        if let Some(pending) = self.nonced.get(&key) {
            if pending.item == tx {
                return Ok(Admitted::Duplicate);
            }
            let fee_min = replacement_fee_min(fee_of(&pending.item));
            if fee_of(&tx) < fee_min {
                return Err(MempoolError::Underpriced { fee_min });
            }
            // A larger replacement needs the room for what it adds.
            let entry = Entry::new(tx);
            if !self.tx_room.fits_instead(pending.size_bytes, entry.size_bytes, self.limits.tx_bytes_max) {
                return Err(MempoolError::Full(self.limits.txs_max));
            }
            let old = self.nonced.remove(&key).expect("just found");
            self.tx_room.remove(old.size_bytes);
            if let Transaction::Offer(o) = &old.item {
                self.offer_ids.remove(&o.job_id());
            }
            self.put_nonced(key, entry);
            return Ok(Admitted::Replaced(Box::new(old.item)));
        }
        let entry = Entry::new(tx);
        if !self.tx_room.fits(entry.size_bytes, self.limits.txs_max, self.limits.tx_bytes_max) {
            return Err(MempoolError::Full(self.limits.txs_max));
        }
        self.put_nonced(key, entry);
        Ok(Admitted::New)
    }

    fn put_nonced(&mut self, key: (PublicKey, u64), entry: Entry<Transaction>) {
        if let Transaction::Offer(o) = &entry.item {
            self.offer_ids.insert(o.job_id(), key);
        }
        self.tx_room.add(entry.size_bytes);
        self.nonced.insert(key, entry);
    }

    /// What `sender`'s pending transactions spend together ([`balance_needed`]), leaving out
    /// the one with nonce `except` (the one a replacement would take the place of). At most
    /// [`cairn_contracts::NONCE_WINDOW`] transactions: the window bounds the sum's cost.
    pub fn pending_spend(&self, sender: PublicKey, except: u64) -> u64 {
        self.of_sender(sender)
            .filter(|((_, nonce), _)| *nonce != except)
            .map(|(_, e)| balance_needed(&e.item).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add)
    }

    fn of_sender(&self, sender: PublicKey) -> impl Iterator<Item = (&(PublicKey, u64), &Entry<Transaction>)> {
        self.nonced.range((sender, 0)..=(sender, u64::MAX))
    }

    /// Whether a pending transaction of `sender` with `nonce` can be included next: every
    /// nonce from `state_nonce` (the account's next) up to it is pending here.
    pub fn is_includable(&self, sender: PublicKey, nonce: u64, state_nonce: u64) -> bool {
        nonce >= state_nonce && nonce < self.next_nonce(sender, state_nonce)
    }

    /// `sender`'s pending offers that can be included next, in nonce order.
    pub fn includable_offers(&self, sender: PublicKey, state_nonce: u64) -> Vec<SignedOffer> {
        let end = self.next_nonce(sender, state_nonce);
        self.nonced
            .range((sender, state_nonce)..(sender, end))
            .filter_map(|(_, e)| match &e.item {
                Transaction::Offer(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether anything here can go into the next block: a result, or a transaction at its
    /// sender's next nonce. Transactions behind a nonce gap do not count.
    pub fn has_includable(&self, state: &State) -> bool {
        !self.results.is_empty() || self.nonced.keys().any(|(sender, nonce)| *nonce == state.account(sender).nonce)
    }

    /// Adds a result (already checked). `Ok(false)` if the provider's result for the job is
    /// already here.
    pub fn insert_result(&mut self, result: JobResult) -> Result<bool, MempoolError> {
        let key = (result.claim.job_id, result.claim.provider);
        if self.results.contains_key(&key) {
            return Ok(false);
        }
        let entry = Entry::new(result);
        if !self.result_room.fits(entry.size_bytes, self.limits.results_max, self.limits.result_bytes_max) {
            return Err(MempoolError::Full(self.limits.results_max));
        }
        self.result_room.add(entry.size_bytes);
        self.results.insert(key, entry);
        Ok(true)
    }

    /// The pending results of a job (one per provider).
    pub fn results_of(&self, job_id: &Hash) -> impl Iterator<Item = &JobResult> {
        let low = (*job_id, PublicKey([0; 32]));
        let high = (*job_id, PublicKey([0xff; 32]));
        self.results.range(low..=high).map(|(_, e)| &e.item)
    }

    /// The pending offer of a job.
    pub fn offer(&self, job_id: &Hash) -> Option<&SignedOffer> {
        match self.offer_ids.get(job_id).and_then(|k| self.nonced.get(k)).map(|e| &e.item) {
            Some(Transaction::Offer(o)) => Some(o),
            _ => None,
        }
    }

    /// Block candidates, in order: results for jobs open on chain (they complete work and free
    /// providers' capacity, so under load they go first), then includable nonce-ordered
    /// transactions (each sender's consecutive nonces from its next one), then the results of
    /// offers still pending (a result may follow its offer in the same block). Each sender's
    /// transactions stay in nonce order; across senders, the next transaction paying the
    /// highest fee per byte goes first, then the one that has waited longest (ties by sender),
    /// so a full block keeps those that pay most for their room and no sender waits behind
    /// others paying the same for ever.
    pub fn candidates(&self, state: &State) -> Vec<Transaction> {
        self.candidates_up_to(state, usize::MAX)
    }

    /// The first `max` of [`Mempool::candidates`], copying no more than those.
    pub fn candidates_up_to(&self, state: &State, max: usize) -> Vec<Transaction> {
        let mut queues: BTreeMap<PublicKey, VecDeque<&Entry<Transaction>>> = BTreeMap::new();
        let mut expected: Option<(PublicKey, u64)> = None;
        for ((sender, nonce), e) in &self.nonced {
            let next = match expected {
                Some((s, n)) if s == *sender => n,
                _ => state.account(sender).nonce,
            };
            // Behind a gap (or already used, until pruned): not a candidate.
            if *nonce != next {
                expected = Some((*sender, u64::MAX));
                continue;
            }
            expected = Some((*sender, next.saturating_add(1)));
            queues.entry(*sender).or_default().push_back(e);
        }
        // The best next transaction of each sender: the highest fee rate, then the oldest, then
        // the smallest sender.
        type Head = (FeeRate, std::cmp::Reverse<Instant>, std::cmp::Reverse<PublicKey>);
        let head = |sender: PublicKey, e: &Entry<Transaction>| -> Head {
            (FeeRate::of(e), std::cmp::Reverse(e.added), std::cmp::Reverse(sender))
        };
        let mut heads: BinaryHeap<Head> =
            queues.iter().filter_map(|(sender, q)| q.front().map(|e| head(*sender, e))).collect();
        let mut out = Vec::with_capacity(self.len().min(max));
        let (on_chain, pending): (Vec<&Entry<JobResult>>, Vec<&Entry<JobResult>>) =
            self.results.values().partition(|e| state.job(&e.item.claim.job_id).is_some());
        out.extend(on_chain.into_iter().take(max).map(|e| Transaction::Result(e.item.clone())));
        while out.len() < max
            && let Some((_, _, std::cmp::Reverse(sender))) = heads.pop()
        {
            let queue = queues.get_mut(&sender).expect("every head has a queue");
            let e = queue.pop_front().expect("a head is a queued transaction");
            out.push(e.item.clone());
            if let Some(next) = queue.front() {
                heads.push(head(sender, next));
            }
        }
        let room = max - out.len();
        out.extend(pending.into_iter().take(room).map(|e| Transaction::Result(e.item.clone())));
        out
    }

    /// The next nonce of `sender` counting its consecutive pending transactions after
    /// `state_nonce`.
    pub fn next_nonce(&self, sender: PublicKey, state_nonce: u64) -> u64 {
        let mut n = state_nonce;
        while self.nonced.contains_key(&(sender, n)) {
            n += 1;
        }
        n
    }

    /// Removes `tx` if it is pending; whether it was.
    fn remove_tx(&mut self, tx: &Transaction) -> bool {
        match nonce_key(tx) {
            Some(key) => {
                if !self.nonced.get(&key).is_some_and(|e| e.item == *tx) {
                    return false;
                }
                let entry = self.nonced.remove(&key).expect("just found");
                self.tx_room.remove(entry.size_bytes);
                if let Transaction::Offer(o) = tx {
                    self.offer_ids.remove(&o.job_id());
                }
                true
            }
            None => match tx {
                Transaction::Result(r) => match self.results.remove(&(r.claim.job_id, r.claim.provider)) {
                    Some(entry) => {
                        self.result_room.remove(entry.size_bytes);
                        true
                    }
                    None => false,
                },
                _ => false,
            },
        }
    }

    /// Drops what a finalized block included.
    pub fn remove_included(&mut self, block: &Block) {
        for tx in &block.txs {
            self.remove_tx(tx);
        }
    }

    /// Drops transactions a block builder refused for good; keeps those that may apply later
    /// (a result whose offer is not in yet, a transaction waiting for an earlier nonce, a
    /// re-execution not ready yet). Returns the offers and account transactions dropped.
    pub fn remove_rejected(&mut self, rejected: &[(Transaction, TxError)]) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        for (tx, e) in rejected {
            let transient = match e {
                // A re-execution this node could not run yet (a result whose offer is in the
                // same block, a module still being fetched) may apply in a later block.
                TxError::UnknownJob(_)
                | TxError::InsufficientBalance { .. }
                | TxError::ReexecutionUnavailable(_)
                | TxError::ReexecutionPending(_)
                | TxError::TooManyReexecutions => true,
                TxError::Nonce { expected, got } => got > expected,
                _ => false,
            };
            if !transient && self.remove_tx(tx) && nonce_key(tx).is_some() {
                dropped.push(Dropped { tx: tx.clone(), reason: format!("refused when building a block: {e}") });
            }
        }
        dropped
    }

    /// Whether a result for `job_id` may still apply: its job takes results in the next block
    /// on chain ([`cairn_contracts::Job::takes_results_in`]), or its offer is pending here.
    pub fn awaits_result(&self, state: &State, job_id: &Hash) -> bool {
        match state.job(job_id) {
            Some(job) => job.takes_results_in(state.height() + 1),
            None => self.offer_ids.contains_key(job_id),
        }
    }

    /// Drops what can no longer apply at `height`: transactions with a used nonce, offers past
    /// their deadline, transactions that have waited longer than `gap_timeout` behind a nonce
    /// gap (an idle chain reaches no deadline), results for jobs that are closed on chain or
    /// unknown everywhere. Returns the offers and account transactions dropped, with why.
    pub fn prune(&mut self, state: &State, height: u64, gap_timeout: Duration) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        let now = Instant::now();
        for ((sender, nonce), e) in &self.nonced {
            let state_nonce = state.account(sender).nonce;
            let reason = match &e.item {
                _ if *nonce < state_nonce => {
                    "another transaction of the account with the same nonce was included".to_owned()
                }
                Transaction::Offer(o) if o.offer.deadline_height < height => {
                    format!("its deadline (height {}) passed before it was included", o.offer.deadline_height)
                }
                _ if now.duration_since(e.added) > gap_timeout && !self.is_includable(*sender, *nonce, state_nonce) => {
                    format!(
                        "it waited over {} s behind a nonce gap: nonce {} of the account never arrived",
                        gap_timeout.as_secs(),
                        self.next_nonce(*sender, state_nonce)
                    )
                }
                _ => continue,
            };
            dropped.push(Dropped { tx: e.item.clone(), reason });
        }
        let results: Vec<Transaction> = self
            .results
            .values()
            .filter(|e| !self.awaits_result(state, &e.item.claim.job_id))
            .map(|e| Transaction::Result(e.item.clone()))
            .collect();
        for tx in dropped.iter().map(|d| &d.tx).chain(&results) {
            self.remove_tx(tx);
        }
        dropped
    }

    /// Transactions and results due for a re-broadcast ([`Entry::due`]: `interval` after they
    /// were last sent, doubling each time, at most [`REBROADCASTS_MAX`] times), marked as sent
    /// now (at most `max` of each).
    pub fn due_for_rebroadcast(&mut self, interval: Duration, max: usize) -> (Vec<Transaction>, Vec<JobResult>) {
        let now = Instant::now();
        let mut txs = Vec::new();
        for e in self.nonced.values_mut().filter(|e| e.due(now, interval)).take(max) {
            e.last_sent = now;
            e.sends += 1;
            txs.push(e.item.clone());
        }
        let mut results = Vec::new();
        for e in self.results.values_mut().filter(|e| e.due(now, interval)).take(max) {
            e.last_sent = now;
            e.sends += 1;
            results.push(e.item.clone());
        }
        (txs, results)
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Action, BlockHeader, FORMAT_VERSION, JobStatus, Keypair, ResultClaim, Tx};

    use super::*;

    fn result(job_id: Hash, provider: &Keypair, output: &[u8]) -> JobResult {
        let claim = ResultClaim {
            version: FORMAT_VERSION,
            job_id,
            module_id: Hash::of(b"module"),
            input_hash: Hash::of(b"input"),
            output_hash: Hash::of(output),
            fuel_used: 7,
            status: JobStatus::Ok,
            provider: provider.public(),
        };
        JobResult::new(claim, output.to_vec(), provider)
    }

    fn block_of(txs: Vec<Transaction>) -> Block {
        let header = BlockHeader {
            version: FORMAT_VERSION,
            chain_id: Hash::ZERO,
            height: 1,
            parent_hash: Hash::ZERO,
            time_ms: 0,
            proposer: Keypair::from_seed([9; 32]).public(),
            tx_root: Hash::ZERO,
            receipt_root: Hash::ZERO,
            state_root: Hash::ZERO,
            last_commit_hash: Hash::ZERO,
            tx_count: txs.len() as u32,
            receipt_count: 0,
        };
        Block { header, txs, last_commit: None }
    }

    /// A chain state with no accounts: every account's next nonce is 0.
    fn empty_state() -> State {
        let key = Keypair::from_seed([7; 32]);
        let genesis = cairn_ledger::Genesis {
            version: FORMAT_VERSION,
            chain_name: "mempool".into(),
            genesis_time_ms: 0,
            validators: vec![cairn_ledger::Validator { address: key.public(), power: 1 }],
            accounts: vec![],
            providers: vec![],
            params: cairn_ledger::ChainParams::default(),
        };
        State::from_genesis(&genesis).expect("state")
    }

    #[test]
    fn at_the_same_fee_rate_the_transaction_that_waited_longest_goes_first() {
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        // Keys ordered a < b; b's transaction arrives first.
        let (mut a, mut b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        if a.public() > b.public() {
            std::mem::swap(&mut a, &mut b);
        }
        m.insert_nonced(transfer(&b, 0, 5)).expect("room");
        std::thread::sleep(Duration::from_millis(2));
        m.insert_nonced(transfer(&a, 0, 5)).expect("room");
        assert_eq!(m.candidates(&empty_state()), vec![transfer(&b, 0, 5), transfer(&a, 0, 5)]);
    }

    #[test]
    fn only_transactions_without_a_nonce_gap_are_candidates_or_count_as_work() {
        let state = empty_state();
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        // a sends nonces 1 and 2 first: 0 is missing, so neither can be included.
        m.insert_nonced(transfer(&a, 1, 1)).expect("room");
        m.insert_nonced(transfer(&a, 2, 1)).expect("room");
        assert!(m.candidates(&state).is_empty());
        assert!(!m.has_includable(&state), "a gap does not keep block production going");
        assert!(!m.is_includable(a.public(), 1, 0));
        // Another sender's transaction is not held up by a's gap.
        m.insert_nonced(transfer(&b, 0, 1)).expect("room");
        assert_eq!(m.candidates(&state), vec![transfer(&b, 0, 1)]);
        // Nonce 0 fills the gap: all three of a's become includable, in order.
        m.insert_nonced(transfer(&a, 0, 1)).expect("room");
        assert!(m.is_includable(a.public(), 2, 0));
        let a_txs: Vec<Transaction> =
            m.candidates(&state).into_iter().filter(|tx| nonce_key(tx).is_some_and(|(s, _)| s == a.public())).collect();
        assert_eq!(a_txs, vec![transfer(&a, 0, 1), transfer(&a, 1, 1), transfer(&a, 2, 1)]);
        assert_eq!(m.next_nonce(a.public(), 0), 3);
    }

    #[test]
    fn a_pending_transaction_is_replaced_only_by_a_high_enough_fee_and_the_replaced_one_is_returned() {
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        let a = Keypair::from_seed([1; 32]);
        let first = transfer(&a, 0, 100);
        assert_eq!(m.insert_nonced(first.clone()), Ok(Admitted::New));
        assert_eq!(m.insert_nonced(first.clone()), Ok(Admitted::Duplicate));
        assert_eq!(replacement_fee_min(100), 110);
        assert_eq!(replacement_fee_min(0), 1);
        assert_eq!(replacement_fee_min(1), 2);
        assert_eq!(m.insert_nonced(transfer(&a, 0, 109)), Err(MempoolError::Underpriced { fee_min: 110 }));
        let second = transfer(&a, 0, 110);
        assert_eq!(m.insert_nonced(second.clone()), Ok(Admitted::Replaced(Box::new(first))));
        assert_eq!(m.len(), 1);
        assert_eq!(m.candidates(&empty_state()), vec![second]);
        // What the sender's pending transactions spend: fee + amount, the replaced one excluded.
        m.insert_nonced(transfer(&a, 1, 5)).expect("room");
        assert_eq!(m.pending_spend(a.public(), u64::MAX), (110 + 1) + (5 + 1));
        assert_eq!(m.pending_spend(a.public(), 0), 5 + 1);
    }

    #[test]
    fn a_larger_replacement_needs_the_room_for_what_it_adds() {
        let key = Keypair::from_seed([1; 32]);
        let offer = |fee: u64, input: usize| {
            let mut o = crate::test_genesis::offer(Hash::ZERO, &key);
            (o.fee, o.input) = (fee, vec![7; input]);
            Transaction::Offer(o.sign(&key))
        };
        let small = offer(10, 10);
        let room = Entry::new(small.clone()).size_bytes + 500;
        let mut m = Mempool::new(MempoolLimits { tx_bytes_max: room, ..MempoolLimits::counts(10, 10) });
        assert_eq!(m.insert_nonced(small), Ok(Admitted::New));
        // A higher fee does not buy the bytes the mempool does not have.
        assert_eq!(m.insert_nonced(offer(20, 1_000)), Err(MempoolError::Full(10)));
        let larger = offer(20, 400);
        assert!(matches!(m.insert_nonced(larger.clone()), Ok(Admitted::Replaced(_))));
        assert_eq!(m.tx_room.bytes, Entry::new(larger).size_bytes);
    }

    #[test]
    fn pruning_reports_why_each_offer_or_transaction_was_dropped() {
        let state = empty_state();
        let key = Keypair::from_seed([1; 32]);
        let offer = |nonce: u64, deadline_height: u64| {
            cairn_ledger::JobOffer {
                version: FORMAT_VERSION,
                chain_id: Hash::ZERO,
                client: key.public(),
                nonce,
                fee: 1,
                module_id: Hash::of(b"module"),
                input: b"in".to_vec(),
                fuel_limit: 1_000,
                max_price: 1,
                redundancy: 1,
                assignment_height: 0,
                deadline_height,
                placement: cairn_ledger::Placement::Anywhere,
                input_blob: None,
            }
            .sign(&key)
        };
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        m.insert_nonced(Transaction::Offer(offer(0, 5))).expect("room");
        m.insert_nonced(Transaction::Offer(offer(1, 50))).expect("room");
        let gap_timeout = Duration::from_secs(3600);
        assert!(m.prune(&state, 5, gap_timeout).is_empty(), "nothing stale at height 5");
        let dropped = m.prune(&state, 6, gap_timeout);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].tx, Transaction::Offer(offer(0, 5)));
        assert!(dropped[0].reason.contains("deadline"), "{}", dropped[0].reason);
        assert_eq!(m.len(), 1);
        // Nonce 1 now waits behind a gap (0 is gone): past the timeout it is dropped too.
        let dropped = m.prune(&state, 6, Duration::ZERO);
        assert_eq!(dropped.len(), 1);
        assert!(dropped[0].reason.contains("nonce gap: nonce 0"), "{}", dropped[0].reason);
        assert!(m.is_empty());
    }

    fn transfer(key: &Keypair, nonce: u64, fee: u64) -> Transaction {
        let action = Action::Transfer { to: Keypair::from_seed([8; 32]).public(), amount: 1 };
        let tx = Tx { version: FORMAT_VERSION, chain_id: Hash::ZERO, sender: key.public(), nonce, fee, action };
        Transaction::Account(tx.sign(key))
    }

    #[test]
    fn candidates_pay_the_most_per_byte_first_and_each_sender_keeps_its_nonce_order() {
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        let (a, b, c) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        // a: a cheap transaction, then a rich one that must wait for it; b: middling; c: rich.
        let txs = [transfer(&a, 0, 1), transfer(&a, 1, 100), transfer(&b, 0, 5), transfer(&c, 0, 50)];
        for tx in &txs {
            assert_eq!(m.insert_nonced(tx.clone()), Ok(Admitted::New));
        }
        let result = result(Hash::of(b"job"), &a, b"out");
        m.insert_result(result.clone()).expect("room");
        let order = m.candidates(&empty_state());
        let expected =
            vec![txs[3].clone(), txs[2].clone(), txs[0].clone(), txs[1].clone(), Transaction::Result(result)];
        assert_eq!(order, expected);
        // A block's worth of them is the same order cut short (nothing else copied).
        for max in 0..=expected.len() + 1 {
            assert_eq!(m.candidates_up_to(&empty_state(), max), expected[..max.min(expected.len())], "max {max}");
        }
        // A transaction pays per byte: the same fee on a larger transaction ranks lower.
        let small = FeeRate { fee: 10, size_bytes: 100 };
        assert!(small > FeeRate { fee: 10, size_bytes: 1_000 });
        assert_eq!(small, FeeRate { fee: 100, size_bytes: 1_000 });
    }

    #[test]
    fn two_results_of_one_redundant_job_are_both_kept_by_job_and_provider() {
        let mut m = Mempool::new(MempoolLimits::counts(3, 3));
        let job = Hash::of(b"a job with redundancy 2");
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let (ra, rb) = (result(job, &a, b"same"), result(job, &b, b"same"));
        assert_eq!(m.insert_result(ra.clone()), Ok(true));
        assert_eq!(m.insert_result(rb.clone()), Ok(true), "another provider's result for the same job is kept");
        assert_eq!(m.insert_result(result(job, &a, b"other")), Ok(false), "one result per provider and job");
        assert_eq!(m.len(), 2);
        let candidates = m.candidates(&empty_state());
        assert_eq!(candidates.len(), 2);
        assert!(candidates.contains(&Transaction::Result(ra.clone())));
        assert!(candidates.contains(&Transaction::Result(rb.clone())));
        // A block that includes one of them removes that one only.
        m.remove_included(&block_of(vec![Transaction::Result(ra)]));
        assert_eq!(m.candidates(&empty_state()), vec![Transaction::Result(rb)]);
        // Bounded: a full mempool refuses more.
        let c = Keypair::from_seed([3; 32]);
        assert_eq!(m.insert_result(result(job, &c, b"same")), Ok(true));
        assert_eq!(m.insert_result(result(Hash::of(b"another job"), &a, b"x")), Ok(true));
        assert_eq!(m.insert_result(result(Hash::of(b"a third job"), &a, b"x")), Err(MempoolError::Full(3)));
    }

    #[test]
    fn a_result_is_awaited_only_for_a_job_offered_here_or_open_on_chain() {
        let key = Keypair::from_seed([1; 32]);
        let genesis = cairn_ledger::Genesis {
            version: FORMAT_VERSION,
            chain_name: "mempool".into(),
            genesis_time_ms: 0,
            validators: vec![cairn_ledger::Validator { address: key.public(), power: 1 }],
            accounts: vec![],
            providers: vec![],
            params: cairn_ledger::ChainParams::default(),
        };
        let state = State::from_genesis(&genesis).expect("state");
        let offer = cairn_ledger::JobOffer {
            version: FORMAT_VERSION,
            chain_id: genesis.chain_id(),
            client: key.public(),
            nonce: 0,
            fee: 1,
            module_id: Hash::of(b"module"),
            input: b"in".to_vec(),
            fuel_limit: 1_000,
            max_price: 1,
            redundancy: 1,
            assignment_height: 0,
            deadline_height: 100,
            placement: cairn_ledger::Placement::Anywhere,
            input_blob: None,
        }
        .sign(&key);
        let (offered, unknown) = (offer.job_id(), Hash::of(b"made up"));
        let mut m = Mempool::new(MempoolLimits::counts(10, 10));
        assert!(!m.awaits_result(&state, &offered));
        assert_eq!(m.insert_nonced(Transaction::Offer(offer)), Ok(Admitted::New));
        assert!(m.awaits_result(&state, &offered));
        assert!(!m.awaits_result(&state, &unknown));
        // Pruning drops the results that are not awaited, by the same rule.
        m.insert_result(result(offered, &key, b"x")).expect("room");
        m.insert_result(result(unknown, &key, b"x")).expect("room");
        m.prune(&state, 1, Duration::from_secs(3600));
        let results: Vec<Hash> = m.results.keys().map(|(job, _)| *job).collect();
        assert_eq!(results, vec![offered]);
    }
}
