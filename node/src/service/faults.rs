//! Faults injected on purpose, for tests of how the network copes with a lying provider, an
//! equivocating validator, a crash between logging a vote and sending it, a partition, or a
//! provider whose sandbox fails. Compiled only with the `test-faults` feature (release builds
//! leave it off); a node built without it refuses a configuration that asks for any.

use std::path::PathBuf;
use std::time::Duration;

use cairn_ledger::{Keypair, PublicKey};

use crate::config::{NodeConfig, SyncLie};

/// The faults this node injects.
#[derive(Debug, Default)]
pub struct Faults {
    #[cfg(feature = "test-faults")]
    on: On,
}

#[cfg(feature = "test-faults")]
#[derive(Debug, Default)]
struct On {
    wrong_results: bool,
    equivocate: bool,
    crash_after_wal_append_at_height: Option<u64>,
    crash_marker: PathBuf,
    partition: Option<PathBuf>,
    fail_executions: u32,
    failed: u32,
    isolated: bool,
    slow_blocks: Option<SlowBlocks>,
    sync_lie: Option<SyncLie>,
    blobs_by_dht_only: bool,
}

/// The executor takes `delay` over each block it executes, with a file at `marker` while it
/// does (tests of what the node does meanwhile).
#[derive(Debug, Clone)]
pub struct SlowBlocks {
    /// How long.
    pub delay: Duration,
    /// The file that exists while a block executes.
    pub marker: PathBuf,
}

impl SlowBlocks {
    /// Runs `f` slowly: the marker written, the delay slept, `f` run, the marker removed.
    pub fn run<T>(&self, height: u64, f: impl FnOnce() -> T) -> T {
        let _ = std::fs::write(&self.marker, height.to_string());
        std::thread::sleep(self.delay);
        let out = f();
        let _ = std::fs::remove_file(&self.marker);
        out
    }
}

impl Faults {
    /// The faults `config` asks for.
    pub fn from_config(config: &NodeConfig) -> anyhow::Result<Faults> {
        let asked = config.test_wrong_results
            || config.test_equivocate
            || config.test_crash_after_wal_append_at_height.is_some()
            || config.test_partition
            || config.test_fail_executions > 0
            || config.test_slow_blocks_ms > 0
            || config.test_sync_lie.is_some()
            || config.test_blobs_by_dht_only;
        #[cfg(feature = "test-faults")]
        {
            let _ = asked;
            Ok(Faults {
                on: On {
                    wrong_results: config.test_wrong_results,
                    equivocate: config.test_equivocate,
                    crash_after_wal_append_at_height: config.test_crash_after_wal_append_at_height,
                    crash_marker: config.test_crash_marker_path(),
                    partition: config.test_partition.then(|| config.test_isolated_path()),
                    fail_executions: config.test_fail_executions,
                    failed: 0,
                    isolated: false,
                    slow_blocks: (config.test_slow_blocks_ms > 0).then(|| SlowBlocks {
                        delay: Duration::from_millis(config.test_slow_blocks_ms),
                        marker: config.home.join("test-executing-block"),
                    }),
                    sync_lie: config.test_sync_lie,
                    blobs_by_dht_only: config.test_blobs_by_dht_only,
                },
            })
        }
        #[cfg(not(feature = "test-faults"))]
        {
            anyhow::ensure!(
                !asked,
                "the configuration asks for test faults (test_* settings), which this build of cairn does not have: \
                 they exist only in test builds"
            );
            Ok(Faults::default())
        }
    }

    /// Whether the executor is slowed down.
    pub fn slow_blocks(&self) -> Option<SlowBlocks> {
        #[cfg(feature = "test-faults")]
        return self.on.slow_blocks.clone();
        #[cfg(not(feature = "test-faults"))]
        None
    }

    /// How this node lies to peers that sync from it.
    pub fn sync_lie(&self) -> Option<SyncLie> {
        #[cfg(feature = "test-faults")]
        return self.on.sync_lie;
        #[cfg(not(feature = "test-faults"))]
        None
    }

    /// Whether this node asks only the DHT's holders for a blob it misses.
    pub fn blobs_by_dht_only(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.on.blobs_by_dht_only;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// Whether this provider lies about its outputs.
    pub fn wrong_results(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.on.wrong_results;
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// Whether this run fails on purpose (the first `test_fail_executions` runs do).
    pub fn fail_execution(&mut self) -> bool {
        #[cfg(feature = "test-faults")]
        {
            if self.on.failed < self.on.fail_executions {
                self.on.failed += 1;
                return true;
            }
            false
        }
        #[cfg(not(feature = "test-faults"))]
        false
    }

    /// For a vote of this validator's, the same vote for something else (nil for a block, a
    /// made-up block for nil), signed — what an equivocating validator sends besides.
    pub fn conflicting_vote(&self, message: &[u8], key: &Keypair) -> Option<Vec<u8>> {
        #[cfg(feature = "test-faults")]
        if self.on.equivocate {
            return conflicting_vote(message, key);
        }
        let _ = (message, key);
        None
    }

    /// After a consensus log write: dies between logging a vote of `me` and sending it, once
    /// at the configured height (a marker file keeps the restarted process alive).
    pub fn after_wal_write(&self, config: &NodeConfig, height: u64, entries: &[Vec<u8>], me: &PublicKey) {
        let _ = config;
        #[cfg(feature = "test-faults")]
        if self.on.crash_after_wal_append_at_height == Some(height) && entries.iter().any(|e| is_own_vote(e, me)) {
            crash(&self.on.crash_marker, height);
        }
        let _ = (height, entries, me);
    }

    /// Whether this node is cut off from its peers now (while its isolation file exists);
    /// `Some` when that just changed.
    pub fn isolated(&mut self) -> (bool, Option<bool>) {
        #[cfg(feature = "test-faults")]
        if let Some(path) = &self.on.partition {
            let isolated = path.exists();
            let changed = (isolated != self.on.isolated).then_some(isolated);
            self.on.isolated = isolated;
            return (isolated, changed);
        }
        (false, None)
    }

    /// Whether the node is cut off (as last checked).
    pub fn is_isolated(&self) -> bool {
        #[cfg(feature = "test-faults")]
        return self.on.isolated;
        #[cfg(not(feature = "test-faults"))]
        false
    }
}

/// The answer of a lying sync peer to "the blocks from `from`", over `blocks_from` (the honest
/// answer's reader); `None`: no answer at all.
pub fn lying_answer(
    lie: SyncLie,
    from: u64,
    blocks_from: impl Fn(u64) -> anyhow::Result<Vec<(cairn_ledger::Block, cairn_ledger::Commit)>>,
) -> Option<anyhow::Result<Vec<(cairn_ledger::Block, cairn_ledger::Commit)>>> {
    let answer = match lie {
        SyncLie::Silent => return None,
        SyncLie::TamperedState => blocks_from(from),
        SyncLie::Stale => blocks_from(from.saturating_sub(crate::p2p::SYNC_BLOCKS_MAX.into()).max(1))
            .map(|blocks| blocks.into_iter().filter(|(b, _)| b.header.height < from).collect()),
        SyncLie::Unlinked => blocks_from(from + 1),
        SyncLie::Forged | SyncLie::Unsigned => blocks_from(from).map(|mut blocks| {
            for (_, commit) in &mut blocks {
                if lie == SyncLie::Unsigned {
                    commit.signatures.clear();
                }
                for s in &mut commit.signatures {
                    s.signature.0[0] ^= 1;
                }
            }
            blocks
        }),
    };
    Some(answer)
}

/// A state chunk as a peer that lies about the state serves it: one value altered.
pub fn tampered_chunk(mut chunk: cairn_ledger::snapshot::StateChunk) -> cairn_ledger::snapshot::StateChunk {
    let middle = chunk.entries.len() / 2;
    if let Some((_, value)) = chunk.entries.get_mut(middle) {
        value.push(0xff);
    }
    chunk
}

/// Whether a consensus log entry is a vote signed by `me`.
#[cfg(feature = "test-faults")]
fn is_own_vote(entry: &[u8], me: &PublicKey) -> bool {
    use cairn_consensus::{ConsensusMessage, WalEntry};
    matches!(
        WalEntry::decode(entry),
        Ok(WalEntry::Message(ConsensusMessage::Vote(v))) if v.vote.validator == *me
    )
}

#[cfg(feature = "test-faults")]
fn crash(marker: &PathBuf, height: u64) {
    if marker.exists() {
        return;
    }
    if let Err(e) = std::fs::write(marker, height.to_string()) {
        tracing::error!("cannot write {}: {e}", marker.display());
        return;
    }
    tracing::warn!(height, "test: aborting after logging a vote, before sending it");
    std::process::abort();
}

#[cfg(feature = "test-faults")]
fn conflicting_vote(message: &[u8], key: &Keypair) -> Option<Vec<u8>> {
    use cairn_consensus::{ConsensusMessage, SignedVote};
    use cairn_ledger::Hash;
    let ConsensusMessage::Vote(signed) = ConsensusMessage::decode(message).ok()? else { return None };
    if signed.vote.validator != key.public() {
        return None;
    }
    let mut vote = signed.vote;
    vote.block_hash = match vote.block_hash {
        Some(_) => None,
        None => Some(Hash::of(message)),
    };
    Some(ConsensusMessage::Vote(SignedVote::sign(key, vote)).encode())
}

#[cfg(all(test, feature = "test-faults"))]
mod tests {
    use cairn_consensus::{ConsensusMessage, SignedVote, WalEntry};
    use cairn_ledger::{FORMAT_VERSION, Hash, Vote, VoteKind};

    use super::*;

    fn vote(key: &Keypair, block_hash: Option<Hash>) -> Vec<u8> {
        let v = Vote {
            version: FORMAT_VERSION,
            chain_id: Hash::ZERO,
            kind: VoteKind::Precommit,
            height: 3,
            round: 1,
            block_hash,
            validator: key.public(),
        };
        ConsensusMessage::Vote(SignedVote::sign(key, v)).encode()
    }

    #[test]
    fn an_equivocating_validator_signs_the_same_step_for_something_else_and_only_its_own_votes() {
        let key = Keypair::from_seed([1; 32]);
        for block_hash in [Some(Hash::of(b"block")), None] {
            let first = vote(&key, block_hash);
            let second = conflicting_vote(&first, &key).expect("a conflicting vote");
            let (Ok(ConsensusMessage::Vote(a)), Ok(ConsensusMessage::Vote(b))) =
                (ConsensusMessage::decode(&first), ConsensusMessage::decode(&second))
            else {
                panic!("votes")
            };
            assert_ne!(a.vote.block_hash, b.vote.block_hash);
            assert_eq!((a.vote.height, a.vote.round, a.vote.kind), (b.vote.height, b.vote.round, b.vote.kind));
            assert!(is_own_vote(&WalEntry::Message(ConsensusMessage::Vote(b)).encode(), &key.public()));
        }
        let other = Keypair::from_seed([2; 32]);
        assert_eq!(conflicting_vote(&vote(&other, None), &key), None, "never for someone else's vote");
        assert!(!is_own_vote(
            &WalEntry::Timeout { kind: cairn_consensus::TimeoutKind::Prevote, round: 0 }.encode(),
            &key.public()
        ));
    }
}
