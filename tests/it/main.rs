//! Cross-crate tests.

mod fixtures_linked;
mod pipeline;
mod replication;
