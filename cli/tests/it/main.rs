//! End-to-end tests: real `cairn` processes on loopback, real rocksdb, real wasmer, real
//! JSON-RPC.

mod bench;
mod bft;
mod corrupt;
mod crash;
mod e2e;
mod error_codes;
mod estimate;
mod explorer;
mod hostile;
mod init;
mod js_peer;
mod logs;
mod malformed;
mod market;
mod metrics;
mod nonce;
mod one_path;
mod output;
mod restart;
mod rpc_fair;
mod shutdown;
mod state_sync;
mod support;
mod sync_liars;
mod ts_client;
