//! Re-executions for challenges and disputes, run ahead of the blocks that need them.
//!
//! A block that holds a challenge, or a result that disagrees with another result of the same
//! job, makes every validator re-execute that job while applying it. Done inside block
//! application, that would put the job's compile time and run on the consensus path of every
//! validator. Instead a validator re-executes a job as soon as it learns it will be needed —
//! a challenge or a disagreeing result arriving in its mempool, or a block asking for one it
//! has not run — on a background thread, one job at a time, and keeps the verdict here. Block
//! building and block checking only look verdicts up (`crate::service`'s `VerdictLookup`): a proposer leaves a
//! transaction whose verdict is not ready for a later block, and a validator checking a
//! proposal or applying a block that needs one it lacks waits for it instead of deciding.
//!
//! Bounded: at most [`VERDICTS_MAX`] verdicts are kept (oldest forgotten first: a job's
//! challenge window is short) and at most [`VERDICT_REQUESTS_MAX`] wait to run; a request past
//! that is refused and comes again with the next block that needs it. How much one block may
//! ask for is bounded by `REEXECUTIONS_PER_BLOCK_MAX`, and each run by the job's fuel limit.

use std::collections::{HashMap, HashSet, VecDeque};

use cairn_ledger::{Hash, Outcome};

/// Verdicts kept.
pub const VERDICTS_MAX: usize = 4_096;
/// Re-executions waiting to run.
pub const VERDICT_REQUESTS_MAX: usize = 256;

/// What re-executing a job gives: the outcome a receipt commits to.
pub type Verdict = Outcome;

/// The verdicts of this node and the re-executions waiting to run.
#[derive(Debug, Default)]
pub struct Verdicts {
    done: HashMap<Hash, Verdict>,
    /// `done`'s keys, oldest first.
    order: VecDeque<Hash>,
    queue: VecDeque<Hash>,
    queued: HashSet<Hash>,
    running: Option<Hash>,
}

impl Verdicts {
    /// The verdict of a job, if it was run here.
    pub fn get(&self, job_id: &Hash) -> Option<Verdict> {
        self.done.get(job_id).copied()
    }

    /// Asks for a job's re-execution. `false` if it is done, waiting, running, or there is no
    /// room (it will be asked for again by the next block that needs it).
    pub fn want(&mut self, job_id: Hash) -> bool {
        if self.done.contains_key(&job_id)
            || self.queued.contains(&job_id)
            || self.running == Some(job_id)
            || self.queue.len() >= VERDICT_REQUESTS_MAX
        {
            return false;
        }
        self.queued.insert(job_id);
        self.queue.push_back(job_id);
        true
    }

    /// The next job to re-execute, if none is running: it is running from now on.
    pub fn start_next(&mut self) -> Option<Hash> {
        if self.running.is_some() {
            return None;
        }
        let job_id = self.queue.pop_front()?;
        self.queued.remove(&job_id);
        self.running = Some(job_id);
        Some(job_id)
    }

    /// The running re-execution ended: with its verdict, or without one (a failure of this
    /// node, or the module or offer not here yet; the job may be asked for again).
    pub fn finished(&mut self, job_id: Hash, verdict: Option<Verdict>) {
        if self.running == Some(job_id) {
            self.running = None;
        }
        let Some(verdict) = verdict else { return };
        if self.done.insert(job_id, verdict).is_none() {
            self.order.push_back(job_id);
            while self.order.len() > VERDICTS_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.done.remove(&old);
                }
            }
        }
    }

    /// Whether nothing is waiting or running.
    pub fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::JobStatus;

    use super::*;

    fn verdict(output_hash: Hash, fuel_used: u64, status: JobStatus) -> Verdict {
        Outcome { output_hash, fuel_used, status }
    }

    fn job(i: u32) -> Hash {
        Hash::of(&i.to_le_bytes())
    }

    #[test]
    fn one_runs_at_a_time_in_order_and_each_job_once() {
        let mut v = Verdicts::default();
        assert!(v.want(job(1)));
        assert!(v.want(job(2)));
        assert!(!v.want(job(1)), "already waiting");
        assert_eq!(v.start_next(), Some(job(1)));
        assert_eq!(v.start_next(), None, "one at a time");
        assert!(!v.want(job(1)), "running");
        v.finished(job(1), Some(verdict(Hash::of(b"out"), 5, JobStatus::Ok)));
        assert!(!v.want(job(1)), "done");
        assert_eq!(v.get(&job(1)), Some(verdict(Hash::of(b"out"), 5, JobStatus::Ok)));
        assert_eq!(v.start_next(), Some(job(2)));
        // Without a verdict (module missing, node failure) it may be asked for again.
        v.finished(job(2), None);
        assert!(v.idle());
        assert!(v.want(job(2)));
    }

    #[test]
    fn requests_and_verdicts_are_bounded() {
        let mut v = Verdicts::default();
        for i in 0..VERDICT_REQUESTS_MAX as u32 {
            assert!(v.want(job(i)));
        }
        assert!(!v.want(job(u32::MAX)), "no room");
        let mut v = Verdicts::default();
        for i in 0..=VERDICTS_MAX as u32 {
            v.want(job(i));
            let started = v.start_next().expect("one waiting");
            v.finished(started, Some(verdict(Hash::ZERO, 1, JobStatus::Ok)));
        }
        assert_eq!(v.done.len(), VERDICTS_MAX);
        assert!(v.get(&job(0)).is_none(), "the oldest is forgotten");
        assert!(v.get(&job(VERDICTS_MAX as u32)).is_some());
    }
}
