//! The loop's fairness: a flood of one input slows the others without stopping them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_ledger::{Keypair, Transaction};
use cairn_vm::{Vm, VmConfig};
use tokio::sync::{mpsc, oneshot, watch};

use super::view::{Request, Verifier};
use super::{Node, Parts};
use crate::backpressure::Admission;
use crate::chain::Chain;
use crate::config::NodeConfig;
use crate::test_genesis;

/// How many heights the lone validator must finalize while its request queue stays full.
const HEIGHTS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn blocks_keep_coming_while_requests_flood_the_loop() {
    let client = Keypair::from_seed([1; 32]);
    let provider = Keypair::from_seed([2; 32]);
    let genesis = test_genesis::market("flood", &client, 1_000_000, &[(provider.public(), 1, 100)]);
    let home = tempfile::tempdir().expect("tempdir");
    // A lone validator (the genesis one) that makes a block every 20 ms, work or not.
    let config = Arc::new(NodeConfig {
        home: home.path().to_path_buf(),
        validator: true,
        empty_blocks: true,
        block_time_ms: 20,
        ..NodeConfig::default()
    });
    let chain = Chain::open(genesis.clone(), &config.db_path()).expect("chain");
    let (requests_tx, requests) = mpsc::channel(super::REQUEST_QUEUE);
    let (view_tx, mut view) = watch::channel(Arc::new(Node::initial_view(&chain)));
    let admission = Arc::new(Admission::new(config.mempool_txs_max, config.block_time_ms));
    let verifier = Verifier::new(chain.signatures.clone(), chain.state().params().output_bytes_max as usize);
    let vm = Arc::new(Vm::new(VmConfig { cache_dir: None, memory_pool_regions: 0, ..VmConfig::default() }));
    let parts = Parts {
        config,
        key: Keypair::from_seed([9; 32]),
        vm,
        admission,
        verifier,
        requests,
        view: view_tx,
        rpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics: Arc::new(crate::metrics::Metrics::new([], None, None)),
        metrics_addr: None,
    };
    let node = Node::new(chain, parts).expect("node");
    let (stop, stopped) = oneshot::channel::<()>();
    let stopping = async {
        let _ = stopped.await;
    };

    // Requests the loop answers with a check of the chain's rules, sent faster than it answers
    // them, by senders that never wait for an answer: the queue stays full.
    let offer = Transaction::Offer(test_genesis::offer(genesis.chain_id(), &client).sign(&client));
    let flooding = Arc::new(AtomicBool::new(true));
    let mut flooders = Vec::new();
    for _ in 0..2 {
        let (requests, flooding, offer) = (requests_tx.clone(), flooding.clone(), offer.clone());
        flooders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while flooding.load(Ordering::Relaxed) {
                let (reply, _) = oneshot::channel();
                if requests.send(Request::Check { tx: Box::new(offer.clone()), reply }).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        }));
    }
    // The loop runs on this task (its future is not `Send`), the flooders on the others.
    let test = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(requests_tx.capacity() < super::REQUEST_QUEUE / 2, "the queue is kept full");
        let from = view.borrow().height();
        let deadline = Instant::now() + Duration::from_secs(30);
        while view.borrow().height() < from + HEIGHTS {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "heights stopped at {} while requests flooded the loop", view.borrow().height());
            let _ = tokio::time::timeout(left, view.changed()).await;
        }
        flooding.store(false, Ordering::Relaxed);
        let mut sent = 0;
        for f in flooders {
            sent += f.await.expect("a flooder");
        }
        assert!(sent > 0);
        let _ = stop.send(());
    };
    let (ran, ()) = tokio::join!(node.run(stopping), test);
    ran.expect("the loop stops cleanly");
}

#[test]
fn the_loop_wakes_for_the_earliest_of_its_clocks_and_each_comes_round_again() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let now = Duration::ZERO;
    let mut clocks = super::Clocks::new(ms(50), t0);
    // Maintenance and a flush are due at once; the flush counts only with something to send.
    assert_eq!(clocks.next_due(None, false), t0);
    assert!(clocks.maintenance_due(t0, now));
    assert!(!clocks.maintenance_due(t0 + ms(49), now), "not again before its interval");
    assert_eq!(clocks.next_due(None, false), t0 + ms(50));
    assert_eq!(clocks.next_due(None, true), t0, "an outbox waiting since before goes out at once");
    assert!(clocks.flush_due(t0 + ms(1), now));
    assert_eq!(clocks.next_due(None, true), t0 + ms(1) + super::OUTBOX_FLUSH_INTERVAL);
    assert_eq!(clocks.next_due(Some(t0 + ms(3)), true), t0 + ms(3), "a consensus timer first");
    // After a busy turn, only what waited LATE_WORK past its time.
    let late = super::LATE_WORK;
    assert!(!clocks.maintenance_due(t0 + ms(50), late), "due, but it may wait for a quiet turn");
    assert!(clocks.maintenance_due(t0 + ms(50) + late, late));
    // A late turn: the next is an interval after it, not a burst of missed ones.
    assert!(clocks.maintenance_due(t0 + ms(500), now));
    assert!(!clocks.maintenance_due(t0 + ms(501), now));
    assert_eq!(clocks.next_due(None, false), t0 + ms(550));
}
