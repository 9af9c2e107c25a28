//! Transactions waiting for a block: nonce-ordered ones (offers and account transactions,
//! which share each account's nonce) by (sender, nonce), then results. Bounded; re-broadcast
//! until included; pruned when they can no longer apply. Block candidates pay the most per
//! byte first, each sender's in nonce order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cairn_contracts::{State, TxError};
use cairn_ledger::{Block, Hash, JobResult, PublicKey, SignedOffer, Transaction};

/// Why a transaction was not admitted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The mempool holds its maximum.
    #[error("the mempool is full ({0} transactions); retry shortly")]
    Full(usize),
    /// Results go through [`Mempool::insert_result`].
    #[error("not a nonce-ordered transaction")]
    NotNonced,
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    last_sent: Instant,
}

/// A transaction's fee per byte of its encoding, compared exactly (cross-multiplied).
#[derive(Debug, Clone, Copy)]
struct FeeRate {
    fee: u64,
    size_bytes: u64,
}

impl FeeRate {
    fn of(tx: &Transaction) -> FeeRate {
        let fee = match tx {
            Transaction::Offer(o) => o.offer.fee,
            Transaction::Account(t) => t.tx.fee,
            Transaction::Result(_) => 0,
        };
        let size_bytes = borsh::object_length(tx).expect("borsh sizing cannot fail") as u64;
        FeeRate { fee, size_bytes: size_bytes.max(1) }
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
fn nonce_key(tx: &Transaction) -> Option<(PublicKey, u64)> {
    match tx {
        Transaction::Offer(o) => Some((o.offer.client, o.offer.nonce)),
        Transaction::Account(t) => Some((t.tx.sender, t.tx.nonce)),
        Transaction::Result(_) => None,
    }
}

/// The pending transactions.
#[derive(Debug)]
pub struct Mempool {
    nonced: BTreeMap<(PublicKey, u64), Entry<Transaction>>,
    offer_ids: HashMap<Hash, (PublicKey, u64)>,
    /// Results by (job, provider): a job with redundancy k takes one from each of k providers.
    results: BTreeMap<(Hash, PublicKey), Entry<JobResult>>,
    txs_max: usize,
}

impl Mempool {
    /// An empty mempool holding at most `txs_max` transactions.
    pub fn new(txs_max: usize) -> Mempool {
        Mempool { nonced: BTreeMap::new(), offer_ids: HashMap::new(), results: BTreeMap::new(), txs_max }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.nonced.len() + self.results.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an offer or account transaction (already checked). `Ok(false)` if it, or another
    /// with the same sender and nonce, is already here.
    pub fn insert_nonced(&mut self, tx: Transaction) -> Result<bool, MempoolError> {
        let key = nonce_key(&tx).ok_or(MempoolError::NotNonced)?;
        if self.nonced.contains_key(&key) {
            return Ok(false);
        }
        if self.len() >= self.txs_max {
            return Err(MempoolError::Full(self.txs_max));
        }
        if let Transaction::Offer(o) = &tx {
            self.offer_ids.insert(o.job_id(), key);
        }
        self.nonced.insert(key, Entry { item: tx, last_sent: Instant::now() });
        Ok(true)
    }

    /// Adds a result (already checked). `Ok(false)` if the provider's result for the job is
    /// already here.
    pub fn insert_result(&mut self, result: JobResult) -> Result<bool, MempoolError> {
        let key = (result.claim.job_id, result.claim.provider);
        if self.results.contains_key(&key) {
            return Ok(false);
        }
        if self.len() >= self.txs_max {
            return Err(MempoolError::Full(self.txs_max));
        }
        self.results.insert(key, Entry { item: result, last_sent: Instant::now() });
        Ok(true)
    }

    /// The pending offer of a job.
    pub fn offer(&self, job_id: &Hash) -> Option<&SignedOffer> {
        match self.offer_ids.get(job_id).and_then(|k| self.nonced.get(k)).map(|e| &e.item) {
            Some(Transaction::Offer(o)) => Some(o),
            _ => None,
        }
    }

    /// Block candidates: nonce-ordered transactions, then results (a result may follow its
    /// offer in the same block). Each sender's transactions stay in nonce order; across
    /// senders, the next transaction paying the highest fee per byte goes first (ties by
    /// sender), so a full block keeps those that pay most for their room.
    pub fn candidates(&self) -> Vec<Transaction> {
        let mut queues: BTreeMap<PublicKey, VecDeque<&Transaction>> = BTreeMap::new();
        for ((sender, _), e) in &self.nonced {
            queues.entry(*sender).or_default().push_back(&e.item);
        }
        // The best next transaction of each sender; the smallest sender wins a tie.
        let mut heads: BinaryHeap<(FeeRate, std::cmp::Reverse<PublicKey>)> = queues
            .iter()
            .filter_map(|(sender, q)| q.front().map(|tx| (FeeRate::of(tx), std::cmp::Reverse(*sender))))
            .collect();
        let mut out = Vec::with_capacity(self.len());
        while let Some((_, std::cmp::Reverse(sender))) = heads.pop() {
            let queue = queues.get_mut(&sender).expect("every head has a queue");
            let tx = queue.pop_front().expect("a head is a queued transaction");
            out.push(tx.clone());
            if let Some(next) = queue.front() {
                heads.push((FeeRate::of(next), std::cmp::Reverse(sender)));
            }
        }
        out.extend(self.results.values().map(|e| Transaction::Result(e.item.clone())));
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

    fn remove_tx(&mut self, tx: &Transaction) {
        match nonce_key(tx) {
            Some(key) => {
                if self.nonced.get(&key).is_some_and(|e| e.item == *tx) {
                    self.nonced.remove(&key);
                    if let Transaction::Offer(o) = tx {
                        self.offer_ids.remove(&o.job_id());
                    }
                }
            }
            None => {
                if let Transaction::Result(r) = tx {
                    self.results.remove(&(r.claim.job_id, r.claim.provider));
                }
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
    /// (a result whose offer is not in yet, a transaction waiting for an earlier nonce).
    pub fn remove_rejected(&mut self, rejected: &[(Transaction, TxError)]) {
        for (tx, e) in rejected {
            let transient = match e {
                // A re-execution this node could not run yet (a result whose offer is in the
                // same block, a module still being fetched) may apply in a later block.
                TxError::UnknownJob(_) | TxError::InsufficientBalance { .. } | TxError::Reexecution(_) => true,
                TxError::Nonce { expected, got } => got > expected,
                _ => false,
            };
            if !transient {
                self.remove_tx(tx);
            }
        }
    }

    /// Whether a result for `job_id` may still apply: its job is open on chain, or its offer is
    /// pending here.
    pub fn awaits_result(&self, state: &State, job_id: &Hash) -> bool {
        match state.job(job_id) {
            Some(job) => job.phase == cairn_contracts::JobPhase::Open,
            None => self.offer_ids.contains_key(job_id),
        }
    }

    /// Drops what can no longer apply at `height`: transactions with a used nonce, offers past
    /// their deadline, results for jobs that are closed on chain or unknown everywhere.
    pub fn prune(&mut self, state: &State, height: u64) {
        let stale: Vec<Transaction> = self
            .nonced
            .iter()
            .filter(|((sender, nonce), e)| {
                *nonce < state.account(sender).nonce
                    || matches!(&e.item, Transaction::Offer(o) if o.offer.deadline_height < height)
            })
            .map(|(_, e)| e.item.clone())
            .chain(
                self.results
                    .values()
                    .filter(|e| !self.awaits_result(state, &e.item.claim.job_id))
                    .map(|e| Transaction::Result(e.item.clone())),
            )
            .collect();
        for tx in &stale {
            self.remove_tx(tx);
        }
    }

    /// Transactions and results not sent for `interval`, marked as sent now (at most `max` of
    /// each).
    pub fn due_for_rebroadcast(&mut self, interval: Duration, max: usize) -> (Vec<Transaction>, Vec<JobResult>) {
        let now = Instant::now();
        let mut txs = Vec::new();
        for e in self.nonced.values_mut().filter(|e| now - e.last_sent >= interval).take(max) {
            e.last_sent = now;
            txs.push(e.item.clone());
        }
        let mut results = Vec::new();
        for e in self.results.values_mut().filter(|e| now - e.last_sent >= interval).take(max) {
            e.last_sent = now;
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

    fn transfer(key: &Keypair, nonce: u64, fee: u64) -> Transaction {
        let action = Action::Transfer { to: Keypair::from_seed([8; 32]).public(), amount: 1 };
        let tx = Tx { version: FORMAT_VERSION, chain_id: Hash::ZERO, sender: key.public(), nonce, fee, action };
        Transaction::Account(tx.sign(key))
    }

    #[test]
    fn candidates_pay_the_most_per_byte_first_and_each_sender_keeps_its_nonce_order() {
        let mut m = Mempool::new(10);
        let (a, b, c) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        // a: a cheap transaction, then a rich one that must wait for it; b: middling; c: rich.
        let txs = [transfer(&a, 0, 1), transfer(&a, 1, 100), transfer(&b, 0, 5), transfer(&c, 0, 50)];
        for tx in &txs {
            assert_eq!(m.insert_nonced(tx.clone()), Ok(true));
        }
        let result = result(Hash::of(b"job"), &a, b"out");
        m.insert_result(result.clone()).expect("room");
        let order = m.candidates();
        let expected =
            vec![txs[3].clone(), txs[2].clone(), txs[0].clone(), txs[1].clone(), Transaction::Result(result)];
        assert_eq!(order, expected);
        // A transaction pays per byte: the same fee on a larger transaction ranks lower.
        let small = FeeRate { fee: 10, size_bytes: 100 };
        assert!(small > FeeRate { fee: 10, size_bytes: 1_000 });
        assert_eq!(small, FeeRate { fee: 100, size_bytes: 1_000 });
    }

    #[test]
    fn two_results_of_one_redundant_job_are_both_kept_by_job_and_provider() {
        let mut m = Mempool::new(3);
        let job = Hash::of(b"a job with redundancy 2");
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let (ra, rb) = (result(job, &a, b"same"), result(job, &b, b"same"));
        assert_eq!(m.insert_result(ra.clone()), Ok(true));
        assert_eq!(m.insert_result(rb.clone()), Ok(true), "another provider's result for the same job is kept");
        assert_eq!(m.insert_result(result(job, &a, b"other")), Ok(false), "one result per provider and job");
        assert_eq!(m.len(), 2);
        let candidates = m.candidates();
        assert_eq!(candidates.len(), 2);
        assert!(candidates.contains(&Transaction::Result(ra.clone())));
        assert!(candidates.contains(&Transaction::Result(rb.clone())));
        // A block that includes one of them removes that one only.
        m.remove_included(&block_of(vec![Transaction::Result(ra)]));
        assert_eq!(m.candidates(), vec![Transaction::Result(rb)]);
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
        }
        .sign(&key);
        let (offered, unknown) = (offer.job_id(), Hash::of(b"made up"));
        let mut m = Mempool::new(10);
        assert!(!m.awaits_result(&state, &offered));
        assert_eq!(m.insert_nonced(Transaction::Offer(offer)), Ok(true));
        assert!(m.awaits_result(&state, &offered));
        assert!(!m.awaits_result(&state, &unknown));
        // Pruning drops the results that are not awaited, by the same rule.
        m.insert_result(result(offered, &key, b"x")).expect("room");
        m.insert_result(result(unknown, &key, b"x")).expect("room");
        m.prune(&state, 1);
        let results: Vec<Hash> = m.results.keys().map(|(job, _)| *job).collect();
        assert_eq!(results, vec![offered]);
    }
}
