//! A corrupt database: a bad state row or head block stops the node at startup with a message
//! that names what is corrupt and how to recover (and following it works); a corrupt entry of
//! a validator's consensus log makes it sit out that height rather than risk voting twice,
//! and it takes part again from the next.

use std::path::Path;

use cairn_node::chain::Chain;
use rocksdb::{DB, IteratorMode, Options};

use crate::bft::{assert_no_fork, job};
use crate::support::{TIMEOUT, start, start_custom, uppercase_module};
use cairn_rpc::CairnApiClient;
use cairn_rpc::client::{self, OfferTerms};

/// Bytes that decode as no record of the node's.
const GARBAGE: [u8; 3] = [0xff, 0xff, 0xff];

/// Overwrites the value of the first row of column family `cf` in the database at `db` (the
/// node is stopped) — or of every row when `every` — with `bytes`. Returns how many rows it
/// overwrote.
fn corrupt_rows(db: &Path, cf: &str, every: bool, select: impl Fn(&[u8]) -> bool, bytes: &[u8]) -> usize {
    let cfs = DB::list_cf(&Options::default(), db).expect("list column families");
    let handle = DB::open_cf(&Options::default(), db, &cfs).expect("open the stopped node's database");
    let family = handle.cf_handle(cf).expect("column family");
    let keys: Vec<Box<[u8]>> = handle
        .iterator_cf(family, IteratorMode::Start)
        .map(|item| item.expect("row").0)
        .filter(|k| select(k))
        .take(if every { usize::MAX } else { 1 })
        .collect();
    for k in &keys {
        handle.put_cf(family, k, bytes).expect("overwrite");
    }
    handle.flush_cf(family).expect("flush");
    keys.len()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_row_or_head_block_stops_the_node_with_how_to_recover() {
    let mut net = start(1).await;
    let c = net.rpc(0).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    for i in 0..2 {
        let input = format!("before {i}").into_bytes();
        let offer = client::sign_offer(&c, &net.client_key, module_id, input, OfferTerms::default(), None)
            .await
            .expect("offer");
        client::run_to_finality(&c, offer, TIMEOUT, |_| {}).await.unwrap_or_else(|e| panic!("{e:#}\n{}", net.logs()));
    }
    let head = net.height(0).await;
    net.wait_height(1, head).await;
    net.t.kill(1).expect("stop the provider");
    let home = net.t.dir.join("nodes").join("1");
    let db = home.join("db");
    let copy = home.join("db-copy");
    copy_dir(&db, &copy);

    // State rows that do not decode: every value row of the state tree (the state is read from
    // each key's newest) holds bytes that are no state value.
    let value_row = [&[1u8][..], &GARBAGE].concat();
    assert!(corrupt_rows(&db, "jmt_values", true, |_| true, &value_row) > 0);
    let e = Chain::open(net.genesis.clone(), &db).err().expect("a corrupt state row is refused");
    let message = format!("{e:#}");
    for part in ["rebuilding the state", "does not decode", "is corrupt", "move that folder aside"] {
        assert!(message.contains(part), "{part:?} in: {message}");
    }
    // The head block.
    let head_key = head.to_be_bytes();
    assert_eq!(corrupt_rows(&copy, "blocks", false, |k| k == head_key, &GARBAGE), 1);
    let e = Chain::open(net.genesis.clone(), &copy).err().expect("a corrupt head block is refused");
    let message = format!("{e:#}");
    for part in ["blocks", "is corrupt", "move that folder aside"] {
        assert!(message.contains(part), "{part:?} in: {message}");
    }

    // The node refuses to start, and says why in its log.
    let refused = net.t.restart(1).await;
    assert!(refused.is_err(), "a node with a corrupt database does not start");
    let log = std::fs::read_to_string(home.join("node.log")).expect("log");
    assert!(log.contains("is corrupt") && log.contains("move that folder aside"), "{}", net.t.log_tail(1, 20));

    // Doing what it says: the folder moved aside, the node syncs every block again.
    std::fs::rename(&db, home.join("db.corrupt")).expect("move the database aside");
    net.t.restart(1).await.expect("starts with an empty database");
    net.wait_height(1, head).await;
    let c = net.rpc(1).await;
    let (ours, theirs) = (c.chain_head().await.expect("head"), net.rpc(0).await.chain_head().await.expect("head"));
    if ours.height == theirs.height {
        assert_eq!(ours.hash, theirs.hash);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validator_with_a_corrupt_consensus_log_sits_that_height_out_and_votes_again() {
    const CRASH_HEIGHT: u64 = 3;
    const VALIDATORS: usize = 4;
    let mut net = start_custom(VALIDATORS, 1, 0, |s| s.crash_after_wal_append = Some((0, CRASH_HEIGHT))).await;
    let module_id = cairn_ledger::Hash::of(&uppercase_module());
    let mut i = 0;
    while !net.t.exited(0).expect("try_wait") {
        assert!(i < 20, "validator 0 never aborted at height {CRASH_HEIGHT}\n{}", net.logs());
        job(&net, VALIDATORS, module_id, &format!("before the crash {i}")).await;
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Its log of CRASH_HEIGHT holds the vote it signed: make every entry unreadable.
    let home = net.t.dir.join("nodes").join("0");
    let height_prefix = CRASH_HEIGHT.to_be_bytes();
    let overwritten =
        corrupt_rows(&home.join("db"), "consensus_wal", true, |k| k.starts_with(&height_prefix), &GARBAGE);
    assert!(overwritten > 0, "the crashed validator logged at height {CRASH_HEIGHT}");
    job(&net, VALIDATORS, module_id, "three of four").await;

    net.t.restart(0).await.expect("a corrupt consensus log does not stop a validator among several");
    let log = std::fs::read_to_string(home.join("node.log")).expect("node 0's log");
    assert!(
        log.contains(&format!("the consensus log of height {CRASH_HEIGHT} is corrupt")),
        "it says so\n{}",
        net.t.log_tail(0, 30)
    );
    let head = net.height(1).await;
    net.wait_height(0, head).await;
    for i in 0..3 {
        job(&net, 0, module_id, &format!("after the restart {i}")).await;
    }
    net.t.stop();
    assert_no_fork(&net);
}
