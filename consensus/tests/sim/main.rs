//! Consensus under faults: a deterministic simulation of validators running the engine in
//! one process (see `harness`), with blocks that honest validators check (`blocks`) and
//! Byzantine validators (`byzantine`); and the write-ahead log's restart guarantees (see
//! `restart`).
//!
//! Every run draws a base seed at random (printed) and derives each scenario's seeds from it.
//! `CAIRN_SIM_SEEDS=<count>` runs that many seeds per scenario (long-run mode),
//! `CAIRN_SIM_BASE=<base>` fixes the base seed, and `CAIRN_SIM_SEED=<seed>` replays the one
//! seed a failure printed.

mod blocks;
mod byzantine;
mod harness;
mod restart;

use blocks::{BlockStore, Invalidity};
use byzantine::{BadProposal, Behaviour, Expect, JunkKind};
use harness::{
    Crash, LIVENESS_HEIGHTS, Loss, Partition, Report, Rng, Scenario, assert_coverage, run_seeds, shuffled, split,
};

/// Seeds per n = 4 scenario in a normal run.
const SEEDS: u64 = 60;
/// Seeds per n = 7 scenario in a normal run (each costs about twice as much).
const SEEDS_N7: u64 = 30;
/// A fault starts at most this long into a run.
const FAULT_START_MAX_MS: u64 = 2_500;
/// Byzantine behaviours that never stop, per thousand runs (liveness must hold despite them).
const PERSISTENT_PERMILLE: u64 = 250;
/// How long a Byzantine behaviour that stops lasts: at least...
const BYZANTINE_MIN_MS: u64 = 500;
/// ...and at most.
const BYZANTINE_MAX_MS: u64 = 4_000;

/// A Byzantine behaviour's window: from early in the run, until a random time or (sometimes)
/// to the end.
fn byzantine_window(rng: &mut Rng) -> (u64, Option<u64>) {
    let from = rng.range(0, FAULT_START_MAX_MS / 2);
    let until = (!rng.chance(PERSISTENT_PERMILLE)).then(|| from + rng.range(BYZANTINE_MIN_MS, BYZANTINE_MAX_MS));
    (from, until)
}

/// Loses up to `permille_max` per thousand messages from the start until the other faults
/// are over (or a random time, when they are over early).
fn lossy(s: &mut Scenario, rng: &mut Rng, permille_max: u64) {
    let until_ms = s.heal_ms().max(rng.range(0, FAULT_START_MAX_MS));
    s.net.losses.push(Loss { from_ms: 0, until_ms, permille: rng.range(0, permille_max) });
}

/// `f` summed over a scenario's runs.
fn sum(reports: &[Report], f: impl Fn(&Report) -> u64) -> u64 {
    reports.iter().map(f).sum()
}

/// The block model: an honest block passes the honest check (also re-proposed in a later
/// round), and a block spoiled in one way fails it for exactly that reason.
#[test]
fn the_block_check_finds_each_invalidity() {
    let keys: Vec<cairn_ledger::Keypair> = (1..=4u8).map(|i| cairn_ledger::Keypair::from_seed([i; 32])).collect();
    let set = cairn_ledger::ValidatorSet::new(
        keys.iter().map(|k| cairn_ledger::Validator { address: k.public(), power: 1 }).collect(),
    )
    .expect("set");
    let mut store = BlockStore::default();
    let first = blocks::build(1, 0, &blocks::genesis(), cairn_consensus::proposer(&set, 1, 0), 10, Vec::new());
    let parent_hash = store.insert(first, None);
    let parent = store.parent(Some(parent_hash)).expect("stored");
    let me = cairn_consensus::proposer(&set, 2, 1);
    let other = keys.iter().map(|k| k.public()).find(|k| *k != me).expect("another validator");
    let txs = vec![blocks::SimTx { id: 1, bytes: 500, fails: false }];
    let good = blocks::build(2, 1, &parent, me, 50, txs);
    assert_eq!(blocks::check(&good, 2, 1, &parent, &set, 50), Ok(()));
    assert_eq!(blocks::check(&good, 2, 3, &parent, &set, 50), Ok(()), "re-proposed in a later round");
    assert_eq!(blocks::check(&good, 2, 0, &parent, &set, 50), Err(Invalidity::WrongProposer), "a later round");
    for kind in Invalidity::ALL {
        let bad = blocks::spoil(good.clone(), kind, &parent, other, 2);
        assert_eq!(blocks::check(&bad, 2, 1, &parent, &set, 50), Err(kind));
        assert_ne!(bad.hash(), good.hash());
    }
}

#[test]
fn n4f0_happy_path() {
    let reports = run_seeds("n4f0_happy_path", SEEDS, |_| Scenario::new(4));
    assert!(reports.iter().all(|r| r.decided_heights >= LIVENESS_HEIGHTS));
    // The network repeats some messages (late duplicates): they stop before the core.
    let dropped = sum(&reports, |r| r.repeats + r.stats.duplicates_dropped);
    assert_coverage(&reports, dropped > 0, "repeated messages stop before the core");
}

#[test]
fn n4f1_lossy_reordering_network() {
    run_seeds("n4f1_lossy_reordering_network", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        s.net.latency_ms = rng.range(5, 40);
        s.net.jitter_ms = rng.range(20, 150);
        // Steady loss for a while, and a burst of heavy loss within it.
        let until_ms = rng.range(FAULT_START_MAX_MS, 2 * FAULT_START_MAX_MS);
        s.net.losses.push(Loss { from_ms: 0, until_ms, permille: rng.range(50, 250) });
        let from_ms = rng.range(0, FAULT_START_MAX_MS);
        let burst = Loss { from_ms, until_ms: from_ms + rng.range(300, 3000), permille: rng.range(500, 950) };
        s.net.losses.push(burst);
        s
    });
}

#[test]
fn n4f1_partition_heals() {
    let reports = run_seeds("n4f1_partition_heals", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let from_ms = rng.range(0, FAULT_START_MAX_MS);
        s.partitions.push(Partition { side_a: split(rng, 4), from_ms, heal_ms: from_ms + rng.range(500, 5000) });
        lossy(&mut s, rng, 50);
        s
    });
    // A 2-2 split leaves no quorum: heights that start meanwhile wait for the heal.
    let stalled = sum(&reports, |r| r.heights_through_quorum_loss);
    assert_coverage(&reports, stalled > 0, "some heights wait for a quorum (and none is decided without one)");
}

#[test]
fn n4f1_crash_restart_from_wal() {
    run_seeds("n4f1_crash_restart_from_wal", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let node = rng.below(4) as usize;
        let at_ms = rng.range(0, FAULT_START_MAX_MS);
        s.crashes.push(Crash { node, at_ms, after_decision: false, restart_ms: at_ms + rng.range(1, 3000) });
        lossy(&mut s, rng, 50);
        s
    });
}

#[test]
fn n4_every_validator_crashes_and_restarts() {
    // More than f down at once: no progress meanwhile, and no fork after the restarts.
    let reports = run_seeds("n4_every_validator_crashes_and_restarts", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        for node in 0..4 {
            let at_ms = rng.range(0, FAULT_START_MAX_MS);
            s.crashes.push(Crash { node, at_ms, after_decision: false, restart_ms: at_ms + rng.range(1, 1500) });
        }
        s
    });
    let stalled = sum(&reports, |r| r.heights_through_quorum_loss);
    assert_coverage(&reports, stalled > 0, "some heights wait for a quorum (and none is decided without one)");
}

#[test]
fn n4_quorum_lost_and_regained() {
    // Two of four down together (for 0.5 to 3 s), each crashing right after a decision: the
    // others may still finish the height in progress on the votes already sent, and start
    // the next one, which no one decides before a crashed validator is back.
    let reports = run_seeds("n4_quorum_lost_and_regained", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let order = shuffled(rng, 4);
        let first = rng.range(0, FAULT_START_MAX_MS);
        let second = first + rng.range(0, 300);
        let back = second + rng.range(500, 3000);
        s.crashes.push(Crash {
            node: order[0],
            at_ms: first,
            after_decision: true,
            restart_ms: back + rng.range(0, 300),
        });
        s.crashes.push(Crash { node: order[1], at_ms: second, after_decision: true, restart_ms: back });
        lossy(&mut s, rng, 30);
        s
    });
    let stalled = sum(&reports, |r| r.heights_through_quorum_loss);
    assert_coverage(&reports, stalled > 0, "some heights wait for a quorum (and none is decided without one)");
}

#[test]
fn n4f1_equivocation() {
    let reports = run_seeds("n4f1_equivocation", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let node = rng.below(4) as usize;
        let (from, until) = byzantine_window(rng);
        s.byzantine(node, Behaviour::EquivocatingProposals, from, until);
        s.byzantine(node, Behaviour::EquivocatingVotes, from, until);
        lossy(&mut s, rng, 50);
        s
    });
    let twins = sum(&reports, |r| r.proposal_twins);
    assert_coverage(&reports, twins > 0, "the equivocating proposer sends second proposals");
    let with_evidence = reports.iter().filter(|r| !r.evidence.is_empty()).count();
    assert_coverage(&reports, with_evidence * 2 > reports.len(), "honest validators record the equivocations they see");
    let proposals = reports
        .iter()
        .flat_map(|r| &r.evidence)
        .filter(|e| matches!(e, cairn_consensus::Evidence::ConflictingProposals { .. }));
    assert_coverage(&reports, proposals.count() > 0, "honest validators record conflicting proposals");
}

/// Checks that a Byzantine proposer went through every kind of bad block and that honest
/// validators refused them.
/// Over a scenario with few Byzantine proposals (n = 7: its rounds are 1 in 7), only that
/// invalid blocks were proposed and refused; the n = 4 scenarios cover every kind.
fn assert_some_bad_proposals(reports: &[Report]) {
    let proposed = sum(reports, |r| r.bad_proposals.values().sum::<u64>());
    assert_coverage(reports, proposed > 0, "a Byzantine proposer proposes invalid blocks");
    assert_coverage(reports, sum(reports, |r| r.blocks_refused) > 0, "honest validators refuse invalid blocks");
}

fn assert_every_bad_proposal(reports: &[Report]) {
    for kind in BadProposal::ALL {
        let proposed = sum(reports, |r| r.bad_proposals.get(&kind).copied().unwrap_or(0));
        assert_coverage(reports, proposed > 0, &format!("a Byzantine proposer proposes {kind:?}"));
    }
    assert_coverage(reports, sum(reports, |r| r.blocks_refused) > 0, "honest validators refuse invalid blocks");
}

#[test]
fn n4f1_invalid_proposer() {
    let reports = run_seeds("n4f1_invalid_proposer", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let (from, until) = byzantine_window(rng);
        s.byzantine(rng.below(4) as usize, Behaviour::InvalidProposals, from, until);
        lossy(&mut s, rng, 50);
        s
    });
    assert_every_bad_proposal(&reports);
}

#[test]
fn n4f1_proposes_and_votes_for_invalid_blocks() {
    let reports = run_seeds("n4f1_proposes_and_votes_for_invalid_blocks", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let node = rng.below(4) as usize;
        let (from, until) = byzantine_window(rng);
        s.byzantine(node, Behaviour::InvalidProposals, from, until);
        s.byzantine(node, Behaviour::VotesForInvalid, from, until);
        lossy(&mut s, rng, 50);
        s
    });
    assert_every_bad_proposal(&reports);
    assert_coverage(&reports, sum(&reports, |r| r.votes_for_invalid) > 0, "votes for invalid blocks are sent");
}

/// Checks that a junk peer sent every kind of junk, and that gossip validation refused or
/// ignored it as it should (each refusal reached, each out-of-range check reached), and
/// that forged sync answers were refused.
fn assert_every_junk(reports: &[Report]) {
    for kind in JunkKind::ALL {
        let count = |f: fn(&harness::JunkCount) -> u64| sum(reports, |r| r.junk.get(&kind).map_or(0, f));
        assert_coverage(reports, count(|c| c.sent) > 0, &format!("a junk peer sends {kind:?}"));
        match kind.expect() {
            Expect::Rejected | Expect::NotAccepted => {
                assert_coverage(reports, count(|c| c.rejected) > 0, &format!("{kind:?} is refused"));
            }
            Expect::NotRejected => {
                let seen = count(|c| c.ignored + c.accepted);
                assert_coverage(reports, seen > 0, &format!("{kind:?} is ignored or accepted"));
            }
        }
    }
    for kind in [JunkKind::StaleHeight, JunkKind::FarFutureHeight, JunkKind::FarFutureRound] {
        let ignored = sum(reports, |r| r.junk.get(&kind).map_or(0, |c| c.ignored));
        assert_coverage(reports, ignored > 0, &format!("{kind:?} is ignored"));
    }
    assert_coverage(reports, sum(reports, |r| r.sync_refused) > 0, "forged sync answers are refused");
}

#[test]
fn n4f1_junk_peer() {
    let reports = run_seeds("n4f1_junk_peer", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let (from, until) = byzantine_window(rng);
        s.byzantine(rng.below(4) as usize, Behaviour::Junk, from, until);
        lossy(&mut s, rng, 50);
        s
    });
    assert_every_junk(&reports);
}

fn n7f2(rng: &mut Rng) -> (Scenario, Vec<usize>) {
    let mut s = Scenario::new(7);
    s.net.latency_ms = rng.range(5, 30);
    s.net.jitter_ms = rng.range(10, 80);
    (s, shuffled(rng, 7))
}

#[test]
fn n7f2_partition_heals() {
    let reports = run_seeds("n7f2_partition_heals", SEEDS_N7, |rng| {
        let (mut s, _) = n7f2(rng);
        let from_ms = rng.range(0, FAULT_START_MAX_MS);
        s.partitions.push(Partition { side_a: split(rng, 7), from_ms, heal_ms: from_ms + rng.range(500, 5000) });
        lossy(&mut s, rng, 100);
        s
    });
    let stalled = sum(&reports, |r| r.heights_through_quorum_loss);
    assert_coverage(&reports, stalled > 0, "some heights wait for a quorum (and none is decided without one)");
}

#[test]
fn n7f2_crashes_restart_from_wal() {
    run_seeds("n7f2_crashes_restart_from_wal", SEEDS_N7, |rng| {
        let (mut s, order) = n7f2(rng);
        for &node in &order[..2] {
            let at_ms = rng.range(0, FAULT_START_MAX_MS);
            s.crashes.push(Crash { node, at_ms, after_decision: false, restart_ms: at_ms + rng.range(1, 3000) });
        }
        lossy(&mut s, rng, 100);
        s
    });
}

#[test]
fn n7f2_equivocation_and_crash() {
    let reports = run_seeds("n7f2_equivocation_and_crash", SEEDS_N7, |rng| {
        let (mut s, order) = n7f2(rng);
        let (from, until) = byzantine_window(rng);
        s.byzantine(order[0], Behaviour::EquivocatingProposals, from, until);
        s.byzantine(order[0], Behaviour::EquivocatingVotes, from, until);
        let at_ms = rng.range(0, FAULT_START_MAX_MS);
        s.crashes.push(Crash { node: order[1], at_ms, after_decision: false, restart_ms: at_ms + rng.range(1, 3000) });
        lossy(&mut s, rng, 50);
        s
    });
    assert_coverage(&reports, reports.iter().any(|r| !r.evidence.is_empty()), "honest validators record equivocations");
}

#[test]
fn n7f2_two_equivocators_and_partition() {
    run_seeds("n7f2_two_equivocators_and_partition", SEEDS_N7, |rng| {
        let (mut s, order) = n7f2(rng);
        for &node in &order[..2] {
            let (from, until) = byzantine_window(rng);
            s.byzantine(node, Behaviour::EquivocatingProposals, from, until);
            s.byzantine(node, Behaviour::EquivocatingVotes, from, until);
        }
        let from_ms = rng.range(0, FAULT_START_MAX_MS);
        s.partitions.push(Partition { side_a: split(rng, 7), from_ms, heal_ms: from_ms + rng.range(500, 3000) });
        s
    });
}

#[test]
fn n7f2_invalid_proposer_and_invalid_voter() {
    // One proposes invalid blocks, the other votes for them: 2 of 7 votes, never a quorum.
    let reports = run_seeds("n7f2_invalid_proposer_and_invalid_voter", SEEDS_N7, |rng| {
        let (mut s, order) = n7f2(rng);
        let (from, until) = byzantine_window(rng);
        s.byzantine(order[0], Behaviour::InvalidProposals, from, until);
        s.byzantine(order[1], Behaviour::VotesForInvalid, from, until);
        lossy(&mut s, rng, 100);
        s
    });
    assert_some_bad_proposals(&reports);
    assert_coverage(&reports, sum(&reports, |r| r.votes_for_invalid) > 0, "votes for invalid blocks are sent");
}

#[test]
fn n7f2_byzantine_mix() {
    // Two Byzantine validators, each with one or two behaviours of any kind, on their own
    // windows; sometimes a partition as well.
    const BEHAVIOURS: [Behaviour; 5] = [
        Behaviour::InvalidProposals,
        Behaviour::EquivocatingProposals,
        Behaviour::EquivocatingVotes,
        Behaviour::Junk,
        Behaviour::VotesForInvalid,
    ];
    run_seeds("n7f2_byzantine_mix", SEEDS_N7, |rng| {
        let (mut s, order) = n7f2(rng);
        for &node in &order[..2] {
            for _ in 0..rng.range(1, 2) {
                let behaviour = BEHAVIOURS[rng.below(BEHAVIOURS.len() as u64) as usize];
                let (from, until) = byzantine_window(rng);
                s.byzantine(node, behaviour, from, until);
            }
        }
        if rng.chance(500) {
            let from_ms = rng.range(0, FAULT_START_MAX_MS);
            s.partitions.push(Partition { side_a: split(rng, 7), from_ms, heal_ms: from_ms + rng.range(500, 3000) });
        }
        lossy(&mut s, rng, 50);
        s
    });
}
