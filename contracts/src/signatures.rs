//! Signature checks, done once per node: a bounded cache of the transactions this node has
//! already verified, consulted by block building and execution.
//!
//! A transaction's signature is verified when it enters a node's mempool; without the cache it
//! would be verified again by every block that executes it (a validator executes a block up to
//! twice: to check the proposal, then to apply it once decided). The cache is keyed by the hash
//! of the whole signed transaction, signature and output included, so a hit proves that exactly
//! these bytes passed [`verify_tx`] on this node; anything else is verified as before. Which
//! transactions were cached never changes a verdict, only whether this node recomputes it, so
//! nodes with different caches agree on every block.
//!
//! Signatures not in the cache are verified in batches ([`check_all`]): under the ZIP-215
//! rules Cairn uses (`cairn_ledger::keys`), a batch passes exactly when each of its signatures
//! would pass alone, so a batch's verdict is every node's verdict. When a batch fails, its
//! transactions are verified one by one to find which, each getting its own error.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use cairn_ledger::{Hash, SignatureBatch, SignatureSink, Transaction, VerifyNow};

use crate::Result;

/// How many verified transactions a [`SignatureCache`] remembers by default: more than a full
/// mempool (20,000 by default) and a full block (5,000) together.
pub const SIGNATURE_CACHE_ENTRIES_MAX: usize = 65_536;

/// Checks a transaction's signatures (and what its `verify` covers: version, output hash and
/// size) for block building and execution. The node passes its cache; tools and tests pass
/// [`VerifyAlways`].
pub trait SignatureCheck {
    /// `Ok` if `tx`'s signatures are valid: verified now with [`verify_tx`], or known to have
    /// passed it on this node. `output_bytes_max` is the chain's output limit.
    fn check(&mut self, tx: &Transaction, output_bytes_max: usize) -> Result<()>;
}

/// Verifies every transaction, every time.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifyAlways;

impl SignatureCheck for VerifyAlways {
    fn check(&mut self, tx: &Transaction, output_bytes_max: usize) -> Result<()> {
        verify_tx(tx, output_bytes_max)
    }
}

/// Verifies a transaction's version and signature (for a result, also its output's hash and
/// size): the part of its checks that depends on nothing but its own bytes.
pub fn verify_tx(tx: &Transaction, output_bytes_max: usize) -> Result<()> {
    verify_tx_with(tx, output_bytes_max, &mut VerifyNow)
}

/// [`verify_tx`], the signature checked by `sigs` (at once, or queued in a batch).
fn verify_tx_with<S: SignatureSink>(tx: &Transaction, output_bytes_max: usize, sigs: &mut S) -> Result<()> {
    match tx {
        Transaction::Offer(o) => o.verify_with(sigs)?,
        Transaction::Result(r) => r.verify_with(output_bytes_max, sigs)?,
        Transaction::Account(t) => t.verify_with(sigs)?,
        // Unsigned: what it does follows from the job's state alone.
        Transaction::Resolve { .. } => {}
    }
    Ok(())
}

/// Signatures verified in one batch, at most: a batch that fails is verified again one by one,
/// so this bounds the work a bad signature adds (a few milliseconds), while batches this large
/// already take about half the time of single verification per signature.
pub const BATCH_SIGNATURES_MAX: usize = 256;

/// Verifies each transaction as [`verify_tx`] does, with the same verdicts, the signatures
/// in batches of at most [`BATCH_SIGNATURES_MAX`].
pub fn verify_txs(txs: &[&Transaction], output_bytes_max: usize) -> Vec<Result<()>> {
    let mut verdicts = Vec::with_capacity(txs.len());
    for chunk in txs.chunks(BATCH_SIGNATURES_MAX) {
        let mut batch = SignatureBatch::new();
        let checked: Vec<Result<()>> =
            chunk.iter().map(|tx| verify_tx_with(tx, output_bytes_max, &mut batch)).collect();
        if batch.verify() {
            verdicts.extend(checked);
        } else {
            // Which one failed: each alone (the ones that failed before their signature keep
            // that error).
            verdicts.extend(chunk.iter().zip(checked).map(|(tx, c)| c.and_then(|()| verify_tx(tx, output_bytes_max))));
        }
    }
    verdicts
}

/// Checks every transaction in `txs` as [`SignatureCheck::check`] on `cache` would, with the
/// same verdicts: the ones `cache` knows are not verified again, the others are verified in
/// batches ([`verify_txs`]) without holding the lock, and the valid ones remembered. A node
/// verifies gossiped transactions so, and a block's transactions before executing it (so that
/// execution finds them all in the cache).
pub fn check_all(cache: &Mutex<SignatureCache>, txs: &[Transaction], output_bytes_max: usize) -> Vec<Result<()>> {
    let poisoned = "a thread panicked while holding the signature cache";
    let hashes: Vec<Hash> = txs.iter().map(Transaction::hash).collect();
    let unknown: Vec<usize> = {
        let cache = cache.lock().expect(poisoned);
        (0..txs.len()).filter(|&i| !cache.known.contains(&hashes[i])).collect()
    };
    let mut verdicts: Vec<Result<()>> = (0..txs.len()).map(|_| Ok(())).collect();
    if unknown.is_empty() {
        return verdicts;
    }
    let checked = verify_txs(&unknown.iter().map(|&i| &txs[i]).collect::<Vec<_>>(), output_bytes_max);
    let mut cache = cache.lock().expect(poisoned);
    for (i, verdict) in unknown.into_iter().zip(checked) {
        if verdict.is_ok() {
            cache.remember(hashes[i]);
        }
        verdicts[i] = verdict;
    }
    verdicts
}

/// The transactions this node verified, by `sha256(borsh(tx))` — the hash of the whole signed
/// transaction. Bounded: past its capacity the oldest entry is forgotten (and that transaction
/// verified again if it comes back).
#[derive(Debug, Clone)]
pub struct SignatureCache {
    known: HashSet<Hash>,
    order: VecDeque<Hash>,
    entries_max: usize,
    hits: u64,
}

impl Default for SignatureCache {
    fn default() -> Self {
        SignatureCache::new(SIGNATURE_CACHE_ENTRIES_MAX)
    }
}

impl SignatureCache {
    /// An empty cache remembering at most `entries_max` transactions (at least 1).
    pub fn new(entries_max: usize) -> SignatureCache {
        let entries_max = entries_max.max(1);
        SignatureCache { known: HashSet::new(), order: VecDeque::new(), entries_max, hits: 0 }
    }

    /// How many transactions it remembers.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// How many [`SignatureCheck::check`]s were answered from the cache (no signature
    /// verified); [`check_all`] does not count.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Whether exactly `tx` was verified here (and is still remembered).
    pub fn contains(&self, tx: &Transaction) -> bool {
        !self.known.is_empty() && self.known.contains(&tx.hash())
    }

    /// Whether the transaction with this hash was verified here; counts a hit.
    fn hit(&mut self, hash: &Hash) -> bool {
        let known = self.known.contains(hash);
        if known {
            self.hits += 1;
        }
        known
    }

    fn remember(&mut self, hash: Hash) {
        if !self.known.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > self.entries_max {
            if let Some(old) = self.order.pop_front() {
                self.known.remove(&old);
            }
        }
    }
}

impl SignatureCheck for SignatureCache {
    fn check(&mut self, tx: &Transaction, output_bytes_max: usize) -> Result<()> {
        let hash = tx.hash();
        if self.hit(&hash) {
            return Ok(());
        }
        verify_tx(tx, output_bytes_max)?;
        self.remember(hash);
        Ok(())
    }
}

/// A cache shared between threads (a node's RPC handlers and its event loop): the lock is held
/// to look a transaction up and to remember it, never while verifying.
impl SignatureCheck for &Mutex<SignatureCache> {
    fn check(&mut self, tx: &Transaction, output_bytes_max: usize) -> Result<()> {
        let poisoned = "a thread panicked while holding the signature cache";
        let hash = tx.hash();
        if self.lock().expect(poisoned).hit(&hash) {
            return Ok(());
        }
        verify_tx(tx, output_bytes_max)?;
        self.lock().expect(poisoned).remember(hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Action, FORMAT_VERSION, Keypair, Signature, Tx};

    use super::*;
    use crate::TxError;

    fn transfer(nonce: u64) -> Transaction {
        let key = Keypair::from_seed([1; 32]);
        let action = Action::Transfer { to: Keypair::from_seed([2; 32]).public(), amount: 1 };
        let tx = Tx { version: FORMAT_VERSION, chain_id: Hash::ZERO, sender: key.public(), nonce, fee: 1, action };
        Transaction::Account(tx.sign(&key))
    }

    #[test]
    fn a_verified_transaction_is_not_verified_again_but_a_different_signature_is() {
        let mut cache = SignatureCache::new(8);
        let tx = transfer(0);
        cache.check(&tx, 0).expect("valid");
        assert_eq!((cache.len(), cache.hits()), (1, 0));
        cache.check(&tx, 0).expect("cached");
        assert_eq!(cache.hits(), 1, "the second check is a hit");
        // The same body with another signature is other bytes: verified, and refused.
        let Transaction::Account(mut forged) = tx.clone() else { unreachable!() };
        forged.signature = Signature([7; 64]);
        let forged = Transaction::Account(forged);
        assert!(matches!(cache.check(&forged, 0), Err(TxError::BadSignature(_))));
        assert!(matches!(cache.check(&forged, 0), Err(TxError::BadSignature(_))), "a failure is not remembered");
        assert!(!cache.contains(&forged));
        assert_eq!((cache.len(), cache.hits()), (1, 1));
        // Shared behind a lock, it answers the same.
        let shared = Mutex::new(cache);
        let mut sigs = &shared;
        sigs.check(&tx, 0).expect("cached");
        assert!(matches!(sigs.check(&forged, 0), Err(TxError::BadSignature(_))));
        sigs.check(&transfer(1), 0).expect("valid");
        let cache = shared.into_inner().expect("not poisoned");
        assert_eq!((cache.len(), cache.hits()), (2, 2));
    }

    #[test]
    fn batches_give_the_verdicts_of_single_verification_and_the_cache_keeps_only_valid_ones() {
        // More than two batches; bad signatures in the first, second and last; one with a good
        // signature over a body of another version (refused before its signature).
        let mut txs: Vec<Transaction> = (0..600).map(transfer).collect();
        for i in [3, 300, 599] {
            let Transaction::Account(t) = &mut txs[i] else { unreachable!() };
            t.signature.0[9] ^= 1;
        }
        let key = Keypair::from_seed([1; 32]);
        let Transaction::Account(t) = &txs[10] else { unreachable!() };
        let mut body = t.tx.clone();
        body.version = FORMAT_VERSION + 1;
        txs[10] = Transaction::Account(body.sign(&key));
        let single: Vec<String> = txs.iter().map(|tx| format!("{:?}", verify_tx(tx, 0))).collect();
        let refs: Vec<&Transaction> = txs.iter().collect();
        let batched: Vec<String> = verify_txs(&refs, 0).iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(batched, single);
        assert_eq!(single.iter().filter(|v| *v != "Ok(())").count(), 4);
        // Through the cache: the same verdicts; the valid ones remembered, then hits.
        let cache = Mutex::new(SignatureCache::new(1_000));
        let verdicts: Vec<String> = check_all(&cache, &txs, 0).iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(verdicts, single);
        assert_eq!(cache.lock().expect("not poisoned").len(), 596);
        assert!(!cache.lock().expect("not poisoned").contains(&txs[300]));
        let again: Vec<String> = check_all(&cache, &txs, 0).iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(again, single, "a bad one is verified again, and refused again");
        let mut sigs = &cache;
        sigs.check(&txs[0], 0).expect("cached");
        assert_eq!(cache.lock().expect("not poisoned").hits(), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest_first() {
        let mut cache = SignatureCache::new(3);
        let txs: Vec<Transaction> = (0..5).map(transfer).collect();
        for tx in &txs {
            cache.check(tx, 0).expect("valid");
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&txs[0]) && !cache.contains(&txs[1]));
        assert!(txs[2..].iter().all(|tx| cache.contains(tx)));
        cache.check(&txs[0], 0).expect("verified again");
        assert_eq!(cache.hits(), 0);
        assert!(cache.contains(&txs[0]) && !cache.contains(&txs[2]));
    }
}
