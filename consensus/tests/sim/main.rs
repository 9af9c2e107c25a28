//! Consensus under faults: a deterministic simulation of validators running the engine in
//! one process (see `harness`), and the write-ahead log's restart guarantees (see `restart`).
//!
//! `CAIRN_SIM_SEEDS=<count>` runs more seeds per scenario (long-run mode);
//! `CAIRN_SIM_SEED=<seed>` replays the one seed a failure printed.

mod harness;
mod restart;

use harness::{Crash, Partition, Rng, Scenario, run_seeds, shuffled, split};

/// Seeds per scenario in a normal run.
const SEEDS: u64 = 60;

#[test]
fn n4f0_happy_path() {
    let reports = run_seeds("n4f0_happy_path", SEEDS, |_| Scenario::new(4));
    assert!(reports.iter().all(|r| r.decided_heights >= 4));
    // The network repeats some messages (late duplicates): they stop before the core.
    let dropped: u64 = reports.iter().map(|r| r.repeats + r.stats.duplicates_dropped).sum();
    assert!(dropped > 0, "repeated messages reach the core");
}

#[test]
fn n4f1_lossy_reordering_network() {
    run_seeds("n4f1_lossy_reordering_network", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        s.net.latency_ms = rng.range(5, 40);
        s.net.jitter_ms = rng.range(20, 150);
        s.net.loss_permille = rng.range(50, 250);
        s
    });
}

#[test]
fn n4f1_partition_heals() {
    run_seeds("n4f1_partition_heals", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let from_ms = rng.range(0, 1500);
        s.partitions.push(Partition { side_a: split(rng, 4), from_ms, heal_ms: from_ms + rng.range(500, 5000) });
        s.net.loss_permille = rng.range(0, 50);
        s
    });
}

#[test]
fn n4f1_crash_restart_from_wal() {
    run_seeds("n4f1_crash_restart_from_wal", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        let node = rng.below(4) as usize;
        let at_ms = rng.range(0, 2000);
        s.crashes.push(Crash { node, at_ms, restart_ms: at_ms + rng.range(1, 3000) });
        s.net.loss_permille = rng.range(0, 50);
        s
    });
}

#[test]
fn n4_every_validator_crashes_and_restarts() {
    // More than f down at once: no progress meanwhile, and no fork after the restarts.
    run_seeds("n4_every_validator_crashes_and_restarts", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        for node in 0..4 {
            let at_ms = rng.range(0, 2500);
            s.crashes.push(Crash { node, at_ms, restart_ms: at_ms + rng.range(1, 1500) });
        }
        s
    });
}

#[test]
fn n4f1_equivocation() {
    let reports = run_seeds("n4f1_equivocation", SEEDS, |rng| {
        let mut s = Scenario::new(4);
        s.equivocators.push(rng.below(4) as usize);
        s.net.loss_permille = rng.range(0, 50);
        s
    });
    let with_evidence = reports.iter().filter(|r| !r.evidence.is_empty()).count();
    assert!(with_evidence * 2 > reports.len(), "honest validators record the equivocations they see");
}

fn n7f2(rng: &mut Rng) -> (Scenario, Vec<usize>) {
    let mut s = Scenario::new(7);
    s.net.latency_ms = rng.range(5, 30);
    s.net.jitter_ms = rng.range(10, 80);
    s.target_height = 3;
    (s, shuffled(rng, 7))
}

#[test]
fn n7f2_partition_heals() {
    run_seeds("n7f2_partition_heals", SEEDS / 2, |rng| {
        let (mut s, _) = n7f2(rng);
        let from_ms = rng.range(0, 1500);
        s.partitions.push(Partition { side_a: split(rng, 7), from_ms, heal_ms: from_ms + rng.range(500, 5000) });
        s.net.loss_permille = rng.range(0, 100);
        s
    });
}

#[test]
fn n7f2_crashes_restart_from_wal() {
    run_seeds("n7f2_crashes_restart_from_wal", SEEDS / 2, |rng| {
        let (mut s, order) = n7f2(rng);
        for &node in &order[..2] {
            let at_ms = rng.range(0, 2000);
            s.crashes.push(Crash { node, at_ms, restart_ms: at_ms + rng.range(1, 3000) });
        }
        s.net.loss_permille = rng.range(0, 100);
        s
    });
}

#[test]
fn n7f2_equivocation_and_crash() {
    let reports = run_seeds("n7f2_equivocation_and_crash", SEEDS / 2, |rng| {
        let (mut s, order) = n7f2(rng);
        s.equivocators.push(order[0]);
        let at_ms = rng.range(0, 2000);
        s.crashes.push(Crash { node: order[1], at_ms, restart_ms: at_ms + rng.range(1, 3000) });
        s.net.loss_permille = rng.range(0, 50);
        s
    });
    assert!(reports.iter().any(|r| !r.evidence.is_empty()), "honest validators record equivocations");
}

#[test]
fn n7f2_two_equivocators_and_partition() {
    run_seeds("n7f2_two_equivocators_and_partition", SEEDS / 2, |rng| {
        let (mut s, order) = n7f2(rng);
        s.equivocators.extend_from_slice(&order[..2]);
        let from_ms = rng.range(0, 1000);
        s.partitions.push(Partition { side_a: split(rng, 7), from_ms, heal_ms: from_ms + rng.range(500, 3000) });
        s
    });
}
