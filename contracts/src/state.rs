//! The chain state and its transition rules.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_ledger::{
    ChainParams, ExecutionReceipt, Genesis, Hash, JobResult, JobStatus, PublicKey, SignedOffer, StateChange,
    Transaction,
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

/// A registered provider and its standing ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    /// Price per unit of fuel.
    pub price_per_fuel: u64,
}

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
    /// The providers assigned, best ranked first.
    pub assigned: Vec<PublicKey>,
    /// Where the job is in its life.
    pub phase: JobPhase,
    /// What the provider was paid (once completed).
    pub paid: u64,
    /// The accepted result's claim hash (once completed).
    pub receipt_leaf: Option<Hash>,
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
            journal: BTreeMap::new(),
        }
    }

    /// The state at genesis (committed: nothing is journaled).
    pub fn from_genesis(genesis: &Genesis) -> Result<State> {
        genesis.validate()?;
        let total: u128 = genesis.accounts.iter().map(|a| u128::from(a.balance)).sum();
        if total > u128::from(u64::MAX) {
            return Err(TxError::Limit("genesis balances add up to more than u64::MAX".into()));
        }
        let mut s = State::empty(genesis.params.clone(), genesis.chain_id());
        for a in &genesis.accounts {
            s.put(StateKey::Account(a.address), Some(Value::Account(Account { balance: a.balance, nonce: 0 })));
        }
        for p in &genesis.providers {
            s.put(StateKey::Provider(p.address), Some(Value::Provider(Provider { price_per_fuel: p.price_per_fuel })));
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
            StateKey::Provider(p) => self.providers.get(p).copied().map(Value::Provider),
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
                if j.phase == JobPhase::Open {
                    self.open.insert((j.deadline_height, id));
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
    pub fn provider(&self, address: &PublicKey) -> Option<Provider> {
        self.providers.get(address).copied()
    }

    /// All registered providers.
    pub fn providers(&self) -> impl Iterator<Item = (&PublicKey, &Provider)> {
        self.providers.iter()
    }

    /// A job.
    pub fn job(&self, id: &Hash) -> Option<&Job> {
        self.jobs.get(id)
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

    /// The providers that must execute a job: those asking at most `max_price`, ranked by
    /// `sha256(job_id || provider)` ascending (rendezvous hashing), the first `k`.
    pub fn assignment(&self, job_id: &Hash, max_price: u64, k: usize) -> Vec<PublicKey> {
        let mut ranked: Vec<(Hash, PublicKey)> = self
            .providers
            .iter()
            .filter(|(_, p)| p.price_per_fuel <= max_price)
            .map(|(addr, _)| (Hash::of_parts(&[&job_id.0, &addr.0]), *addr))
            .collect();
        ranked.sort();
        ranked.into_iter().take(k).map(|(_, a)| a).collect()
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
        if self.assignment(&job_id, o.max_price, 1).is_empty() {
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
        if !job.assigned.contains(&c.provider) {
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
    pub fn apply_tx(&mut self, tx: &Transaction, height: u64) -> Result<Option<ExecutionReceipt>> {
        match tx {
            Transaction::Offer(signed) => {
                let escrow = self.check_offer(signed, height, NonceRule::Exact)?;
                let o = &signed.offer;
                let job_id = signed.job_id();
                let mut account = self.account(&o.client);
                account.balance -= escrow;
                account.nonce = account.nonce.checked_add(1).ok_or(TxError::Overflow("nonce"))?;
                let job = Job {
                    client: o.client,
                    module_id: o.module_id,
                    input_hash: o.input_hash(),
                    fuel_limit: o.fuel_limit,
                    max_price: o.max_price,
                    escrow,
                    deadline_height: o.deadline_height,
                    assigned: self.assignment(&job_id, o.max_price, usize::from(o.redundancy)),
                    phase: JobPhase::Open,
                    paid: 0,
                    receipt_leaf: None,
                };
                self.set_account(o.client, account);
                self.set_job(job_id, job);
                Ok(None)
            }
            Transaction::Result(result) => {
                self.check_result(result)?;
                let c = &result.claim;
                let mut job = self.jobs.get(&c.job_id).cloned().expect("checked above");
                let ask = self.provider(&c.provider).map_or(job.max_price, |p| p.price_per_fuel.min(job.max_price));
                let payment = c.fuel_used.checked_mul(ask).ok_or(TxError::Overflow("payment"))?;
                let refund = job.escrow.checked_sub(payment).ok_or(TxError::Overflow("refund"))?;
                let receipt = result.receipt();
                job.phase = JobPhase::Completed;
                job.paid = payment;
                job.receipt_leaf = Some(receipt.leaf_hash());
                // Credits cannot overflow: genesis caps the total value at u64::MAX and no
                // transaction creates value.
                self.credit(c.provider, payment);
                self.credit(job.client, refund);
                self.set_job(c.job_id, job);
                Ok(Some(receipt))
            }
        }
    }

    /// End of block `height`: jobs whose deadline has passed without a result are expired and
    /// their escrow refunded; the height entry moves. Returns the expired jobs.
    pub fn end_block(&mut self, height: u64) -> Vec<Hash> {
        self.put(StateKey::Height, Some(Value::Height(height)));
        let due: Vec<Hash> =
            self.open.iter().take_while(|(deadline, _)| *deadline < height).map(|(_, id)| *id).collect();
        for id in &due {
            let mut job = self.jobs.get(id).cloned().expect("open index follows jobs");
            job.phase = JobPhase::Expired;
            self.credit(job.client, job.escrow);
            self.set_job(*id, job);
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

    /// Sum of all balances and open escrows: constant under every transaction (no fees yet).
    pub fn total_value(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| u128::from(a.balance)).sum();
        let escrows: u128 =
            self.jobs.values().filter(|j| j.phase == JobPhase::Open).map(|j| u128::from(j.escrow)).sum();
        balances + escrows
    }
}

#[cfg(test)]
mod tests;
