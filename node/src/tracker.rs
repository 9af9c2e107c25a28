//! What this node has seen of each job, for `job_get` and `job_subscribe`: stages reached and
//! the result, with a broadcast of every new event. Bounded: the oldest jobs are forgotten
//! (finalized ones stay answerable from the chain).

use std::collections::{HashMap, VecDeque};

use cairn_ledger::{Hash, JobResult, SignedOffer};
use cairn_rpc::{JobEvent, JobStage, ResultInfo};
use tokio::sync::broadcast;

/// How many jobs the tracker remembers.
pub const TRACKED_JOBS_MAX: usize = 100_000;
/// Events buffered for slow subscribers before they lag.
pub const EVENT_BUFFER: usize = 8_192;

#[derive(Debug, Default)]
struct Entry {
    events: Vec<JobEvent>,
    result: Option<ResultInfo>,
    /// The offer, once dropped: `job_get` still describes a job no block holds.
    dropped: Option<Box<SignedOffer>>,
}

/// The job tracker.
#[derive(Debug)]
pub struct Tracker {
    jobs: HashMap<Hash, Entry>,
    order: VecDeque<Hash>,
    events: broadcast::Sender<JobEvent>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker { jobs: HashMap::new(), order: VecDeque::new(), events: broadcast::channel(EVENT_BUFFER).0 }
    }
}

/// The RPC form of a result.
pub fn result_info(r: &JobResult) -> ResultInfo {
    ResultInfo {
        provider: r.claim.provider,
        status: r.claim.status,
        fuel_used: r.claim.fuel_used,
        output_hash: r.claim.output_hash,
        output: r.output.clone(),
        reason: (r.claim.status != cairn_ledger::JobStatus::Ok)
            .then(|| String::from_utf8_lossy(&r.output).into_owned()),
    }
}

impl Tracker {
    fn entry(&mut self, job_id: Hash) -> &mut Entry {
        if !self.jobs.contains_key(&job_id) {
            if self.order.len() >= TRACKED_JOBS_MAX
                && let Some(old) = self.order.pop_front()
            {
                self.jobs.remove(&old);
            }
            self.order.push_back(job_id);
        }
        self.jobs.entry(job_id).or_default()
    }

    /// Records that `job_id` reached `stage` (and every stage before it not yet seen), with its
    /// result if known, and broadcasts the new events.
    pub fn advance(&mut self, job_id: Hash, stage: JobStage, result: Option<&JobResult>, height: Option<u64>) {
        let sender = self.events.clone();
        let entry = self.entry(job_id);
        if let Some(r) = result
            && entry.result.is_none()
        {
            entry.result = Some(result_info(r));
        }
        // A dropped offer can still reach a block another node built (it never heard of the
        // replacement): what the chain says comes after the drop.
        let reached = entry.events.iter().rev().map(|e| e.stage).find(|s| *s != JobStage::Dropped);
        let path: &[JobStage] = match stage {
            JobStage::Expired => &[JobStage::Accepted, JobStage::Expired],
            _ => &[JobStage::Accepted, JobStage::Executed, JobStage::Included, JobStage::Finalized],
        };
        if reached.is_some_and(|r| matches!(r, JobStage::Finalized | JobStage::Expired)) {
            return;
        }
        for &s in path.iter().filter(|s| **s <= stage) {
            if reached.is_some_and(|r| r >= s) {
                continue;
            }
            if s == JobStage::Executed && entry.result.is_none() {
                continue;
            }
            let ev = JobEvent {
                job_id,
                stage: s,
                result: if matches!(s, JobStage::Executed | JobStage::Included | JobStage::Finalized) {
                    entry.result.clone()
                } else {
                    None
                },
                height: if matches!(s, JobStage::Included | JobStage::Finalized | JobStage::Expired) {
                    height
                } else {
                    None
                },
                reason: None,
            };
            entry.events.push(ev.clone());
            // No subscriber is not an error.
            let _ = sender.send(ev);
        }
    }

    /// Records that an offer left the mempool without being included, and why: the job's
    /// last event.
    pub fn drop_offer(&mut self, offer: &SignedOffer, reason: &str) {
        let job_id = offer.job_id();
        self.advance(job_id, JobStage::Accepted, None, None);
        let sender = self.events.clone();
        let entry = self.entry(job_id);
        if entry.events.last().is_some_and(|e| e.stage.is_terminal()) {
            return;
        }
        let ev = JobEvent { job_id, stage: JobStage::Dropped, result: None, height: None, reason: Some(reason.into()) };
        entry.events.push(ev.clone());
        entry.dropped = Some(Box::new(offer.clone()));
        let _ = sender.send(ev);
    }

    /// The offer of a job that was dropped, with why.
    pub fn dropped(&self, job_id: &Hash) -> Option<(&SignedOffer, Option<&str>)> {
        let entry = self.jobs.get(job_id)?;
        let offer = entry.dropped.as_deref()?;
        Some((offer, entry.events.last().and_then(|e| e.reason.as_deref())))
    }

    /// The events so far and a receiver for the next ones, taken together so none is missed.
    pub fn subscribe(&self, job_id: &Hash) -> (Vec<JobEvent>, broadcast::Receiver<JobEvent>) {
        let past = self.jobs.get(job_id).map(|e| e.events.clone()).unwrap_or_default();
        (past, self.events.subscribe())
    }

    /// The furthest stage and the result seen for a job.
    pub fn get(&self, job_id: &Hash) -> Option<(JobStage, Option<ResultInfo>)> {
        self.jobs.get(job_id).and_then(|e| e.events.last().map(|l| (l.stage, e.result.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumping_ahead_fills_in_the_stages_between() {
        let mut t = Tracker::default();
        let id = Hash::of(b"j");
        let (_, mut rx) = t.subscribe(&id);
        t.advance(id, JobStage::Accepted, None, None);
        t.advance(id, JobStage::Finalized, None, Some(4));
        t.advance(id, JobStage::Included, None, Some(4));
        let stages: Vec<JobStage> = std::iter::from_fn(|| rx.try_recv().ok()).map(|e| e.stage).collect();
        assert_eq!(stages, vec![JobStage::Accepted, JobStage::Included, JobStage::Finalized]);
        assert_eq!(t.get(&id).map(|g| g.0), Some(JobStage::Finalized));
    }
}
