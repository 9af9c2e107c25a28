//! The chain state and its transition rules.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{
    Action, ChainParams, ExecutionReceipt, Genesis, Hash, JobResult, JobStatus, PublicKey, ResultClaim, SignedOffer,
    SignedTx, StateChange, Transaction, Tx,
};

use crate::{Result, TxError};

/// An account: a balance and the nonce of its next offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// The nonce the account's next offer must carry.
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
}

/// The most unbonding entries a provider may have at once.
pub const UNBONDING_ENTRIES_MAX: usize = 16;
/// How many providers a job's ranking keeps (the assignee and its stand-ins).
pub const RANKING_MAX: usize = 8;

/// Where a job is in its life on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
pub enum JobPhase {
    /// Escrow locked, waiting for a result.
    Open = 0,
    /// A result was accepted; the provider was paid and the client refunded the rest.
    Completed = 1,
    /// No result by the deadline; the escrow was refunded.
    Expired = 2,
    /// The challenge window passed: the provider was paid, the client refunded the rest.
    Settled = 3,
    /// A challenge proved the result wrong: the provider was slashed, the client refunded.
    Slashed = 4,
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
    /// The escrow locked.
    pub escrow: u64,
    /// The height after which the job expires.
    pub deadline_height: u64,
    /// The providers ranked for the job (best first, at most [`RANKING_MAX`]).
    pub ranking: Vec<PublicKey>,
    /// Index in `ranking` of the provider currently assigned.
    pub current: u8,
    /// The height at which the current provider was assigned.
    pub assigned_height: u64,
    /// Where the job is in its life.
    pub phase: JobPhase,
    /// What the provider is paid (fixed when its result is accepted, paid at settlement).
    pub paid: u64,
    /// The accepted result's claim.
    pub claim: Option<ResultClaim>,
    /// The height at which an accepted result settles, if unchallenged.
    pub settle_height: u64,
}

impl Job {
    /// The providers whose result is accepted: the current assignee and those ranked before it
    /// (a late delivery from a replaced provider still counts).
    pub fn assignees(&self) -> &[PublicKey] {
        let n = (usize::from(self.current) + 1).min(self.ranking.len());
        &self.ranking[..n]
    }

    /// The provider currently assigned.
    pub fn assignee(&self) -> Option<PublicKey> {
        self.ranking.get(usize::from(self.current)).copied()
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
    Job(Box<Job>),
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

/// Re-executes a job for a challenge: the caller owns the modules and inputs (blocks, blob
/// store) and the sandbox; this crate stays pure.
pub trait Reexecute {
    /// `(output_hash, fuel_used, status)` of running `job` (module, input, fuel limit), exactly
    /// as a provider's result would state them.
    fn reexecute(&mut self, job_id: &Hash, job: &Job) -> Result<(Hash, u64, JobStatus), String>;
}

/// For blocks without challenges, and for checks: refuses to re-execute.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReexecution;

impl Reexecute for NoReexecution {
    fn reexecute(&mut self, _: &Hash, _: &Job) -> Result<(Hash, u64, JobStatus), String> {
        Err("re-execution is not available here".into())
    }
}

/// How strictly an offer's nonce is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceRule {
    /// Block execution: the nonce must be the account's next one.
    Exact,
    /// Mempool admission: any nonce from the account's next one on (later ones wait their turn).
    NotBelow,
}

/// The chain state: accounts, providers and jobs, with a journal of uncommitted changes.
#[derive(Clone, Debug)]
pub struct State {
    params: ChainParams,
    chain_id: Hash,
    height: u64,
    accounts: BTreeMap<PublicKey, Account>,
    providers: BTreeMap<PublicKey, Provider>,
    jobs: BTreeMap<Hash, Job>,
    /// Open jobs by deadline (derived from `jobs`).
    open: BTreeSet<(u64, Hash)>,
    /// Completed jobs by settlement height (derived from `jobs`).
    settling: BTreeSet<(u64, Hash)>,
    /// Value of each key before the first uncommitted change to it.
    journal: BTreeMap<StateKey, Option<Value>>,
}

impl State {
    fn empty(params: ChainParams, chain_id: Hash) -> State {
        State {
            params,
            chain_id,
            height: 0,
            accounts: BTreeMap::new(),
            providers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            open: BTreeSet::new(),
            settling: BTreeSet::new(),
            journal: BTreeMap::new(),
        }
    }

    /// The state at genesis (committed: nothing is journaled).
    pub fn from_genesis(genesis: &Genesis) -> Result<State> {
        genesis.validate()?;
        let total: u128 = genesis.accounts.iter().map(|a| u128::from(a.balance)).sum::<u128>()
            + genesis.providers.iter().map(|p| u128::from(p.stake)).sum::<u128>();
        if total > u128::from(u64::MAX) {
            return Err(TxError::Limit("genesis balances and stakes add up to more than u64::MAX".into()));
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
            };
            s.put(StateKey::Provider(p.address), Some(Value::Provider(provider)));
        }
        s.put(StateKey::Height, Some(Value::Height(0)));
        s.journal.clear();
        Ok(s)
    }

    /// The state with `entries` (as stored, genesis included).
    pub fn from_entries(genesis: &Genesis, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<State> {
        let mut s = State::from_genesis(genesis)?;
        for (k, v) in entries {
            let key = StateKey::from_bytes(k).ok_or_else(|| TxError::Invalid("bad state key in store".into()))?;
            let corrupt = |e: std::io::Error| TxError::Invalid(format!("bad state value in store: {e}"));
            let value = match key {
                StateKey::Height => Value::Height(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Account(_) => Value::Account(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Provider(_) => Value::Provider(borsh::from_slice(v).map_err(corrupt)?),
                StateKey::Job(_) => Value::Job(Box::new(borsh::from_slice(v).map_err(corrupt)?)),
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
            StateKey::Job(j) => self.jobs.get(j).cloned().map(|j| Value::Job(Box::new(j))),
        }
    }

    /// The one place state changes: journals the old value and keeps the derived indexes.
    fn put(&mut self, key: StateKey, value: Option<Value>) {
        if !self.journal.contains_key(&key) {
            let old = self.get(&key);
            self.journal.insert(key, old);
        }
        if let StateKey::Job(id) = key
            && let Some(old) = self.jobs.get(&id)
        {
            self.open.remove(&(old.deadline_height, id));
            self.settling.remove(&(old.settle_height, id));
        }
        match (key, value) {
            (StateKey::Height, Some(Value::Height(h))) => self.height = h,
            (StateKey::Height, None) => self.height = 0,
            (StateKey::Account(a), Some(Value::Account(v))) => {
                self.accounts.insert(a, v);
            }
            (StateKey::Provider(p), Some(Value::Provider(v))) => {
                self.providers.insert(p, v);
            }
            (StateKey::Job(id), Some(Value::Job(j))) => {
                match j.phase {
                    JobPhase::Open => {
                        self.open.insert((j.deadline_height, id));
                    }
                    JobPhase::Completed => {
                        self.settling.insert((j.settle_height, id));
                    }
                    _ => {}
                }
                self.jobs.insert(id, *j);
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
        self.put(StateKey::Job(id), Some(Value::Job(Box::new(job))));
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
        self.jobs.get(id)
    }

    /// Whether blocks must keep coming even with nothing to include: open jobs (delivery and
    /// deadline clocks), results waiting to settle, stake waiting to unbond.
    pub fn has_pending_work(&self) -> bool {
        !self.open.is_empty() || !self.settling.is_empty() || self.providers.values().any(|p| !p.unbonding.is_empty())
    }

    /// The open jobs, by deadline.
    pub fn open_jobs(&self) -> impl Iterator<Item = (&Hash, &Job)> {
        self.open.iter().map(|(_, id)| (id, self.jobs.get(id).expect("open index follows jobs")))
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

    /// Providers eligible for a job at `max_price`: stake at least `stake_min`, ask at most
    /// `max_price`, capacity left.
    fn eligible(&self, max_price: u64) -> impl Iterator<Item = (&PublicKey, &Provider)> {
        let stake_min = self.params.stake_min;
        self.providers.iter().filter(move |(_, p)| {
            p.stake >= stake_min && p.stake > 0 && p.price_per_fuel <= max_price && p.active_jobs < p.capacity
        })
    }

    /// The providers ranked for a job: eligible ones ordered by stake-weighted rendezvous
    /// hashing of `(job_id, provider)` — each draws `-log2(u)` from `u = sha256(job_id ||
    /// provider)` and is ranked by `-log2(u) / stake`, smallest first, so a provider's chance to
    /// rank first is proportional to its stake — at most `n` of them.
    pub fn ranking(&self, job_id: &Hash, max_price: u64, n: usize) -> Vec<PublicKey> {
        let mut scored: Vec<(u128, u64, PublicKey)> = self
            .eligible(max_price)
            .map(|(addr, p)| {
                let h = Hash::of_parts(&[&job_id.0, &addr.0]);
                let u = u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes"));
                (neg_log2_q32(u), p.stake, *addr)
            })
            .collect();
        // a/sa < b/sb  ⇔  a·sb < b·sa (no division, exact in u128: a < 2^39, stakes < 2^64).
        scored.sort_by(|(a, sa, pa), (b, sb, pb)| (a * u128::from(*sb)).cmp(&(b * u128::from(*sa))).then(pa.cmp(pb)));
        scored.into_iter().take(n).map(|(_, _, a)| a).collect()
    }

    /// The first `k` ranked providers: who executes the job now.
    pub fn assignment(&self, job_id: &Hash, max_price: u64, k: usize) -> Vec<PublicKey> {
        self.ranking(job_id, max_price, k)
    }

    /// Checks an offer against the rules and this state, at block `height`, without applying it.
    /// Returns the escrow it would lock.
    pub fn check_offer(&self, signed: &SignedOffer, height: u64, nonce_rule: NonceRule) -> Result<u64> {
        signed.verify()?;
        let o = &signed.offer;
        let p = &self.params;
        if o.chain_id != self.chain_id {
            return Err(TxError::WrongChain);
        }
        if o.redundancy != 1 {
            return Err(TxError::Limit("redundancy must be 1 on this chain".into()));
        }
        if o.fuel_limit == 0 || o.fuel_limit > p.fuel_limit_max {
            return Err(TxError::Limit(format!("fuel_limit must be between 1 and {}", p.fuel_limit_max)));
        }
        if o.input.len() > p.input_bytes_max as usize {
            return Err(TxError::Limit(format!("input is larger than {} bytes", p.input_bytes_max)));
        }
        if o.assignment_height >= height || height - o.assignment_height > p.assignment_window_blocks {
            return Err(TxError::Limit(format!(
                "assignment_height {} must be a finalized height within {} blocks of the head {}",
                o.assignment_height,
                p.assignment_window_blocks,
                height - 1
            )));
        }
        if o.deadline_height < height || o.deadline_height - height > p.deadline_max_blocks {
            return Err(TxError::Limit(format!(
                "deadline_height {} must be between {height} and {}",
                o.deadline_height,
                height + p.deadline_max_blocks
            )));
        }
        let job_id = signed.job_id();
        if self.jobs.contains_key(&job_id) {
            return Err(TxError::DuplicateJob(job_id));
        }
        let account = self.account(&o.client);
        let nonce_ok = match nonce_rule {
            NonceRule::Exact => o.nonce == account.nonce,
            NonceRule::NotBelow => o.nonce >= account.nonce,
        };
        if !nonce_ok {
            return Err(TxError::Nonce { expected: account.nonce, got: o.nonce });
        }
        let escrow = o.escrow()?;
        if account.balance < escrow {
            return Err(TxError::InsufficientBalance { balance: account.balance, escrow });
        }
        if self.eligible(o.max_price).next().is_none() {
            return Err(TxError::NoProvider { max_price: o.max_price });
        }
        Ok(escrow)
    }

    /// Checks a result against its job, without applying it.
    pub fn check_result(&self, result: &JobResult) -> Result<()> {
        result.verify(self.params.output_bytes_max as usize)?;
        let c = &result.claim;
        let job = self.jobs.get(&c.job_id).ok_or(TxError::UnknownJob(c.job_id))?;
        if job.phase != JobPhase::Open {
            return Err(TxError::JobClosed(c.job_id));
        }
        if !job.assignees().contains(&c.provider) {
            return Err(TxError::NotAssigned(c.provider));
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
    /// A challenge re-executes the job through `exec`.
    pub fn apply_tx(
        &mut self,
        tx: &Transaction,
        height: u64,
        exec: &mut dyn Reexecute,
    ) -> Result<Option<ExecutionReceipt>> {
        match tx {
            Transaction::Offer(signed) => {
                let escrow = self.check_offer(signed, height, NonceRule::Exact)?;
                let o = &signed.offer;
                let job_id = signed.job_id();
                let mut account = self.account(&o.client);
                account.balance -= escrow;
                account.nonce = account.nonce.checked_add(1).ok_or(TxError::Overflow("nonce"))?;
                let ranking = self.ranking(&job_id, o.max_price, RANKING_MAX);
                let job = Job {
                    client: o.client,
                    module_id: o.module_id,
                    input_hash: o.input_hash(),
                    fuel_limit: o.fuel_limit,
                    max_price: o.max_price,
                    escrow,
                    deadline_height: o.deadline_height,
                    ranking,
                    current: 0,
                    assigned_height: height,
                    phase: JobPhase::Open,
                    paid: 0,
                    claim: None,
                    settle_height: 0,
                };
                let assignee = job.assignee();
                self.set_account(o.client, account);
                self.set_job(job_id, job);
                if let Some(a) = assignee {
                    self.count_job(a, 1);
                }
                Ok(None)
            }
            Transaction::Result(result) => {
                self.check_result(result)?;
                let c = &result.claim;
                let mut job = self.jobs.get(&c.job_id).cloned().expect("checked above");
                let ask = self.provider(&c.provider).map_or(job.max_price, |p| p.price_per_fuel.min(job.max_price));
                let assignee = job.assignee();
                let payment = c.fuel_used.checked_mul(ask).ok_or(TxError::Overflow("payment"))?;
                if payment > job.escrow {
                    return Err(TxError::Overflow("payment above the escrow"));
                }
                let receipt = result.receipt();
                // Paid at settlement, once the challenge window has passed.
                job.phase = JobPhase::Completed;
                job.paid = payment;
                job.claim = Some(c.clone());
                job.settle_height = height + self.params.challenge_window_blocks;
                if let Some(a) = assignee {
                    self.count_job(a, -1);
                }
                self.set_job(c.job_id, job);
                Ok(Some(receipt))
            }
            Transaction::Account(signed) => {
                self.check_account_tx(signed, NonceRule::Exact)?;
                self.apply_account_tx(&signed.tx, height, exec)?;
                Ok(None)
            }
        }
    }

    /// Checks an account transaction against the rules and this state, without applying it.
    pub fn check_account_tx(&self, signed: &SignedTx, nonce_rule: NonceRule) -> Result<()> {
        signed.verify()?;
        let tx = &signed.tx;
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain);
        }
        if tx.fee < self.params.tx_fee_min {
            return Err(TxError::Limit(format!("the fee must be at least {}", self.params.tx_fee_min)));
        }
        let account = self.account(&tx.sender);
        let nonce_ok = match nonce_rule {
            NonceRule::Exact => tx.nonce == account.nonce,
            NonceRule::NotBelow => tx.nonce >= account.nonce,
        };
        if !nonce_ok {
            return Err(TxError::Nonce { expected: account.nonce, got: tx.nonce });
        }
        let spend = match &tx.action {
            Action::Transfer { amount, .. } => *amount,
            Action::RegisterProvider { stake, capacity, .. } => {
                if *capacity == 0 {
                    return Err(TxError::Limit("a provider's capacity must be at least 1".into()));
                }
                let existing = self.provider(&tx.sender).map_or(0, |p| p.stake);
                if existing.saturating_add(*stake) < self.params.stake_min {
                    return Err(TxError::Limit(format!(
                        "a provider's stake must be at least {}",
                        self.params.stake_min
                    )));
                }
                *stake
            }
            Action::UpdatePrice { .. } => {
                self.provider(&tx.sender).ok_or(TxError::NotProvider(tx.sender))?;
                0
            }
            Action::Unbond { amount } => {
                let p = self.provider(&tx.sender).ok_or(TxError::NotProvider(tx.sender))?;
                if *amount == 0 || *amount > p.stake {
                    return Err(TxError::Limit(format!("unbond between 1 and the stake ({})", p.stake)));
                }
                if p.unbonding.len() >= UNBONDING_ENTRIES_MAX {
                    return Err(TxError::Limit(format!("at most {UNBONDING_ENTRIES_MAX} unbondings at once")));
                }
                0
            }
            Action::Challenge { job_id, bond } => {
                let job = self.jobs.get(job_id).ok_or(TxError::UnknownJob(*job_id))?;
                if job.phase != JobPhase::Completed {
                    return Err(TxError::Limit(
                        "only a job with a result inside its challenge window can be challenged".into(),
                    ));
                }
                if *bond < self.params.challenge_bond_min {
                    return Err(TxError::Limit(format!(
                        "the bond must be at least {}",
                        self.params.challenge_bond_min
                    )));
                }
                *bond
            }
        };
        let needed = tx.fee.checked_add(spend).ok_or(TxError::Overflow("fee + amount"))?;
        if account.balance < needed {
            return Err(TxError::InsufficientBalance { balance: account.balance, escrow: needed });
        }
        Ok(())
    }

    fn apply_account_tx(&mut self, tx: &Tx, height: u64, exec: &mut dyn Reexecute) -> Result<()> {
        // A challenge's verdict is computed first: if re-execution fails, nothing changes.
        let verdict = match &tx.action {
            Action::Challenge { job_id, .. } => {
                let job = self.jobs.get(job_id).expect("checked: the job exists");
                if height >= job.settle_height {
                    return Err(TxError::Limit("the challenge window of this job has closed".into()));
                }
                let claim = job.claim.as_ref().expect("a completed job has a claim");
                let (output_hash, fuel_used, status) =
                    exec.reexecute(job_id, job).map_err(|e| TxError::Limit(format!("cannot re-execute: {e}")))?;
                Some((output_hash, fuel_used, status) == (claim.output_hash, claim.fuel_used, claim.status))
            }
            _ => None,
        };
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
            Action::RegisterProvider { stake, price_per_fuel, capacity } => {
                sender.balance -= stake;
                self.set_account(tx.sender, sender);
                let mut p = self.provider(&tx.sender).cloned().unwrap_or(Provider {
                    price_per_fuel: *price_per_fuel,
                    stake: 0,
                    capacity: *capacity,
                    active_jobs: 0,
                    unbonding: vec![],
                });
                p.stake += stake;
                p.price_per_fuel = *price_per_fuel;
                p.capacity = *capacity;
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
                sender.balance -= bond;
                self.set_account(tx.sender, sender);
                let mut job = self.jobs.get(job_id).cloned().expect("checked: the job exists");
                let provider = job.claim.as_ref().expect("a completed job has a claim").provider;
                if verdict == Some(true) {
                    // The result was right: the bond goes to the provider; settlement goes on.
                    self.credit(provider, *bond);
                } else {
                    // The result was wrong: the provider is slashed to the challenger, who gets
                    // the bond back; the client gets the whole escrow back.
                    let mut p = self.provider(&provider).cloned().expect("results come from providers");
                    // Stake still unbonding counts: unbonding right after a wrong result must
                    // not escape the slash. Taken from the stake first, then the newest
                    // unbonding entries.
                    let unbonding: u64 = p.unbonding.iter().map(|(_, a)| a).sum();
                    let slashable = u128::from(p.stake) + u128::from(unbonding);
                    let slash = (slashable * u128::from(self.params.slash_bps) / 10_000) as u64;
                    let from_stake = slash.min(p.stake);
                    p.stake -= from_stake;
                    let mut rest = slash - from_stake;
                    for (_, amount) in p.unbonding.iter_mut().rev() {
                        let take = rest.min(*amount);
                        *amount -= take;
                        rest -= take;
                    }
                    p.unbonding.retain(|(_, amount)| *amount > 0);
                    self.set_provider(provider, p);
                    self.credit(tx.sender, bond + slash);
                    self.credit(job.client, job.escrow);
                    job.phase = JobPhase::Slashed;
                    job.paid = 0;
                    self.set_job(*job_id, job);
                }
            }
        }
        Ok(())
    }

    /// End of block `height`, in order: results whose challenge window has passed settle (the
    /// provider is paid, the client refunded the rest); unbonded stake due is released; an
    /// assignee that has not delivered within `delivery_blocks` is replaced by the next ranked
    /// provider; jobs past their deadline expire — the escrow returns to the client with a
    /// penalty from the assignee's stake. The height entry moves. Returns the expired jobs.
    pub fn end_block(&mut self, height: u64) -> Vec<Hash> {
        self.put(StateKey::Height, Some(Value::Height(height)));
        let settled: Vec<Hash> = self.settling.iter().take_while(|(at, _)| *at <= height).map(|(_, id)| *id).collect();
        for id in settled {
            let mut job = self.jobs.get(&id).cloned().expect("settling index follows jobs");
            let provider = job.claim.as_ref().expect("a completed job has a claim").provider;
            self.credit(provider, job.paid);
            self.credit(job.client, job.escrow - job.paid);
            job.phase = JobPhase::Settled;
            self.set_job(id, job);
        }
        let releasing: Vec<PublicKey> = self
            .providers
            .iter()
            .filter(|(_, p)| p.unbonding.first().is_some_and(|(at, _)| *at <= height))
            .map(|(a, _)| *a)
            .collect();
        for address in releasing {
            let mut p = self.providers.get(&address).cloned().expect("listed above");
            let released: u64 = p.unbonding.iter().filter(|(at, _)| *at <= height).map(|(_, amount)| amount).sum();
            p.unbonding.retain(|(at, _)| *at > height);
            self.set_provider(address, p);
            self.credit(address, released);
        }
        let open: Vec<Hash> = self.open.iter().map(|(_, id)| *id).collect();
        let delivery = self.params.delivery_blocks;
        for id in open {
            let job = self.jobs.get(&id).expect("open index follows jobs");
            if job.deadline_height < height {
                continue;
            }
            let late = height.saturating_sub(job.assigned_height) >= delivery;
            if late && usize::from(job.current) + 1 < job.ranking.len() {
                let mut job = job.clone();
                let old = job.assignee();
                job.current += 1;
                job.assigned_height = height;
                let new = job.assignee();
                self.set_job(id, job);
                if let Some(o) = old {
                    self.count_job(o, -1);
                }
                if let Some(n) = new {
                    self.count_job(n, 1);
                }
            }
        }
        let due: Vec<Hash> =
            self.open.iter().take_while(|(deadline, _)| *deadline < height).map(|(_, id)| *id).collect();
        for id in &due {
            let mut job = self.jobs.get(id).cloned().expect("open index follows jobs");
            job.phase = JobPhase::Expired;
            let assignee = job.assignee();
            let client = job.client;
            self.credit(client, job.escrow);
            self.set_job(*id, job);
            if let Some(a) = assignee {
                self.count_job(a, -1);
                let mut p = self.providers.get(&a).cloned().expect("assignees are providers");
                let penalty =
                    (u128::from(p.stake) * u128::from(self.params.missed_deadline_penalty_bps) / 10_000) as u64;
                p.stake -= penalty;
                self.set_provider(a, p);
                self.credit(client, penalty);
            }
        }
        due
    }

    /// Undoes every change since the last commit.
    pub fn rollback(&mut self) {
        let journal = std::mem::take(&mut self.journal);
        for (key, old) in journal {
            self.put(key, old);
        }
        self.journal.clear();
    }

    /// The changes since the last commit, as store writes (in key order).
    pub fn pending_changes(&self) -> Vec<StateChange> {
        self.journal.keys().map(|key| (key.to_bytes(), self.get(key).map(|v| v.to_bytes()))).collect()
    }

    /// Accepts every change since the last commit and returns them as store writes.
    pub fn commit(&mut self) -> Vec<StateChange> {
        let changes = self.pending_changes();
        self.journal.clear();
        changes
    }

    /// Sum of balances, stakes, unbonding stakes and open escrows: changed only by burned fees.
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
            .filter(|j| matches!(j.phase, JobPhase::Open | JobPhase::Completed))
            .map(|j| u128::from(j.escrow))
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
