//! The chain state and its transition rules.

use std::collections::BTreeMap;

use imbl::{OrdMap, OrdSet};
use std::sync::{Arc, OnceLock};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{
    Action, ChainParams, ExecutionReceipt, Genesis, Hash, JobResult, JobStatus, Outcome, PLACEMENT_REGIONS_MAX,
    Placement, PublicKey, REGION_BYTES_MAX, SignedOffer, SignedTx, StateChange, Transaction, Tx, is_region,
};

use crate::{Limit, Result, SignatureCheck, TxError};

/// An account: a balance and the nonce of its next transaction (offers and account transactions
/// share it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// The nonce the account's next offer or account transaction must carry.
    pub nonce: u64,
}

/// A registered provider: its standing ask, stake and capacity.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    /// Price per unit of fuel.
    pub price_per_fuel: u64,
    /// Bonded stake: weights assignment, and is what penalties take from.
    pub stake: u64,
    /// Jobs it executes at once.
    pub capacity: u32,
    /// Jobs currently assigned to it and not yet delivered.
    pub active_jobs: u32,
    /// Stake on its way back to the balance: (release height, amount), oldest first.
    pub unbonding: Vec<(u64, u64)>,
    /// Results of its that were paid: each delivery counted when its job settles with it.
    pub jobs_done: u64,
    /// Times it was slashed for a result proven wrong (by a challenge or a re-execution).
    pub slashes: u64,
    /// Slots it held past a job's deadline without delivering (each cost it the missed-deadline
    /// penalty).
    pub missed: u64,
    /// Where it runs (its declared region), or empty for no region.
    pub region: String,
}

/// The most unbonding entries a provider may have at once.
pub const UNBONDING_ENTRIES_MAX: usize = 16;
/// How many providers a job's ranking keeps (the assignees and their stand-ins).
pub const RANKING_MAX: usize = 8;
/// The most providers registered at once: every offer ranks all eligible providers (a hash
/// each), so their number bounds the work an offer costs every node. A new registration past
/// it is refused (genesis, trusted, may list more).
pub const PROVIDERS_MAX: usize = 1_024;
/// How many blocks a job stays in the state once it reached a final phase (expired, settled,
/// slashed): the state proofs of its final entry are served for that long (and as long as the
/// nodes keep those versions); then the end of a block removes it, so the state holds the jobs
/// in progress and only the last few finished ones, whatever the chain's history. The nodes
/// keep what `job_get` tells of a retired job in their job index.
pub const JOB_RETENTION_BLOCKS: u64 = 16;
/// The end of a block closes at most `block_txs_max` open jobs past their deadline, or this
/// many if it is more. Due jobs past it close at the end of the next blocks, in deadline then
/// job id order, and refuse results meanwhile. So the end of a block costs about what its body
/// may, even when the jobs of thousands of blocks share one deadline, and the due jobs never
/// pile up faster than they close (a block opens at most `block_txs_max` jobs).
pub const DEADLINE_CLOSES_PER_BLOCK_MIN: usize = 1_024;
/// The highest redundancy an offer may ask for: how many providers execute one job. Below
/// [`RANKING_MAX`], so a job with the highest redundancy still has stand-ins.
pub const REDUNDANCY_MAX: u8 = 4;

/// Where a job is in its life on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
pub enum JobPhase {
    /// Escrow locked, waiting for results.
    Open = 0,
    /// Agreeing results were accepted; payment waits for the challenge window.
    Completed = 1,
    /// No result by the deadline; the escrow was refunded.
    Expired = 2,
    /// The providers found right were paid, the client refunded the rest.
    Settled = 3,
    /// No provider was right (a challenge or a re-execution proved the results wrong): they
    /// were slashed, the client refunded.
    Slashed = 4,
    /// A completed job was challenged in its window: settlement waits for the re-execution
    /// (a `Resolve` transaction), the challenger's bond held in the job.
    Challenged = 5,
    /// Closed with results that disagree (all k in, or its deadline passed): settlement waits
    /// for the re-execution (a `Resolve` transaction).
    Disputed = 6,
}

/// A result accepted into one of a job's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Delivery {
    /// The provider that signed it.
    pub provider: PublicKey,
    /// What it claims.
    pub outcome: Outcome,
    /// What the provider is paid if its result stands: `fuel_used × min(ask, max_price)`, its
    /// ask when the result was accepted.
    pub payment: u64,
}

/// One of a job's `redundancy` execution slots.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Slot {
    /// Indexes in the job's `ranking` of the providers that held the slot, the current holder
    /// last (a replaced provider's late result still fills its slot).
    pub holders: Vec<u8>,
    /// The height at which the current holder was assigned.
    pub assigned_height: u64,
    /// The slot's result, once delivered.
    pub delivery: Option<Delivery>,
}

/// A job as the chain keeps it (the offer's input lives in its block, not in state).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Job {
    /// The paying client.
    pub client: PublicKey,
    /// The module.
    pub module_id: Hash,
    /// SHA-256 of the input.
    pub input_hash: Hash,
    /// The fuel limit.
    pub fuel_limit: u64,
    /// The highest price per unit of fuel.
    pub max_price: u64,
    /// The escrow locked: `fuel_limit × max_price × redundancy`.
    pub escrow: u64,
    /// The height after which the job expires.
    pub deadline_height: u64,
    /// The providers ranked for the job (best first, at most [`RANKING_MAX`]).
    pub ranking: Vec<PublicKey>,
    /// One slot per execution asked for (the offer's redundancy).
    pub slots: Vec<Slot>,
    /// Index in `ranking` of the next stand-in (the first provider not yet assigned).
    pub next: u8,
    /// Where the job is in its life.
    pub phase: JobPhase,
    /// What the validators' re-execution gave, once results disagreed (at most once per job).
    pub verified: Option<Outcome>,
    /// Stake slashed from providers the re-execution proved wrong, held until the job settles.
    pub forfeit: u64,
    /// What the providers are paid in all (fixed when the job completes or settles).
    pub paid: u64,
    /// The height at which a completed job settles, if unchallenged; once the job is in a final
    /// phase (expired, settled, slashed), the height at which it reached it (the state retires
    /// it [`JOB_RETENTION_BLOCKS`] after).
    pub settle_height: u64,
    /// The challenge waiting for its re-execution (phase `Challenged`).
    pub challenge: Option<Challenge>,
}

/// A challenge of a completed job, held until the job is re-executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Challenge {
    /// Who challenged.
    pub challenger: PublicKey,
    /// The bond, held in the job.
    pub bond: u64,
}

impl Job {
    /// Whether the job waits for a re-execution (a `Resolve` transaction): it was challenged,
    /// or results disagree and it was not re-executed yet.
    pub fn needs_resolution(&self) -> bool {
        match self.phase {
            JobPhase::Challenged | JobPhase::Disputed => true,
            JobPhase::Open => self.verified.is_none() && self.deliveries().count() > 1 && self.agreed().is_none(),
            JobPhase::Completed | JobPhase::Expired | JobPhase::Settled | JobPhase::Slashed => false,
        }
    }

    /// Whether the job is in a final phase (expired, settled, slashed): nothing changes it
    /// any more, and the state retires it [`JOB_RETENTION_BLOCKS`] after `settle_height`.
    pub fn is_final(&self) -> bool {
        matches!(self.phase, JobPhase::Expired | JobPhase::Settled | JobPhase::Slashed)
    }

    /// The job's redundancy (k): how many results it waits for.
    pub fn redundancy(&self) -> usize {
        self.slots.len()
    }

    /// Every provider assigned so far: the first k ranked, then the stand-ins that replaced
    /// late ones, in the order they took over. Their results are accepted while their slot
    /// has none.
    pub fn assignees(&self) -> &[PublicKey] {
        let n = usize::from(self.next).min(self.ranking.len());
        &self.ranking[..n]
    }

    /// The current holder of each slot.
    pub fn assigned(&self) -> Vec<PublicKey> {
        self.slots.iter().filter_map(|s| self.holder(s)).collect()
    }

    fn holder(&self, slot: &Slot) -> Option<PublicKey> {
        slot.holders.last().and_then(|i| self.ranking.get(usize::from(*i))).copied()
    }

    /// The slot `provider` holds or held.
    pub fn slot_of(&self, provider: &PublicKey) -> Option<usize> {
        let index = self.assignees().iter().position(|p| p == provider)?;
        self.slots.iter().position(|s| s.holders.iter().any(|h| usize::from(*h) == index))
    }

    /// Whether a result from `provider` would be accepted, the deadline aside
    /// ([`Job::takes_results_in`]): the job is open and the slot the provider holds or held has
    /// no result yet.
    pub fn accepts(&self, provider: &PublicKey) -> bool {
        self.phase == JobPhase::Open && self.slot_of(provider).is_some_and(|i| self.slots[i].delivery.is_none())
    }

    /// Whether the job takes results in block `height`: it is open, and `height` is at most the
    /// block after its deadline (whose end closes it; one still open later waits its turn to
    /// close, [`DEADLINE_CLOSES_PER_BLOCK_MIN`]).
    pub fn takes_results_in(&self, height: u64) -> bool {
        self.phase == JobPhase::Open && height <= self.deadline_height.saturating_add(1)
    }

    /// The providers whose result the job would accept now ([`Job::accepts`]): while it is
    /// open, every holder, current or replaced, of each slot without a result.
    pub fn accepting(&self) -> impl Iterator<Item = PublicKey> + '_ {
        let open = self.phase == JobPhase::Open;
        self.slots
            .iter()
            .filter(move |s| open && s.delivery.is_none())
            .flat_map(|s| s.holders.iter().filter_map(|i| self.ranking.get(usize::from(*i)).copied()))
    }

    /// Whether `provider` holds, as a stand-in, a slot still waiting for its result.
    pub fn is_stand_in(&self, provider: &PublicKey) -> bool {
        self.phase == JobPhase::Open
            && self
                .slots
                .iter()
                .any(|s| s.delivery.is_none() && s.holders.len() > 1 && self.holder(s).as_ref() == Some(provider))
    }

    /// The results delivered so far, by slot.
    pub fn deliveries(&self) -> impl Iterator<Item = &Delivery> {
        self.slots.iter().filter_map(|s| s.delivery.as_ref())
    }

    /// The outcome every delivered result states, if there is at least one and they agree.
    pub fn agreed(&self) -> Option<Outcome> {
        let mut outcomes = self.deliveries().map(|d| d.outcome);
        let first = outcomes.next()?;
        outcomes.all(|o| o == first).then_some(first)
    }

    /// The providers whose results the job still waits for: the holder of each slot without a
    /// result, with the height it was assigned at (a stand-in takes over `delivery_blocks`
    /// after it, while one is left).
    pub fn awaited(&self) -> impl Iterator<Item = (PublicKey, u64)> + '_ {
        self.slots.iter().filter(|s| s.delivery.is_none()).filter_map(|s| Some((self.holder(s)?, s.assigned_height)))
    }

    /// Whether a stand-in is left to take over a late slot.
    pub fn has_stand_in(&self) -> bool {
        usize::from(self.next) < self.ranking.len()
    }

    /// The height at which some slot's holder becomes late (`delivery_blocks` after its
    /// assignment), if the job is open, a stand-in is left to replace it, and that height is
    /// not past the deadline (no slot passes on after it: a job waiting its turn to close is not
    /// looked at again by every block).
    fn reassign_height(&self, delivery_blocks: u64) -> Option<u64> {
        if self.phase != JobPhase::Open || usize::from(self.next) >= self.ranking.len() {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.delivery.is_none())
            .map(|s| s.assigned_height.saturating_add(delivery_blocks))
            .min()
            .filter(|at| *at <= self.deadline_height)
    }
}

/// A state key. Its bytes (`tag || id`) order and name the state entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    /// `0x00`: the height of the last block applied (u64), so every block changes the state.
    Height,
    /// `0x01 || address`.
    Account(PublicKey),
    /// `0x02 || address`.
    Provider(PublicKey),
    /// `0x03 || job id`.
    Job(Hash),
}

impl StateKey {
    /// The key's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, id) = match self {
            StateKey::Height => return vec![0],
            StateKey::Account(a) => (1u8, a.0),
            StateKey::Provider(p) => (2, p.0),
            StateKey::Job(j) => (3, j.0),
        };
        let mut k = Vec::with_capacity(33);
        k.push(tag);
        k.extend_from_slice(&id);
        k
    }

    /// Parses key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<StateKey> {
        if bytes == [0] {
            return Some(StateKey::Height);
        }
        let (&tag, id) = bytes.split_first()?;
        let id: [u8; 32] = id.try_into().ok()?;
        match tag {
            1 => Some(StateKey::Account(PublicKey(id))),
            2 => Some(StateKey::Provider(PublicKey(id))),
            3 => Some(StateKey::Job(Hash(id))),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Height(u64),
    Account(Account),
    Provider(Provider),
    /// Shared with the jobs map: journaling a job's old value copies a pointer.
    Job(Arc<Job>),
}

impl Value {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Value::Height(h) => borsh::to_vec(h),
            Value::Account(a) => borsh::to_vec(a),
            Value::Provider(p) => borsh::to_vec(p),
            Value::Job(j) => borsh::to_vec(j.as_ref()),
        }
        .expect("borsh encoding into a Vec cannot fail")
    }
}

/// Why a state cannot be rebuilt from its stored entries: the genesis is unusable or the store
/// is corrupt — a fault of the node that stored them, never of a transaction.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The genesis itself is refused.
    #[error("genesis: {0}")]
    Genesis(TxError),
    /// A stored key is not a state key.
    #[error("a stored state key of {bytes} bytes is not a state key")]
    Key {
        /// Its length.
        bytes: usize,
    },
    /// A stored value does not decode as its key's type.
    #[error("the stored value of {key:?} does not decode: {source}")]
    Value {
        /// Its key.
        key: StateKey,
        /// The decoding error.
        source: std::io::Error,
    },
}

/// Re-executes a job for a challenge, or when redundant results disagree: the caller owns the modules and inputs (blocks, blob
/// store) and the sandbox; this crate stays pure.
pub trait Reexecute {
    /// The [`Outcome`] of running `job` (module, input, fuel limit), exactly as a provider's
    /// result would state it.
    fn reexecute(&mut self, job_id: &Hash, job: &Job) -> Result<Outcome>;
}

/// For blocks without challenges or disputes, and for checks: refuses to re-execute.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReexecution;

impl Reexecute for NoReexecution {
    fn reexecute(&mut self, job_id: &Hash, _: &Job) -> Result<Outcome> {
        Err(TxError::ReexecutionUnavailable(*job_id))
    }
}

/// The jobs closed at their deadline by the end of a block ([`State::end_block_closing`]), and
/// those it retired from the state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closed {
    /// Jobs without any result: expired, the escrow refunded.
    pub expired: Vec<Hash>,
    /// Jobs with some of their results: completed with them (paid after the challenge window)
    /// or, if re-executed, settled.
    pub with_results: Vec<Hash>,
    /// Jobs removed from the state, [`JOB_RETENTION_BLOCKS`] after they reached a final
    /// phase, with their last entry.
    pub retired: Vec<(Hash, Job)>,
}

/// How far ahead of an account's next nonce a pending transaction may be: the mempool admits
/// nonces `next ..= next + NONCE_WINDOW - 1` (so at most this many transactions of one sender
/// wait at once).
pub const NONCE_WINDOW: u64 = 64;

/// How a transaction's nonce (and the balance it spends) is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceRule {
    /// Block execution: the nonce must be the account's next one.
    Exact,
    /// Mempool admission: a nonce within [`NONCE_WINDOW`] of the account's next one, and a
    /// balance that covers this transaction on top of `pending_spend`, what the sender's
    /// other pending transactions will spend ([`balance_needed`]).
    Pending {
        /// What the sender's other pending transactions spend together.
        pending_spend: u64,
    },
}

impl NonceRule {
    /// Whether `got` is acceptable when the account's next nonce is `expected`.
    fn check(self, expected: u64, got: u64) -> Result<()> {
        let ok = match self {
            NonceRule::Exact => got == expected,
            NonceRule::Pending { .. } => got >= expected && got - expected < NONCE_WINDOW,
        };
        if ok { Ok(()) } else { Err(TxError::Nonce { expected, got }) }
    }

    /// The part of the balance already promised to other pending transactions.
    fn promised(self) -> u64 {
        match self {
            NonceRule::Exact => 0,
            NonceRule::Pending { pending_spend } => pending_spend,
        }
    }
}

/// A provider's declared region: empty (none) or a region's name.
fn provider_region_rule(region: &str) -> Result<()> {
    if region.is_empty() || is_region(region) {
        Ok(())
    } else {
        Err(TxError::Limit(Limit::Region { max: REGION_BYTES_MAX }))
    }
}

/// What applying `tx` takes from its sender's balance: an offer's escrow and fee; an account
/// transaction's fee plus the amount, stake or bond it moves; nothing for a result.
pub fn balance_needed(tx: &Transaction) -> Result<u64> {
    match tx {
        Transaction::Offer(o) => o.offer.escrow()?.checked_add(o.offer.fee).ok_or(TxError::Overflow("escrow + fee")),
        Transaction::Account(t) => {
            let moved = match &t.tx.action {
                Action::Transfer { amount, .. } => *amount,
                Action::RegisterProvider { stake, .. } => *stake,
                Action::Challenge { bond, .. } => *bond,
                Action::UpdatePrice { .. } | Action::UpdateRegion { .. } | Action::Unbond { .. } => 0,
            };
            t.tx.fee.checked_add(moved).ok_or(TxError::Overflow("fee + amount"))
        }
        Transaction::Result(_) | Transaction::Resolve { .. } => Ok(0),
    }
}

/// The chain state: accounts, providers and jobs, with a journal of uncommitted changes.
///
/// Its maps are persistent (`imbl`): a clone shares everything with the original and copies
/// only what either changes afterwards, so a snapshot of the head (for readers, or to execute
/// a block on) costs O(1), and executing a block on a clone leaves the original untouched.
#[derive(Clone, Debug)]
pub struct State {
    params: ChainParams,
    chain_id: Hash,
    height: u64,
    accounts: OrdMap<PublicKey, Account>,
    providers: OrdMap<PublicKey, Provider>,
    /// Each job behind an `Arc`: copying a map node on write (after a snapshot) then copies
    /// pointers, not every job's vectors.
    jobs: OrdMap<Hash, Arc<Job>>,
    /// Open jobs by deadline (derived from `jobs`).
    open: OrdSet<(u64, Hash)>,
    /// Completed jobs by settlement height (derived from `jobs`).
    settling: OrdSet<(u64, Hash)>,
    /// Open jobs by the height at which a slot's holder becomes late, while a stand-in is
    /// left (derived from `jobs`).
    reassigning: OrdSet<(u64, Hash)>,
    /// Unbonding entries by release height (derived from `providers`).
    releasing: OrdSet<(u64, PublicKey)>,
    /// Jobs waiting for a re-execution ([`Job::needs_resolution`]; derived from `jobs`), by
    /// deadline: the oldest first, whatever their ids (which a client could grind to come
    /// first), since a deadline is never before the height its offer was made.
    resolving: OrdSet<(u64, Hash)>,
    /// Jobs in a final phase by the height they reached it, to retire (derived from `jobs`).
    finished: OrdSet<(u64, Hash)>,
    /// The open jobs that would accept a result from each provider ([`Job::accepting`];
    /// derived from `jobs`): what a provider looks up after each block, in the time of its
    /// own jobs rather than of every open one.
    accepting: OrdSet<(PublicKey, Hash)>,
    /// Value of each key before the first uncommitted change to it.
    journal: BTreeMap<StateKey, Option<Value>>,
    /// The journal's changes as store writes, once encoded (cleared by every change).
    encoded: OnceLock<Vec<StateChange>>,
}

impl State {
    fn empty(params: ChainParams, chain_id: Hash) -> State {
        State {
            params,
            chain_id,
            height: 0,
            accounts: OrdMap::new(),
            providers: OrdMap::new(),
            jobs: OrdMap::new(),
            open: OrdSet::new(),
            settling: OrdSet::new(),
            reassigning: OrdSet::new(),
            releasing: OrdSet::new(),
            resolving: OrdSet::new(),
            finished: OrdSet::new(),
            accepting: OrdSet::new(),
            journal: BTreeMap::new(),
            encoded: OnceLock::new(),
        }
    }

    /// The state at genesis (committed: nothing is journaled).
    pub fn from_genesis(genesis: &Genesis) -> Result<State> {
        genesis.validate()?;
        let total: u128 = genesis.accounts.iter().map(|a| u128::from(a.balance)).sum::<u128>()
            + genesis.providers.iter().map(|p| u128::from(p.stake)).sum::<u128>();
        if total > u128::from(u64::MAX) {
            return Err(TxError::Limit(Limit::GenesisSupply));
        }
        let mut s = State::empty(genesis.params.clone(), genesis.chain_id());
        for a in &genesis.accounts {
            s.put(StateKey::Account(a.address), Some(Value::Account(Account { balance: a.balance, nonce: 0 })));
        }
        for p in &genesis.providers {
            let provider = Provider {
                price_per_fuel: p.price_per_fuel,
                stake: p.stake,
                capacity: p.capacity,
                active_jobs: 0,
                unbonding: vec![],
                jobs_done: 0,
                slashes: 0,
                missed: 0,
                region: p.region.clone(),
            };
            s.put(StateKey::Provider(p.address), Some(Value::Provider(provider)));
        }
        s.put(StateKey::Height, Some(Value::Height(0)));
        s.journal.clear();
        Ok(s)
    }

    /// The state with `entries` (as stored, genesis included).
    pub fn from_entries(genesis: &Genesis, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<State, LoadError> {
        let mut s = State::from_genesis(genesis).map_err(LoadError::Genesis)?;
        for (k, v) in entries {
            let key = StateKey::from_bytes(k).ok_or(LoadError::Key { bytes: k.len() })?;
            let corrupt = |source: std::io::Error| LoadError::Value { key, source };
            let value = match key {
                StateKey::Height => Value::Height(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Account(_) => Value::Account(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Provider(_) => Value::Provider(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Job(_) => Value::Job(Arc::new(borsh::from_slice(v).map_err(corrupt)?)),
            };
            s.put(key, Some(value));
        }
        s.journal.clear();
        Ok(s)
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The chain id.
    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    fn get(&self, key: &StateKey) -> Option<Value> {
        match key {
            StateKey::Height => Some(Value::Height(self.height)),
            StateKey::Account(a) => self.accounts.get(a).copied().map(Value::Account),
            StateKey::Provider(p) => self.providers.get(p).cloned().map(Value::Provider),
            StateKey::Job(j) => self.jobs.get(j).map(|j| Value::Job(Arc::clone(j))),
        }
    }

    /// The one place state changes: journals the old value and keeps the derived indexes.
    fn put(&mut self, key: StateKey, value: Option<Value>) {
        self.encoded.take();
        if !self.journal.contains_key(&key) {
            let old = self.get(&key);
            self.journal.insert(key, old);
        }
        let delivery_blocks = self.params.delivery_blocks;
        match key {
            StateKey::Job(id) => {
                if let Some(old) = self.jobs.get(&id) {
                    self.open.remove(&(old.deadline_height, id));
                    self.settling.remove(&(old.settle_height, id));
                    self.resolving.remove(&(old.deadline_height, id));
                    self.finished.remove(&(old.settle_height, id));
                    if let Some(at) = old.reassign_height(delivery_blocks) {
                        self.reassigning.remove(&(at, id));
                    }
                    for p in old.accepting() {
                        self.accepting.remove(&(p, id));
                    }
                }
            }
            StateKey::Provider(address) => {
                if let Some(old) = self.providers.get(&address) {
                    for (at, _) in &old.unbonding {
                        self.releasing.remove(&(*at, address));
                    }
                }
            }
            StateKey::Height | StateKey::Account(_) => {}
        }
        match (key, value) {
            (StateKey::Height, Some(Value::Height(h))) => self.height = h,
            (StateKey::Height, None) => self.height = 0,
            (StateKey::Account(a), Some(Value::Account(v))) => {
                self.accounts.insert(a, v);
            }
            (StateKey::Provider(p), Some(Value::Provider(v))) => {
                self.releasing.extend(v.unbonding.iter().map(|(at, _)| (*at, p)));
                self.providers.insert(p, v);
            }
            (StateKey::Job(id), Some(Value::Job(j))) => {
                if let Some(at) = j.reassign_height(delivery_blocks) {
                    self.reassigning.insert((at, id));
                }
                if j.needs_resolution() {
                    self.resolving.insert((j.deadline_height, id));
                }
                self.accepting.extend(j.accepting().map(|p| (p, id)));
                match j.phase {
                    JobPhase::Open => {
                        self.open.insert((j.deadline_height, id));
                    }
                    JobPhase::Completed => {
                        self.settling.insert((j.settle_height, id));
                    }
                    JobPhase::Expired | JobPhase::Settled | JobPhase::Slashed => {
                        self.finished.insert((j.settle_height, id));
                    }
                    JobPhase::Challenged | JobPhase::Disputed => {}
                }
                self.jobs.insert(id, j);
            }
            (StateKey::Account(a), None) => {
                self.accounts.remove(&a);
            }
            (StateKey::Provider(p), None) => {
                self.providers.remove(&p);
            }
            (StateKey::Job(id), None) => {
                self.jobs.remove(&id);
            }
            (k, Some(_)) => unreachable!("value of the wrong kind for {k:?}"),
        }
    }

    fn set_account(&mut self, address: PublicKey, account: Account) {
        self.put(StateKey::Account(address), Some(Value::Account(account)));
    }

    fn credit(&mut self, address: PublicKey, amount: u64) {
        let mut account = self.account(&address);
        account.balance = account.balance.checked_add(amount).expect("total value fits in u64 (checked at genesis)");
        self.set_account(address, account);
    }

    fn set_job(&mut self, id: Hash, job: Job) {
        self.put(StateKey::Job(id), Some(Value::Job(Arc::new(job))));
    }

    /// An account (zero balance and nonce if it has never been touched).
    pub fn account(&self, address: &PublicKey) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// A provider's registration.
    pub fn provider(&self, address: &PublicKey) -> Option<&Provider> {
        self.providers.get(address)
    }

    fn set_provider(&mut self, address: PublicKey, provider: Provider) {
        self.put(StateKey::Provider(address), Some(Value::Provider(provider)));
    }

    /// Counts a paid result of `address` (a provider: only providers' results are accepted).
    fn count_done(&mut self, address: PublicKey) {
        let mut p = self.providers.get(&address).cloned().expect("results come from providers");
        p.jobs_done += 1;
        self.set_provider(address, p);
    }

    /// Adds `delta` (±1) to a provider's count of undelivered jobs.
    fn count_job(&mut self, address: PublicKey, delta: i8) {
        if let Some(mut p) = self.providers.get(&address).cloned() {
            p.active_jobs = if delta > 0 { p.active_jobs.saturating_add(1) } else { p.active_jobs.saturating_sub(1) };
            self.set_provider(address, p);
        }
    }

    /// All registered providers.
    pub fn providers(&self) -> impl Iterator<Item = (&PublicKey, &Provider)> {
        self.providers.iter()
    }

    /// A job.
    pub fn job(&self, id: &Hash) -> Option<&Job> {
        self.jobs.get(id).map(Arc::as_ref)
    }

    /// Every job in the state (in progress, or finished and not retired yet), by id.
    pub fn jobs(&self) -> impl Iterator<Item = (&Hash, &Job)> {
        self.jobs.iter().map(|(id, j)| (id, j.as_ref()))
    }

    /// Whether blocks must keep coming even with nothing to include: open jobs (delivery and
    /// deadline clocks), results waiting to settle, stake waiting to unbond.
    pub fn has_pending_work(&self) -> bool {
        !self.open.is_empty() || !self.settling.is_empty() || !self.releasing.is_empty()
    }

    /// The derived indexes recomputed from the entries, as `(open, settling, reassigning,
    /// releasing, resolving, finished, accepting)`: what the maintained ones must equal.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    fn recomputed_indexes(
        &self,
    ) -> (
        OrdSet<(u64, Hash)>,
        OrdSet<(u64, Hash)>,
        OrdSet<(u64, Hash)>,
        OrdSet<(u64, PublicKey)>,
        OrdSet<(u64, Hash)>,
        OrdSet<(u64, Hash)>,
        OrdSet<(PublicKey, Hash)>,
    ) {
        let delivery = self.params.delivery_blocks;
        let open = self.jobs.iter().filter(|(_, j)| j.phase == JobPhase::Open).map(|(id, j)| (j.deadline_height, *id));
        let settling =
            self.jobs.iter().filter(|(_, j)| j.phase == JobPhase::Completed).map(|(id, j)| (j.settle_height, *id));
        let reassigning = self.jobs.iter().filter_map(|(id, j)| Some((j.reassign_height(delivery)?, *id)));
        let releasing = self.providers.iter().flat_map(|(a, p)| p.unbonding.iter().map(|(at, _)| (*at, *a)));
        let resolving = self.jobs.iter().filter(|(_, j)| j.needs_resolution()).map(|(id, j)| (j.deadline_height, *id));
        let finished = self.jobs.iter().filter(|(_, j)| j.is_final()).map(|(id, j)| (j.settle_height, *id));
        let accepting = self.jobs.iter().flat_map(|(id, j)| j.accepting().map(move |p| (p, *id)));
        (
            open.collect(),
            settling.collect(),
            reassigning.collect(),
            releasing.collect(),
            resolving.collect(),
            finished.collect(),
            accepting.collect(),
        )
    }

    /// Whether the maintained indexes equal a recomputation from the entries.
    #[cfg(test)]
    pub(crate) fn indexes_are_consistent(&self) -> bool {
        let (open, settling, reassigning, releasing, resolving, finished, accepting) = self.recomputed_indexes();
        open == self.open
            && settling == self.settling
            && reassigning == self.reassigning
            && releasing == self.releasing
            && resolving == self.resolving
            && finished == self.finished
            && accepting == self.accepting
    }

    /// The jobs waiting for a re-execution, the earliest deadlines first: a block proposer adds
    /// a `Resolve` transaction for each one it has re-executed.
    pub fn awaiting_resolution(&self) -> impl Iterator<Item = &Hash> {
        self.resolving.iter().map(|(_, id)| id)
    }

    /// The open jobs that would accept a result from `provider` ([`Job::accepts`]), by id.
    pub fn accepting(&self, provider: &PublicKey) -> impl Iterator<Item = &Hash> {
        let provider = *provider;
        self.accepting.range((provider, Hash::ZERO)..).take_while(move |(p, _)| *p == provider).map(|(_, id)| id)
    }

    /// The open jobs, by deadline.
    pub fn open_jobs(&self) -> impl Iterator<Item = (&Hash, &Job)> {
        self.open.iter().map(|(_, id)| (id, self.jobs.get(id).expect("open index follows jobs").as_ref()))
    }

    /// The height of the last block applied (0 at genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Every entry as stored, in key order (the genesis state included). The state tree over
    /// these entries is the state root.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut keys: Vec<StateKey> = vec![StateKey::Height];
        keys.extend(self.accounts.keys().map(|a| StateKey::Account(*a)));
        keys.extend(self.providers.keys().map(|p| StateKey::Provider(*p)));
        keys.extend(self.jobs.keys().map(|j| StateKey::Job(*j)));
        let mut out: Vec<(Vec<u8>, Vec<u8>)> =
            keys.iter().filter_map(|k| self.get(k).map(|v| (k.to_bytes(), v.to_bytes()))).collect();
        out.sort();
        out
    }

    /// Providers eligible for a job at `max_price` placed as `placement`: stake at least
    /// `stake_min`, ask at most `max_price`, capacity left, and in one of the regions if the
    /// placement allows those only.
    fn eligible<'a>(
        &'a self,
        max_price: u64,
        placement: &'a Placement,
    ) -> impl Iterator<Item = (&'a PublicKey, &'a Provider)> + 'a {
        self.priced(max_price, placement).filter(|(_, p)| p.active_jobs < p.capacity)
    }

    /// Providers with the stake to be assigned, an ask at most `max_price` and, if `placement`
    /// allows some regions only, in one of them — capacity aside. A placement that names too
    /// many regions (not a valid one: see [`Placement::counts_ok`]) allows nobody, so that an
    /// unchecked offer (an estimate's) costs at most a pass over the providers.
    fn priced<'a>(
        &'a self,
        max_price: u64,
        placement: &'a Placement,
    ) -> impl Iterator<Item = (&'a PublicKey, &'a Provider)> + 'a {
        let stake_min = self.params.stake_min;
        let valid = placement.counts_ok();
        self.providers.iter().filter(move |(_, p)| {
            valid && p.stake >= stake_min && p.stake > 0 && p.price_per_fuel <= max_price && placement.allows(&p.region)
        })
    }

    /// The providers ranked for a job: eligible ones (see [`State::eligible_count`]) ordered
    /// first by placement — those in a region the offer prefers before the others (every one
    /// counts as preferred when it prefers none) — then by stake-weighted rendezvous hashing of
    /// `(job_id, provider)`: each draws `-log2(u)` from `u = sha256(job_id || provider)` and is
    /// ranked by `-log2(u) / stake`, smallest first, so within a tier a provider's chance to rank
    /// first is proportional to its stake. At most `n` of them.
    pub fn ranking(&self, job_id: &Hash, max_price: u64, placement: &Placement, n: usize) -> Vec<PublicKey> {
        let mut scored: Vec<(bool, u128, u64, PublicKey)> = self
            .eligible(max_price, placement)
            .map(|(addr, p)| {
                let h = Hash::of_parts(&[&job_id.0, &addr.0]);
                let u = u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes"));
                (!placement.prefers(&p.region), neg_log2_q32(u), p.stake, *addr)
            })
            .collect();
        // a/sa < b/sb  ⇔  a·sb < b·sa (no division, exact in u128: a < 2^39, stakes < 2^64).
        // A total order (ties go by address, each once): the first `n` are found in linear time
        // and only they are sorted, whatever the number of providers (`PROVIDERS_MAX`).
        let order = |(ta, a, sa, pa): &(bool, u128, u64, PublicKey), (tb, b, sb, pb): &(bool, u128, u64, PublicKey)| {
            ta.cmp(tb).then((a * u128::from(*sb)).cmp(&(b * u128::from(*sa)))).then(pa.cmp(pb))
        };
        if n == 0 {
            return Vec::new();
        }
        if n < scored.len() {
            scored.select_nth_unstable_by(n - 1, order);
            scored.truncate(n);
        }
        scored.sort_unstable_by(order);
        scored.into_iter().map(|(_, _, _, a)| a).collect()
    }

    /// The first `k` ranked providers: who executes the job now.
    pub fn assignment(&self, job_id: &Hash, max_price: u64, placement: &Placement, k: usize) -> Vec<PublicKey> {
        self.ranking(job_id, max_price, placement, k)
    }

    /// How many providers are eligible for a job at `max_price` placed as `placement` now (what
    /// [`State::ranking`] ranks): stake at least `stake_min`, ask at most `max_price`, capacity
    /// left, and in one of its regions if it allows those only.
    pub fn eligible_count(&self, max_price: u64, placement: &Placement) -> usize {
        self.eligible(max_price, placement).count()
    }

    /// How many providers have the stake and ask at most `max_price` (in one of the regions
    /// `placement` allows), whether or not they have capacity left: with
    /// [`State::eligible_count`], tells a price too low from providers that are all busy.
    pub fn priced_count(&self, max_price: u64, placement: &Placement) -> usize {
        self.priced(max_price, placement).count()
    }

    /// The lowest ask of a provider with the stake to be assigned (capacity aside), if any.
    pub fn lowest_ask(&self) -> Option<u64> {
        let stake_min = self.params.stake_min;
        self.providers.values().filter(|p| p.stake >= stake_min && p.stake > 0).map(|p| p.price_per_fuel).min()
    }

    /// What `provider` is paid per unit of fuel of a job offering `max_price`, were its result
    /// accepted now: its ask, at most `max_price` (`max_price` if it is not registered), as
    /// [`State::apply_tx`] prices a result.
    pub fn pay_rate(&self, provider: &PublicKey, max_price: u64) -> u64 {
        self.provider(provider).map_or(max_price, |p| p.price_per_fuel.min(max_price))
    }

    /// Checks a transaction against the rules and this state, at block `height`, without
    /// applying it: its signature through `sigs` (a node's cache of what it already verified),
    /// then the rules. What a node checks before admitting a transaction to its mempool.
    pub fn check_tx(
        &self,
        tx: &Transaction,
        height: u64,
        nonce_rule: NonceRule,
        sigs: &mut dyn SignatureCheck,
    ) -> Result<()> {
        sigs.check(tx, self.params.output_bytes_max as usize)?;
        match tx {
            Transaction::Offer(o) => self.offer_rules(o, height, nonce_rule).map(|_| ()),
            Transaction::Result(r) => self.result_rules(r, height),
            Transaction::Account(t) => self.account_rules(t, nonce_rule),
            Transaction::Resolve { job_id } => self.resolve_rules(job_id),
        }
    }

    /// The rules of a resolution: the job waits for a re-execution.
    fn resolve_rules(&self, job_id: &Hash) -> Result<()> {
        let job = self.jobs.get(job_id).ok_or(TxError::UnknownJob(*job_id))?;
        if !job.needs_resolution() {
            return Err(TxError::Limit(Limit::NothingToResolve(*job_id)));
        }
        Ok(())
    }

    /// Checks an offer (its signature included) against the rules and this state, at block
    /// `height`, without applying it. Returns the escrow it would lock.
    pub fn check_offer(&self, signed: &SignedOffer, height: u64, nonce_rule: NonceRule) -> Result<u64> {
        signed.verify()?;
        self.offer_rules(signed, height, nonce_rule)
    }

    /// The rules of an offer, its signature aside (checked by the caller).
    fn offer_rules(&self, signed: &SignedOffer, height: u64, nonce_rule: NonceRule) -> Result<u64> {
        let o = &signed.offer;
        let p = &self.params;
        if o.chain_id != self.chain_id {
            return Err(TxError::WrongChain);
        }
        if o.fee < p.tx_fee_min {
            return Err(TxError::Limit(Limit::Fee { min: p.tx_fee_min }));
        }
        if o.redundancy == 0 || o.redundancy > REDUNDANCY_MAX {
            return Err(TxError::Limit(Limit::Redundancy { max: REDUNDANCY_MAX }));
        }
        if o.fuel_limit == 0 || o.fuel_limit > p.fuel_limit_max {
            return Err(TxError::Limit(Limit::FuelLimit { max: p.fuel_limit_max }));
        }
        if o.input.len() > p.input_bytes_max as usize {
            return Err(TxError::Limit(Limit::Input { max: p.input_bytes_max }));
        }
        if o.input_blob.is_some() && !o.input.is_empty() {
            return Err(TxError::Limit(Limit::InputAndBlob));
        }
        if !o.placement.regions().iter().all(|r| is_region(r)) {
            return Err(TxError::Limit(Limit::Region { max: REGION_BYTES_MAX }));
        }
        if !o.placement.counts_ok() {
            return Err(TxError::Limit(Limit::PlacementRegions { max: PLACEMENT_REGIONS_MAX }));
        }
        if o.assignment_height >= height || height - o.assignment_height > p.assignment_window_blocks {
            return Err(TxError::Limit(Limit::AssignmentHeight {
                got: o.assignment_height,
                window: p.assignment_window_blocks,
                head: height - 1,
            }));
        }
        if o.deadline_height < height || o.deadline_height - height > p.deadline_max_blocks {
            return Err(TxError::Limit(Limit::Deadline {
                got: o.deadline_height,
                min: height,
                max: height + p.deadline_max_blocks,
            }));
        }
        let job_id = signed.job_id();
        if self.jobs.contains_key(&job_id) {
            return Err(TxError::DuplicateJob(job_id));
        }
        let account = self.account(&o.client);
        nonce_rule.check(account.nonce, o.nonce)?;
        let escrow = o.escrow()?;
        let needed = escrow.checked_add(o.fee).ok_or(TxError::Overflow("escrow + fee"))?;
        let available = account.balance.saturating_sub(nonce_rule.promised());
        if available < needed {
            return Err(TxError::InsufficientBalance { balance: available, escrow: needed });
        }
        let needed = usize::from(o.redundancy);
        if self.eligible(o.max_price, &o.placement).take(needed).count() < needed {
            return Err(TxError::no_provider(o.max_price, o.redundancy, &o.placement));
        }
        Ok(escrow)
    }

    /// Checks a result (its signature included) against its job, for the next block, without
    /// applying it.
    pub fn check_result(&self, result: &JobResult) -> Result<()> {
        result.verify(self.params.output_bytes_max as usize)?;
        self.result_rules(result, self.height() + 1)
    }

    /// The rules of a result in block `height`, its signature aside (checked by the caller).
    fn result_rules(&self, result: &JobResult, height: u64) -> Result<()> {
        let c = &result.claim;
        let job = self.jobs.get(&c.job_id).ok_or(TxError::UnknownJob(c.job_id))?;
        if !job.takes_results_in(height) {
            return Err(TxError::JobClosed(c.job_id));
        }
        let slot = job.slot_of(&c.provider).ok_or(TxError::NotAssigned(c.provider))?;
        if job.slots[slot].delivery.is_some() {
            return Err(TxError::SlotFilled(c.provider));
        }
        if c.module_id != job.module_id {
            return Err(TxError::Mismatch("module_id"));
        }
        if c.input_hash != job.input_hash {
            return Err(TxError::Mismatch("input_hash"));
        }
        if c.fuel_used > job.fuel_limit {
            return Err(TxError::Mismatch("fuel_used is above the fuel limit"));
        }
        if c.status == JobStatus::OutOfFuel && c.fuel_used != job.fuel_limit {
            return Err(TxError::Mismatch("an out-of-fuel result must use exactly the fuel limit"));
        }
        Ok(())
    }

    /// Applies one transaction in block `height`. On error nothing changed.
    /// Returns the receipt a result transaction produces.
    /// Its signature is checked through `sigs` (verified, unless this node's cache knows exactly
    /// this transaction as verified); a challenge or a dispute re-executes the job through `exec`.
    pub fn apply_tx(
        &mut self,
        tx: &Transaction,
        height: u64,
        exec: &mut dyn Reexecute,
        sigs: &mut dyn SignatureCheck,
    ) -> Result<Option<ExecutionReceipt>> {
        sigs.check(tx, self.params.output_bytes_max as usize)?;
        match tx {
            Transaction::Offer(signed) => {
                let escrow = self.offer_rules(signed, height, NonceRule::Exact)?;
                let o = &signed.offer;
                let job_id = signed.job_id();
                let mut account = self.account(&o.client);
                // The fee is burned: it leaves the total value, on top of the escrow locked.
                account.balance -= escrow + o.fee;
                account.nonce = account.nonce.checked_add(1).ok_or(TxError::Overflow("nonce"))?;
                let ranking = self.ranking(&job_id, o.max_price, &o.placement, RANKING_MAX);
                let k = o.redundancy;
                debug_assert!(ranking.len() >= usize::from(k), "checked: k eligible providers");
                let slots =
                    (0..k).map(|i| Slot { holders: vec![i], assigned_height: height, delivery: None }).collect();
                let job = Job {
                    client: o.client,
                    module_id: o.module_id,
                    input_hash: o.input_hash(),
                    fuel_limit: o.fuel_limit,
                    max_price: o.max_price,
                    escrow,
                    deadline_height: o.deadline_height,
                    ranking,
                    slots,
                    next: k,
                    phase: JobPhase::Open,
                    verified: None,
                    forfeit: 0,
                    paid: 0,
                    settle_height: 0,
                    challenge: None,
                };
                let assigned = job.assigned();
                self.set_account(o.client, account);
                self.set_job(job_id, job);
                for a in assigned {
                    self.count_job(a, 1);
                }
                Ok(None)
            }
            Transaction::Result(result) => {
                self.result_rules(result, height)?;
                let c = &result.claim;
                let job_id = c.job_id;
                let mut job = self.job(&job_id).cloned().expect("checked above");
                let slot = job.slot_of(&c.provider).expect("checked above");
                let ask = self.provider(&c.provider).map_or(job.max_price, |p| p.price_per_fuel.min(job.max_price));
                let payment = c.fuel_used.checked_mul(ask).ok_or(TxError::Overflow("payment"))?;
                let promised: u64 = job.deliveries().map(|d| d.payment).sum();
                if promised.checked_add(payment).is_none_or(|total| total > job.escrow) {
                    return Err(TxError::Overflow("payments above the escrow"));
                }
                let outcome = Outcome::of(c);
                let holder = job.holder(&job.slots[slot]);
                job.slots[slot].delivery = Some(Delivery { provider: c.provider, outcome, payment });
                if let Some(h) = holder {
                    self.count_job(h, -1);
                }
                // Once the job was re-executed, a later result is checked against the verdict
                // as it arrives. Before, results that disagree wait for a `Resolve`
                // (`needs_resolution`): nothing is re-executed here.
                if let Some(truth) = job.verified
                    && outcome != truth
                {
                    job.forfeit += self.slash(c.provider);
                }
                if job.slots.iter().all(|s| s.delivery.is_some()) {
                    self.close_with_results(&mut job, height);
                }
                self.set_job(job_id, job);
                Ok(Some(result.receipt()))
            }
            Transaction::Account(signed) => {
                self.account_rules(signed, NonceRule::Exact)?;
                self.apply_account_tx(&signed.tx, height)?;
                Ok(None)
            }
            Transaction::Resolve { job_id } => {
                self.resolve_rules(job_id)?;
                let job = self.job(job_id).cloned().expect("checked above");
                // The verdict first: if re-execution fails nothing changes.
                let truth = exec.reexecute(job_id, &job)?;
                self.resolve(*job_id, job, truth, height);
                Ok(None)
            }
        }
    }

    /// Settles what waited for a job's re-execution, now that it gave `truth`.
    ///
    /// - A challenge: if the results were right, the bond is split evenly between the providers
    ///   that delivered (any remainder to the first) and the job completes again, to settle at
    ///   its settlement height (at once if that has passed); if they were wrong, every provider
    ///   that delivered is slashed to the challenger, who gets the bond back, and the client
    ///   gets the whole escrow back.
    /// - A dispute: the verdict is kept, every delivered result it contradicts is slashed into
    ///   the job's forfeit; a closed job settles ([`State::settle_verified`]); an open one takes
    ///   its remaining results, each checked against the verdict as it arrives.
    fn resolve(&mut self, job_id: Hash, mut job: Job, truth: Outcome, height: u64) {
        if let Some(challenge) = job.challenge.take() {
            let providers: Vec<PublicKey> = job.deliveries().map(|d| d.provider).collect();
            if job.agreed() == Some(truth) {
                let n = providers.len() as u64;
                for (i, p) in providers.iter().enumerate() {
                    let remainder = if i == 0 { challenge.bond % n } else { 0 };
                    self.credit(*p, challenge.bond / n + remainder);
                }
                job.phase = JobPhase::Completed;
            } else {
                let mut slashed = 0u64;
                for p in providers {
                    slashed += self.slash(p);
                }
                self.credit(challenge.challenger, challenge.bond + slashed);
                self.credit(job.client, job.escrow);
                job.phase = JobPhase::Slashed;
                job.settle_height = height;
                job.paid = 0;
            }
        } else {
            job.verified = Some(truth);
            let wrong: Vec<PublicKey> = job.deliveries().filter(|d| d.outcome != truth).map(|d| d.provider).collect();
            for p in wrong {
                job.forfeit += self.slash(p);
            }
            if job.phase == JobPhase::Disputed {
                self.settle_verified(&mut job, height);
            }
        }
        self.set_job(job_id, job);
    }

    /// Checks an account transaction (its signature included) against the rules and this state,
    /// without applying it.
    pub fn check_account_tx(&self, signed: &SignedTx, nonce_rule: NonceRule) -> Result<()> {
        signed.verify()?;
        self.account_rules(signed, nonce_rule)
    }

    /// The rules of an account transaction, its signature aside (checked by the caller).
    fn account_rules(&self, signed: &SignedTx, nonce_rule: NonceRule) -> Result<()> {
        let tx = &signed.tx;
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain);
        }
        if tx.fee < self.params.tx_fee_min {
            return Err(TxError::Limit(Limit::Fee { min: self.params.tx_fee_min }));
        }
        let account = self.account(&tx.sender);
        nonce_rule.check(account.nonce, tx.nonce)?;
        let spend = match &tx.action {
            Action::Transfer { amount, .. } => *amount,
            Action::RegisterProvider { stake, capacity, region, .. } => {
                if *capacity == 0 {
                    return Err(TxError::Limit(Limit::Capacity));
                }
                provider_region_rule(region)?;
                if self.provider(&tx.sender).is_none() && self.providers.len() >= PROVIDERS_MAX {
                    return Err(TxError::Limit(Limit::Providers { max: PROVIDERS_MAX }));
                }
                let existing = self.provider(&tx.sender).map_or(0, |p| p.stake);
                if existing.saturating_add(*stake) < self.params.stake_min {
                    return Err(TxError::Limit(Limit::Stake { min: self.params.stake_min }));
                }
                *stake
            }
            Action::UpdatePrice { .. } => {
                self.provider(&tx.sender).ok_or(TxError::NotProvider(tx.sender))?;
                0
            }
            Action::UpdateRegion { region } => {
                self.provider(&tx.sender).ok_or(TxError::NotProvider(tx.sender))?;
                provider_region_rule(region)?;
                0
            }
            Action::Unbond { amount } => {
                let p = self.provider(&tx.sender).ok_or(TxError::NotProvider(tx.sender))?;
                if *amount == 0 || *amount > p.stake {
                    return Err(TxError::Limit(Limit::Unbond { stake: p.stake }));
                }
                if p.unbonding.len() >= UNBONDING_ENTRIES_MAX {
                    return Err(TxError::Limit(Limit::Unbondings { max: UNBONDING_ENTRIES_MAX }));
                }
                0
            }
            Action::Challenge { job_id, bond } => {
                let job = self.jobs.get(job_id).ok_or(TxError::UnknownJob(*job_id))?;
                if job.phase != JobPhase::Completed {
                    return Err(TxError::Limit(Limit::NotChallengeable));
                }
                if *bond < self.params.challenge_bond_min {
                    return Err(TxError::Limit(Limit::Bond { min: self.params.challenge_bond_min }));
                }
                *bond
            }
        };
        let needed = tx.fee.checked_add(spend).ok_or(TxError::Overflow("fee + amount"))?;
        let available = account.balance.saturating_sub(nonce_rule.promised());
        if available < needed {
            return Err(TxError::InsufficientBalance { balance: available, escrow: needed });
        }
        Ok(())
    }

    fn apply_account_tx(&mut self, tx: &Tx, height: u64) -> Result<()> {
        if let Action::Challenge { job_id, .. } = &tx.action {
            let job = self.jobs.get(job_id).expect("checked: the job exists");
            if height >= job.settle_height {
                return Err(TxError::Limit(Limit::ChallengeWindowClosed));
            }
        }
        let mut sender = self.account(&tx.sender);
        sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow("nonce"))?;
        // The fee is burned: it leaves the total value.
        sender.balance -= tx.fee;
        match &tx.action {
            Action::Transfer { to, amount } => {
                sender.balance -= amount;
                self.set_account(tx.sender, sender);
                self.credit(*to, *amount);
            }
            Action::RegisterProvider { stake, price_per_fuel, capacity, region } => {
                sender.balance -= stake;
                self.set_account(tx.sender, sender);
                let mut p = self.provider(&tx.sender).cloned().unwrap_or(Provider {
                    price_per_fuel: *price_per_fuel,
                    stake: 0,
                    capacity: *capacity,
                    active_jobs: 0,
                    unbonding: vec![],
                    jobs_done: 0,
                    slashes: 0,
                    missed: 0,
                    region: String::new(),
                });
                p.stake += stake;
                p.price_per_fuel = *price_per_fuel;
                p.capacity = *capacity;
                p.region.clone_from(region);
                self.set_provider(tx.sender, p);
            }
            Action::UpdateRegion { region } => {
                self.set_account(tx.sender, sender);
                let mut p = self.provider(&tx.sender).cloned().expect("checked: a provider");
                p.region.clone_from(region);
                self.set_provider(tx.sender, p);
            }
            Action::UpdatePrice { price_per_fuel } => {
                self.set_account(tx.sender, sender);
                let mut p = self.provider(&tx.sender).cloned().expect("checked: a provider");
                p.price_per_fuel = *price_per_fuel;
                self.set_provider(tx.sender, p);
            }
            Action::Unbond { amount } => {
                self.set_account(tx.sender, sender);
                let mut p = self.provider(&tx.sender).cloned().expect("checked: a provider");
                p.stake -= amount;
                p.unbonding.push((height + self.params.unbonding_blocks, *amount));
                self.set_provider(tx.sender, p);
            }
            Action::Challenge { job_id, bond } => {
                // The bond is held in the job; settlement waits for the re-execution, which a
                // later block resolves (`Resolve`, see [`State::resolve`]).
                sender.balance -= bond;
                self.set_account(tx.sender, sender);
                let mut job = self.job(job_id).cloned().expect("checked: the job exists");
                job.challenge = Some(Challenge { challenger: tx.sender, bond: *bond });
                job.phase = JobPhase::Challenged;
                self.set_job(*job_id, job);
            }
        }
        Ok(())
    }

    /// Takes `slash_bps` of a provider's stake, unbonding stake included (unbonding right after
    /// a wrong result must not escape the slash): from the stake first, then the newest
    /// unbonding entries. Returns the amount taken, for the caller to hand on.
    fn slash(&mut self, provider: PublicKey) -> u64 {
        let mut p = self.provider(&provider).cloned().expect("results come from providers");
        let unbonding: u64 = p.unbonding.iter().map(|(_, a)| a).sum();
        let slashable = u128::from(p.stake) + u128::from(unbonding);
        let slash = u64::try_from(slashable * u128::from(self.params.slash_bps) / 10_000)
            .expect("slash_bps ≤ 10,000: at most the provider's own value");
        let from_stake = slash.min(p.stake);
        p.stake -= from_stake;
        let mut rest = slash - from_stake;
        for (_, amount) in p.unbonding.iter_mut().rev() {
            let take = rest.min(*amount);
            *amount -= take;
            rest -= take;
        }
        p.unbonding.retain(|(_, amount)| *amount > 0);
        p.slashes += 1;
        self.set_provider(provider, p);
        slash
    }

    /// Settles a job whose results were re-executed (all k in, or its deadline passed): the
    /// providers whose result matches the re-execution are paid and share the stake slashed
    /// from the others evenly (any remainder to the client); the client gets the rest of the
    /// escrow. With no provider right the whole forfeit goes to the client and the job is
    /// *slashed*. The caller stores the job; `height` is the block's.
    fn settle_verified(&mut self, job: &mut Job, height: u64) {
        let truth = job.verified.expect("settle_verified is for re-executed jobs");
        let right: Vec<Delivery> = job.deliveries().filter(|d| d.outcome == truth).copied().collect();
        let paid: u64 = right.iter().map(|d| d.payment).sum();
        let mut to_client = job.escrow - paid;
        if right.is_empty() {
            to_client += job.forfeit;
            job.phase = JobPhase::Slashed;
        } else {
            let n = right.len() as u64;
            for d in &right {
                self.credit(d.provider, d.payment + job.forfeit / n);
                self.count_done(d.provider);
            }
            to_client += job.forfeit % n;
            job.phase = JobPhase::Settled;
        }
        self.credit(job.client, to_client);
        job.paid = paid;
        job.settle_height = height;
    }

    /// End of block `height`, in order: the height entry moves; jobs that reached a final phase
    /// at least [`JOB_RETENTION_BLOCKS`] ago leave the state; completed jobs whose challenge window has passed settle
    /// (the providers are paid, the client refunded the rest); unbonded stake due is released;
    /// each slot whose holder has not delivered within `delivery_blocks` passes to the next
    /// ranked provider; open jobs past their deadline close, the earliest deadlines first and at
    /// most [`DEADLINE_CLOSES_PER_BLOCK_MIN`] or `block_txs_max` of them: the holders of
    /// undelivered slots pay a penalty from their stake to the client, and the job settles
    /// with what was delivered (see [`State::close_at_deadline`]). Returns the jobs that
    /// expired without any result.
    pub fn end_block(&mut self, height: u64) -> Vec<Hash> {
        self.end_block_closing(height).expired
    }

    /// [`State::end_block`], returning every job closed at its deadline: those that expired
    /// and those that completed or settled with the results they had.
    pub fn end_block_closing(&mut self, height: u64) -> Closed {
        self.put(StateKey::Height, Some(Value::Height(height)));
        let mut closed = Closed::default();
        let retiring: Vec<Hash> = self
            .finished
            .iter()
            .take_while(|(at, _)| at.saturating_add(JOB_RETENTION_BLOCKS) <= height)
            .map(|(_, id)| *id)
            .collect();
        for id in retiring {
            let job = self.job(&id).cloned().expect("finished index follows jobs");
            self.put(StateKey::Job(id), None);
            closed.retired.push((id, job));
        }
        let settled: Vec<Hash> = self.settling.iter().take_while(|(at, _)| *at <= height).map(|(_, id)| *id).collect();
        for id in settled {
            let mut job = self.job(&id).cloned().expect("settling index follows jobs");
            for d in job.deliveries() {
                self.credit(d.provider, d.payment);
                self.count_done(d.provider);
            }
            self.credit(job.client, job.escrow - job.paid);
            job.phase = JobPhase::Settled;
            job.settle_height = height;
            self.set_job(id, job);
        }
        let mut releasing: Vec<PublicKey> =
            self.releasing.iter().take_while(|(at, _)| *at <= height).map(|(_, a)| *a).collect();
        releasing.sort();
        releasing.dedup();
        for address in releasing {
            let mut p = self.providers.get(&address).cloned().expect("releasing index follows providers");
            let released: u64 = p.unbonding.iter().filter(|(at, _)| *at <= height).map(|(_, amount)| amount).sum();
            p.unbonding.retain(|(at, _)| *at > height);
            self.set_provider(address, p);
            self.credit(address, released);
        }
        let late: Vec<Hash> = self.reassigning.iter().take_while(|(at, _)| *at <= height).map(|(_, id)| *id).collect();
        let delivery = self.params.delivery_blocks;
        for id in late {
            let mut job = self.job(&id).cloned().expect("reassigning index follows jobs");
            if job.deadline_height < height {
                continue;
            }
            // Slots in order, each replaced independently by the next unused ranked provider.
            let mut moves = Vec::new();
            for i in 0..job.slots.len() {
                let slot = &job.slots[i];
                let is_late = slot.delivery.is_none() && height.saturating_sub(slot.assigned_height) >= delivery;
                if !is_late || usize::from(job.next) >= job.ranking.len() {
                    continue;
                }
                let old = job.holder(slot);
                let slot = &mut job.slots[i];
                slot.holders.push(job.next);
                slot.assigned_height = height;
                moves.push((old, job.ranking[usize::from(job.next)]));
                job.next += 1;
            }
            self.set_job(id, job);
            for (old, new) in moves {
                if let Some(o) = old {
                    self.count_job(o, -1);
                }
                self.count_job(new, 1);
            }
        }
        let due: Vec<Hash> = self
            .open
            .iter()
            .take_while(|(deadline, _)| *deadline < height)
            .take(DEADLINE_CLOSES_PER_BLOCK_MIN.max(self.params.block_txs_max as usize))
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            if self.close_at_deadline(id, height) {
                closed.expired.push(id);
            } else {
                closed.with_results.push(id);
            }
        }
        closed
    }

    /// Closes an open job whose deadline has passed. The holder of each slot without a result
    /// pays `missed_deadline_penalty_bps` of its stake to the client. Then: no result at all —
    /// the job *expires*, the escrow returns to the client (returns `true`); results that were
    /// re-executed — they settle as when all k are in ([`State::settle_verified`]); results
    /// that agree — the job completes with them alone (paid at settlement, challengeable in
    /// the window like any completed job).
    fn close_at_deadline(&mut self, id: Hash, height: u64) -> bool {
        let mut job = self.job(&id).cloned().expect("open index follows jobs");
        let missing: Vec<PublicKey> =
            job.slots.iter().filter(|s| s.delivery.is_none()).filter_map(|s| job.holder(s)).collect();
        for a in missing {
            self.count_job(a, -1);
            let mut p = self.providers.get(&a).cloned().expect("assignees are providers");
            let penalty =
                u64::try_from(u128::from(p.stake) * u128::from(self.params.missed_deadline_penalty_bps) / 10_000)
                    .expect("at most the stake");
            p.stake -= penalty;
            p.missed += 1;
            self.set_provider(a, p);
            self.credit(job.client, penalty);
        }
        let expired = job.deliveries().next().is_none();
        if expired {
            job.phase = JobPhase::Expired;
            job.settle_height = height;
            self.credit(job.client, job.escrow);
        } else {
            self.close_with_results(&mut job, height);
        }
        self.set_job(id, job);
        expired
    }

    /// Closes a job on the results it has (all k, or those in by its deadline): re-executed
    /// ones settle at once ([`State::settle_verified`]); agreeing ones complete — paid at
    /// settlement, once the challenge window has passed. The caller stores the job.
    fn close_with_results(&mut self, job: &mut Job, height: u64) {
        if job.verified.is_some() {
            self.settle_verified(job, height);
        } else if job.agreed().is_some() {
            job.phase = JobPhase::Completed;
            job.paid = job.deliveries().map(|d| d.payment).sum();
            job.settle_height = height + self.params.challenge_window_blocks;
        } else {
            // Results that disagree: settled by the re-execution (`Resolve`).
            job.phase = JobPhase::Disputed;
        }
    }

    /// Undoes every change since the last commit.
    pub fn rollback(&mut self) {
        let journal = std::mem::take(&mut self.journal);
        for (key, old) in journal {
            self.put(key, old);
        }
        self.journal.clear();
    }

    /// The changes since the last commit, as store writes (in key order). Encoded once: the
    /// block's state root and its commit share the encoding until the state changes again.
    pub fn pending_changes(&self) -> &[StateChange] {
        self.encoded.get_or_init(|| {
            self.journal.keys().map(|key| (key.to_bytes(), self.get(key).map(|v| v.to_bytes()))).collect()
        })
    }

    /// Accepts every change since the last commit and returns them as store writes.
    pub fn commit(&mut self) -> Vec<StateChange> {
        self.pending_changes();
        let changes = self.encoded.take().expect("just encoded");
        self.journal.clear();
        changes
    }

    /// Sum of balances, stakes, unbonding stakes, escrows of open and completed jobs and the
    /// forfeits open jobs hold: changed only by burned fees.
    pub fn total_value(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| u128::from(a.balance)).sum();
        let stakes: u128 = self
            .providers
            .values()
            .map(|p| u128::from(p.stake) + p.unbonding.iter().map(|(_, a)| u128::from(*a)).sum::<u128>())
            .sum();
        let escrows: u128 = self
            .jobs
            .values()
            .map(|j| match j.phase {
                // Stake slashed by a re-execution waits in the job until it settles.
                JobPhase::Open | JobPhase::Disputed => u128::from(j.escrow) + u128::from(j.forfeit),
                JobPhase::Completed => u128::from(j.escrow),
                // The challenger's bond waits in the job too.
                JobPhase::Challenged => u128::from(j.escrow) + j.challenge.map_or(0, |c| u128::from(c.bond)),
                JobPhase::Expired | JobPhase::Settled | JobPhase::Slashed => 0,
            })
            .sum();
        balances + stakes + escrows
    }
}

/// `-log2(x / 2^64)` in Q32 fixed point (integer part in the high bits), for `x` in
/// `[0, 2^64)` with `x = 0` read as `2^-64`. Pure integer arithmetic: identical on every node.
fn neg_log2_q32(x: u64) -> u128 {
    if x == 0 {
        return 64u128 << 32;
    }
    let n = u128::from(x.leading_zeros());
    // m in [2^63, 2^64): x / 2^64 = (m / 2^64) * 2^-n, and m / 2^64 in [1/2, 1).
    let m = u128::from(x << x.leading_zeros());
    // z = 2m / 2^64 in [1, 2), in Q63; log2(x / 2^64) = log2(z) - 1 - n.
    let one = 1u128 << 63;
    let mut z = m; // m / 2^64 * 2 = m / 2^63: z in Q63 is m itself.
    let mut frac: u128 = 0;
    for bit in (0..32).rev() {
        z = (z * z) >> 63;
        if z >= 2 * one {
            z >>= 1;
            frac |= 1 << bit;
        }
    }
    // -log2 = 1 + n - log2(z); with log2(z) = frac / 2^32 in [0, 1).
    ((1 + n) << 32) - frac
}

#[cfg(test)]
mod tests;
