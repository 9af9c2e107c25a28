//! Cross-crate tests.

mod pipeline;
mod replication;
