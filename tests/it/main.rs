//! Cross-crate tests.

mod pipeline;
