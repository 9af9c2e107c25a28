//! Cross-crate tests of Cairn (in `it/`): a job's whole path through the ledger, the vm, the
//! contracts, consensus and the store in one process, down to a proof verified from the
//! genesis alone.
