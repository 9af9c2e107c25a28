//! End-to-end tests: real `cairn` processes on loopback, real rocksdb, real wasmer, real
//! JSON-RPC.

mod e2e;
mod malformed;
mod restart;
mod support;
