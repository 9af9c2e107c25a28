//! `cairn`: run a node, submit jobs, verify receipts, run a local testnet.

fn main() -> std::process::ExitCode {
    cairn::main()
}
