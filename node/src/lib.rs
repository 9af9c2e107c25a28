//! The Cairn node.
//!
//! A node is one event loop, an actor ([`service`]), that alone owns the chain ([`chain`],
//! over `cairn-store`), the mempool ([`mempool`]) and the job tracker ([`tracker`]), and
//! drives the libp2p swarm ([`p2p`]), consensus ([`bft`], every validator), the provider's
//! work and the block executor. The JSON-RPC server ([`rpc_server`], fair to its clients by
//! [`rpc_limits`]; its methods in [`rpc_api`]) reads a view the loop publishes and asks the
//! loop for the rest. [`run_node`] starts one with a [`NodeConfig`] and runs it until shutdown.
//! The `cairn` command line that runs it (`cairn node run`) is the `cairn` crate (`cli/`).

pub mod backoff;
pub mod backpressure;
pub mod bft;
pub mod chain;
pub mod config;
pub mod early;
pub mod exec;
pub mod explorer;
pub mod gossip_sim;
pub mod health;
pub mod log_limit;
pub mod malloc;
pub mod mempool;
pub mod metrics;
pub mod p2p;
pub mod provider_store;
pub mod rpc_api;
pub mod rpc_limits;
pub mod rpc_server;
pub mod service;
#[cfg(test)]
mod test_genesis;
pub mod tracker;
pub mod verdicts;

use std::sync::Arc;

use anyhow::Context;
use cairn_ledger::{Genesis, Keypair};
use cairn_vm::{Vm, VmConfig};
use tokio::sync::{mpsc, watch};

pub use config::{BoundAddresses, NodeConfig};

/// Starts a node with `config` and runs it until `shutdown` resolves.
pub async fn run_node(config: NodeConfig, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.home).with_context(|| format!("cannot create {}", config.home.display()))?;
    let genesis = Genesis::load(&config.genesis_path())?;
    let key = Keypair::load(&config.key_path())?;
    let chain =
        chain::Chain::open_with(genesis, &config.db_path(), config.state_history_blocks, config.store_budget())?;
    if config.provider && chain.state().provider(&key.public()).is_none() {
        // It may be registered in blocks this node has not synced yet.
        tracing::warn!(
            address = %key.public(),
            "--provider: this key is not a registered provider at the local head; register it with \
             `cairn provider register`, or wait for sync if it already is"
        );
    }
    tracing::info!(
        chain = %chain.chain_id,
        height = chain.height(),
        address = %key.public(),
        validator = config.validator,
        provider = config.provider,
        "node starting"
    );
    let config = Arc::new(config);
    let (requests, requests_rx) = mpsc::channel(service::REQUEST_QUEUE);
    let (view_tx, view) = watch::channel(Arc::new(service::Node::initial_view(&chain)));
    let admission = Arc::new(backpressure::Admission::new(config.mempool_txs_max, config.block_time_ms));
    let verifier =
        service::view::Verifier::new(chain.signatures.clone(), chain.state().params().output_bytes_max as usize);
    // Compiled modules survive restarts in the node's own folder (only it writes there).
    let vm = Arc::new(Vm::new(VmConfig {
        cache_dir: Some(config.home.join("vm-cache")),
        cache_bytes_max: usize::try_from(config.module_cache_bytes).unwrap_or(usize::MAX),
        ..VmConfig::default()
    }));
    let handle = service::view::Handle {
        requests,
        view,
        store: chain.store.clone(),
        vm: vm.clone(),
        admission: admission.clone(),
        verifier: verifier.clone(),
        config: config.clone(),
        address: key.public(),
    };
    let metrics = Arc::new(
        metrics::Metrics::new(rpc_server::method_names(), Some(vm.clone()), Some(config.db_path()))
            .with_store_memory(chain.store.clone()),
    );
    let metrics_addr = match config.metrics {
        Some(addr) => {
            let bound = metrics::serve(addr, metrics.clone()).await?;
            tracing::info!("metrics served on http://{bound}/metrics");
            Some(bound)
        }
        None => None,
    };
    let (rpc_addr, rpc_handle) = rpc_server::start_with_metrics(handle, Some(metrics.clone())).await?;
    tracing::info!("RPC listening on {rpc_addr} (HTTP and WebSocket)");
    let parts = service::Parts {
        config,
        key,
        vm,
        admission,
        verifier,
        requests: requests_rx,
        view: view_tx,
        rpc_addr,
        metrics,
        metrics_addr,
    };
    let node = service::Node::new(chain, parts)?;
    let trimmer = malloc::spawn_trimmer();
    let result = node.run(shutdown).await;
    trimmer.abort();
    let _ = rpc_handle.stop();
    rpc_handle.stopped().await;
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
