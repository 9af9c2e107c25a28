//! What this node has seen of each job, for `job_get` and `job_subscribe`: stages reached and
//! the result, with a broadcast of every new event. Bounded in jobs ([`TRACKED_JOBS_MAX`]) and
//! in bytes ([`TRACKED_BYTES_MAX`], outputs counted where they are held): the oldest jobs are
//! forgotten first (finalized ones stay answerable from the chain).
//!
//! Events fan out per job: a job someone subscribes to gets its own broadcast channel (of
//! [`JOB_EVENT_BUFFER`] events), and a new event goes only to its job's channel, if any. So an
//! event costs a clone and a wake-up for each subscription to its job and nothing for the
//! others, however many there are. A channel is dropped once no subscription holds a receiver
//! of it: when an event finds it so, when its job is forgotten, and in a sweep when
//! [`WATCHED_JOBS_MAX`] channels are held. Subscribers that lag catch up from the tracker.

use std::collections::{HashMap, VecDeque};

use cairn_ledger::{Hash, JobResult, SignedOffer};
use cairn_rpc::{JobEvent, JobStage, ResultInfo};
use tokio::sync::broadcast;

/// How many jobs the tracker remembers: those in progress and the last finished ones (a
/// finished job is answered from the chain once forgotten here).
pub const TRACKED_JOBS_MAX: usize = 32_768;
/// How many bytes the tracker holds at most: its entries, events, results and dropped offers,
/// each counted with its struct's size and what it holds on the heap.
pub const TRACKED_BYTES_MAX: usize = 32 << 20;
/// Events one job's channel buffers for its slow subscribers before they lag: more than a job
/// has (accepted, dropped, executed, included, finalized), so in practice none lags. Only
/// unread events are held, each at most one output (three of a job's events carry one).
pub const JOB_EVENT_BUFFER: usize = 8;
/// How many jobs' channels the tracker holds before it sweeps those no subscription listens to
/// any more (and again each time the map doubles past what the last sweep left). Each channel
/// a sweep keeps has a live `job_subscribe` holding a receiver, so the map holds at most this
/// many or twice the subscriptions live at its last sweep, and those the RPC server bounds:
/// `rpc_connections_max × rpc_subscriptions_per_connection_max` (16,384 by default). A
/// channel costs about [`JOB_EVENT_BUFFER`] empty event slots (under 3 KiB) plus the events
/// its subscribers have not read; a sweep costs a look at each channel, amortized over the
/// subscriptions that grew the map to it. Those unread events are copies, not counted in
/// [`TRACKED_BYTES_MAX`]: a job has a few events, at most three carrying an output of up to
/// 64 KiB, so subscribers that all stop reading hold at most 16,384 × 3 × 64 KiB (3 GiB) at the
/// very worst — less than what jsonrpsee may buffer for the same connections.
pub const WATCHED_JOBS_MAX: usize = 16_384;
/// What an entry costs besides its events, result and offer: the entry, its id in the map and
/// in the order, and the map's own overhead per slot.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Hash>() + 16;

#[derive(Debug, Default)]
struct Entry {
    events: Vec<JobEvent>,
    result: Option<ResultInfo>,
    /// The offer, once dropped: `job_get` still describes a job no block holds.
    dropped: Option<Box<SignedOffer>>,
    /// What it holds, as counted against [`TRACKED_BYTES_MAX`].
    bytes: usize,
}

/// The bytes an event takes in its entry's list: the event and what its result and reason hold
/// on the heap.
fn event_bytes(ev: &JobEvent) -> usize {
    std::mem::size_of::<JobEvent>()
        + ev.result.as_ref().map_or(0, result_heap_bytes)
        + ev.reason.as_ref().map_or(0, String::capacity)
}

/// The bytes a result takes as an entry's own: the struct and its heap.
fn result_bytes(r: &ResultInfo) -> usize {
    std::mem::size_of::<ResultInfo>() + result_heap_bytes(r)
}

fn result_heap_bytes(r: &ResultInfo) -> usize {
    r.output.capacity() + r.reason.as_ref().map_or(0, String::capacity)
}

/// The job tracker.
#[derive(Debug)]
pub struct Tracker {
    jobs: HashMap<Hash, Entry>,
    order: VecDeque<Hash>,
    /// The channel of each job someone subscribed to: the only ones its events are sent to.
    watched: HashMap<Hash, broadcast::Sender<JobEvent>>,
    /// How many channels `watched` may hold before the next sweep.
    sweep_at: usize,
    bytes: usize,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            jobs: HashMap::new(),
            order: VecDeque::new(),
            watched: HashMap::new(),
            sweep_at: WATCHED_JOBS_MAX,
            bytes: 0,
        }
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
        output_in_blob: r.output_in_blob,
        reason: (r.claim.status != cairn_ledger::JobStatus::Ok)
            .then(|| String::from_utf8_lossy(&r.output).into_owned()),
    }
}

impl Tracker {
    fn entry(&mut self, job_id: Hash) -> &mut Entry {
        if !self.jobs.contains_key(&job_id) {
            self.make_room(ENTRY_BYTES, 1);
            self.order.push_back(job_id);
            self.bytes += ENTRY_BYTES;
            self.jobs.insert(job_id, Entry { bytes: ENTRY_BYTES, ..Entry::default() });
        }
        self.jobs.get_mut(&job_id).expect("just made")
    }

    /// Forgets the oldest jobs until `bytes` more and `jobs` more fit (never the newest: the one
    /// being added to).
    fn make_room(&mut self, bytes: usize, jobs: usize) {
        while (self.bytes + bytes > TRACKED_BYTES_MAX || self.order.len() + jobs > TRACKED_JOBS_MAX)
            && self.order.len() > 1
        {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(entry) = self.jobs.remove(&old) {
                self.bytes -= entry.bytes;
            }
            if self.watched.get(&old).is_some_and(|tx| tx.receiver_count() == 0) {
                self.watched.remove(&old);
            }
        }
    }

    /// Counts `bytes` more held by `job_id`'s entry.
    fn grew(&mut self, job_id: &Hash, bytes: usize) {
        if let Some(entry) = self.jobs.get_mut(job_id) {
            entry.bytes += bytes;
            self.bytes += bytes;
        }
        self.make_room(0, 0);
    }

    /// Bytes held, as counted against [`TRACKED_BYTES_MAX`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The channel of `job_id`'s subscribers, if it has any (a clone: sending on it while the
    /// job's entry is borrowed).
    fn watchers(&self, job_id: &Hash) -> Option<broadcast::Sender<JobEvent>> {
        self.watched.get(job_id).cloned()
    }

    /// Sends `ev` to `watchers` (an event is cloned only for a job someone watches); `false`
    /// once no receiver is left, and then the job's channel is to be dropped.
    fn publish(watchers: Option<&broadcast::Sender<JobEvent>>, ev: &JobEvent) -> bool {
        watchers.is_none_or(|tx| tx.send(ev.clone()).is_ok())
    }

    /// Records that `job_id` reached `stage` (and every stage before it not yet seen), with its
    /// result if known, and broadcasts the new events.
    pub fn advance(&mut self, job_id: Hash, stage: JobStage, result: Option<&JobResult>, height: Option<u64>) {
        let mut added = 0usize;
        let watchers = self.watchers(&job_id);
        let mut listened = true;
        let entry = self.entry(job_id);
        if let Some(r) = result
            && entry.result.is_none()
        {
            let info = result_info(r);
            added += result_bytes(&info);
            entry.result = Some(info);
        }
        // A dropped offer can still reach a block another node built (it never heard of the
        // replacement): what the chain says comes after the drop.
        let reached = entry.events.iter().rev().map(|e| e.stage).find(|s| *s != JobStage::Dropped);
        let path: &[JobStage] = match stage {
            JobStage::Expired => &[JobStage::Accepted, JobStage::Expired],
            _ => &[JobStage::Accepted, JobStage::Executed, JobStage::Included, JobStage::Finalized],
        };
        if reached.is_some_and(|r| matches!(r, JobStage::Finalized | JobStage::Expired)) {
            self.grew(&job_id, added);
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
            added += event_bytes(&ev);
            listened &= Self::publish(watchers.as_ref(), &ev);
            entry.events.push(ev);
        }
        if !listened {
            // No receiver left: nobody watches the job any more.
            self.watched.remove(&job_id);
        }
        self.grew(&job_id, added);
    }

    /// Records that an offer left the mempool without being included, and why: the job's
    /// last event.
    pub fn drop_offer(&mut self, offer: &SignedOffer, reason: &str) {
        let job_id = offer.job_id();
        self.advance(job_id, JobStage::Accepted, None, None);
        let watchers = self.watchers(&job_id);
        let entry = self.entry(job_id);
        if entry.events.last().is_some_and(|e| e.stage.is_terminal()) {
            return;
        }
        let ev = JobEvent { job_id, stage: JobStage::Dropped, result: None, height: None, reason: Some(reason.into()) };
        let added = event_bytes(&ev) + borsh::object_length(offer).unwrap_or(0);
        let listened = Self::publish(watchers.as_ref(), &ev);
        entry.events.push(ev);
        entry.dropped = Some(Box::new(offer.clone()));
        if !listened {
            self.watched.remove(&job_id);
        }
        self.grew(&job_id, added);
    }

    /// The offer of a job that was dropped, with why.
    pub fn dropped(&self, job_id: &Hash) -> Option<(&SignedOffer, Option<&str>)> {
        let entry = self.jobs.get(job_id)?;
        let offer = entry.dropped.as_deref()?;
        Some((offer, entry.events.last().and_then(|e| e.reason.as_deref())))
    }

    /// The events so far and a receiver for the next ones of this job only, taken together so
    /// none is missed.
    pub fn subscribe(&mut self, job_id: &Hash) -> (Vec<JobEvent>, broadcast::Receiver<JobEvent>) {
        let past = self.jobs.get(job_id).map(|e| e.events.clone()).unwrap_or_default();
        if let Some(tx) = self.watched.get(job_id) {
            return (past, tx.subscribe());
        }
        if self.watched.len() >= self.sweep_at {
            self.watched.retain(|_, tx| tx.receiver_count() > 0);
            self.sweep_at = WATCHED_JOBS_MAX.max(2 * self.watched.len());
        }
        let (tx, rx) = broadcast::channel(JOB_EVENT_BUFFER);
        self.watched.insert(*job_id, tx);
        (past, rx)
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
    fn the_tracker_forgets_its_oldest_jobs_past_its_bytes() {
        let mut t = Tracker::default();
        let provider = cairn_ledger::Keypair::from_seed([1; 32]);
        let output = vec![7u8; 60_000];
        let result = |job_id: Hash| {
            let claim = cairn_ledger::ResultClaim {
                version: cairn_ledger::FORMAT_VERSION,
                job_id,
                module_id: Hash::ZERO,
                input_hash: Hash::ZERO,
                output_hash: Hash::of(&output),
                fuel_used: 1,
                status: cairn_ledger::JobStatus::Ok,
                provider: provider.public(),
            };
            JobResult::new(claim, output.clone(), &provider)
        };
        // Each job holds its output four times (its result and three events): about 240 KB.
        let jobs: Vec<Hash> = (0..2_000u32).map(|i| Hash::of(&i.to_le_bytes())).collect();
        for id in &jobs {
            t.advance(*id, JobStage::Finalized, Some(&result(*id)), Some(1));
            assert!(t.bytes() <= TRACKED_BYTES_MAX, "{} bytes", t.bytes());
        }
        assert!(t.get(&jobs[0]).is_none(), "the oldest were forgotten");
        assert!(t.get(&jobs[1_999]).is_some(), "the newest is kept");
        let kept = jobs.iter().filter(|id| t.get(id).is_some()).count();
        // As many as fit: four copies of the output and the entry's own bytes each.
        assert!(kept > TRACKED_BYTES_MAX / (5 * output.len()) && kept < 2_000, "{kept} kept");
        // The count of bytes is exact: forgetting everything brings it back to what is left.
        let expected: usize = t.jobs.values().map(|e| e.bytes).sum();
        assert_eq!(t.bytes(), expected);
    }

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

    #[test]
    fn a_subscriber_hears_only_its_jobs_events() {
        use tokio::sync::broadcast::error::TryRecvError;
        let mut t = Tracker::default();
        let a = Hash::of(b"a");
        let (past, mut rx) = t.subscribe(&a);
        assert!(past.is_empty());
        // Others' events, more than a job's channel holds: not one reaches A's subscriber.
        for i in 0..(4 * JOB_EVENT_BUFFER as u32) {
            let b = Hash::of(&i.to_le_bytes());
            t.advance(b, JobStage::Accepted, None, None);
            t.advance(b, JobStage::Finalized, None, Some(1));
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)), "no other job's event, and no lag");
        assert_eq!(t.watched.len(), 1, "only watched jobs have a channel");
        t.advance(a, JobStage::Accepted, None, None);
        let ev = rx.try_recv().expect("A's own event");
        assert_eq!((ev.job_id, ev.stage), (a, JobStage::Accepted));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        // A second subscriber of the same job shares its channel and gets the past replayed.
        let (past, mut rx2) = t.subscribe(&a);
        assert_eq!(past.iter().map(|e| e.stage).collect::<Vec<_>>(), vec![JobStage::Accepted]);
        assert_eq!(t.watched.len(), 1);
        t.advance(a, JobStage::Expired, None, Some(2));
        assert_eq!(rx.try_recv().map(|e| e.stage).ok(), Some(JobStage::Expired));
        assert_eq!(rx2.try_recv().map(|e| e.stage).ok(), Some(JobStage::Expired));
    }

    #[test]
    fn a_jobs_channel_goes_once_nobody_listens() {
        let mut t = Tracker::default();
        let a = Hash::of(b"a");
        let (_, rx) = t.subscribe(&a);
        let (_, rx2) = t.subscribe(&a);
        drop(rx);
        t.advance(a, JobStage::Accepted, None, None);
        assert!(t.watched.contains_key(&a), "one subscriber is left");
        drop(rx2);
        // The next event finds nobody listening.
        t.advance(a, JobStage::Finalized, None, Some(1));
        assert!(t.watched.is_empty());

        // Subscriptions to jobs that never have an event are swept once the map is full: it
        // never holds more than its bound or twice the live subscriptions.
        let ids: Vec<Hash> = (0..WATCHED_JOBS_MAX as u32 + 1).map(|i| Hash::of(&i.to_le_bytes())).collect();
        let mut live = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let (_, rx) = t.subscribe(id);
            // One in four stays subscribed.
            if i % 4 == 0 {
                live.push(rx);
            }
            assert!(t.watched.len() <= WATCHED_JOBS_MAX.max(2 * live.len()), "{} channels", t.watched.len());
        }
        // The last one, kept, came in after the sweep: only live ones are left.
        assert_eq!(t.watched.len(), live.len(), "swept down to the live ones");
        assert!(t.watched.values().all(|tx| tx.receiver_count() > 0));

        // A forgotten job's channel goes with it when nobody listens, and stays while someone does.
        let mut t = Tracker::default();
        let (old, kept) = (Hash::of(b"old"), Hash::of(b"kept"));
        let (_, rx) = t.subscribe(&old);
        let (_, _kept_rx) = t.subscribe(&kept);
        t.advance(old, JobStage::Accepted, None, None);
        t.advance(kept, JobStage::Accepted, None, None);
        drop(rx);
        for i in 0..TRACKED_JOBS_MAX as u32 {
            t.advance(Hash::of(&i.to_le_bytes()), JobStage::Accepted, None, None);
        }
        assert!(t.get(&old).is_none() && t.get(&kept).is_none(), "both forgotten");
        assert!(!t.watched.contains_key(&old));
        assert!(t.watched.contains_key(&kept));
    }
}
