//! The open-loop load generator, end to end: a short `cairn testnet bench --rate` run on a
//! one-validator, one-provider testnet of real node processes.

use std::process::Command;

use cairn_testnet::load::{Report, SAMPLE_EVERY};

#[test]
fn a_short_open_loop_run_finalizes_every_accepted_job_and_writes_its_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("uppercase.wasm");
    std::fs::write(&module, crate::support::uppercase_module()).expect("write module");
    let report_path = dir.path().join("out").join("report.json");
    // 20 offers/s for 2 s: 40 due, from 8 clients; the drain ends as soon as all are finalized.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["testnet", "bench", "--validators", "1", "--providers", "1", "--block-time-ms", "50"])
        .args(["--rate", "20", "--duration", "2", "--clients", "8", "--drain", "20", "--settle", "2"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--module")
        .arg(&module)
        .arg("--report")
        .arg(&report_path)
        .output()
        .expect("cairn runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("submit→finalized"), "a readable summary\n{stdout}");

    let text = std::fs::read_to_string(&report_path).expect("the report is written");
    let report: Report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the report parses: {e}\n{text}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    for field in [
        "scheduled",
        "sent",
        "not_sent_saturated",
        "accepted",
        "refused",
        "finalized",
        "accepted_not_finalized",
        "offered_per_s",
        "accepted_per_s",
        "finalized_per_s",
        "submit_to_accepted_ms",
        "submit_to_result_ms",
        "submit_to_finalized_ms",
        "refusals",
        "processes",
        "idle_after_s",
    ] {
        assert!(json["points"][0].get(field).is_some(), "the report's point has {field}\n{text}");
    }
    assert_eq!(report.version, cairn_testnet::load::REPORT_VERSION);
    assert_eq!((report.testnet.validators, report.testnet.providers, report.clients), (1, 1, 8));
    assert_eq!(report.points.len(), 1);
    let p = &report.points[0];

    // Offered what was scheduled: 40 offers, all sent (8 clients are plenty at 20/s), at ~20/s.
    assert_eq!(p.scheduled, 40, "{stdout}");
    assert_eq!(p.not_sent_saturated, 0, "{stdout}");
    assert_eq!(p.sent, p.scheduled, "{stdout}");
    assert!((p.offered_per_s - 20.0).abs() < 1e-9, "{stdout}");
    assert!(p.send_lag_ms.p99 < 500.0, "the generator kept its schedule\n{stdout}");
    // Every offer accepted, and every accepted job finalized within the drain.
    assert_eq!((p.accepted, p.refused, p.errors), (40, 0, 0), "{stdout}");
    assert_eq!((p.finalized, p.accepted_not_finalized), (40, 0), "{stdout}");
    assert!(p.refusals.is_empty(), "{stdout}");
    assert_eq!(p.submit_to_accepted_ms.count, 40);
    assert_eq!(p.submit_to_finalized_ms.count, 40);
    assert!(p.submit_to_finalized_ms.p50 > 0.0 && p.submit_to_finalized_ms.p50 <= p.submit_to_finalized_ms.max);
    assert!(p.finalized_per_s > 0.0 && p.blocks > 0, "{stdout}");
    // One job in SAMPLE_EVERY is watched for its result, which comes before its finalization.
    assert_eq!(p.sampled, 40 / SAMPLE_EVERY, "{stdout}");
    assert_eq!(p.submit_to_result_ms.count, p.sampled, "{stdout}");
    assert!(p.submit_to_result_ms.max <= p.submit_to_finalized_ms.max + 1.0, "{stdout}");
    // CPU and memory of both nodes and of the generator.
    let roles: Vec<&str> = p.processes.iter().map(|u| u.role.as_str()).collect();
    assert_eq!(roles, ["validator", "provider", "generator"]);
    assert!(p.processes.iter().all(|u| u.peak_rss_bytes > 0 && u.cpu_s >= 0.0), "{:?}", p.processes);
    assert!(p.processes[0].cpu_s > 0.0, "the validator worked: {:?}", p.processes);
    // Each process's CPU before the load, and over each second of the 2 s watched after it.
    assert!(p.processes.iter().all(|u| u.cpu_percent_after.len() == 2 && u.cpu_percent_before >= 0.0));
    // Each client's key is in the testnet folder, funded at genesis with the client of old.
    let net = dir.path().join("bench").join("rate-20");
    let genesis = cairn_ledger::Genesis::load(&net.join("genesis.json")).expect("genesis");
    assert_eq!(genesis.accounts.len(), 1 + 8);
    assert!(net.join("client-key.json").exists() && net.join("clients").join("7.json").exists());
}
