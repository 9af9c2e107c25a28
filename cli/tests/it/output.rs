//! The CLI as a Unix tool: output to a pipe nobody reads any more ends it quietly.

use std::process::Command;

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.json");
    let made = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["keys", "new", "--out"])
        .arg(&key)
        .output()
        .expect("cairn keys new");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // A pipe whose reading end is already closed: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["keys", "show"])
        .arg(&key)
        .stdout(writer)
        .output()
        .expect("cairn keys show");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "quiet: {stderr}");
}
