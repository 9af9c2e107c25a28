//! `--log-format json` (or `log_json` in node.toml): every line of the node's log is one JSON
//! object with stable field names — `timestamp`, `level`, `target`, `message` (every event of
//! the node's own has one), then the event's own fields at the top level.

use crate::support::start;

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_with_stable_field_names() {
    let mut net = start(1).await;
    net.t.kill(1).expect("stop the provider");
    let home = net.t.dir.join("nodes/1");
    let log_path = home.join("node.log");
    let text_lines = std::fs::read_to_string(&log_path).expect("log").lines().count();
    std::fs::write(home.join(cairn_testnet::NODE_CONFIG_FILE), "log_json = true\n").expect("config");
    net.t.restart(1).await.expect("restart");
    let head = net.height(0).await;
    net.wait_height(1, head).await;

    let log = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<&str> = log.lines().skip(text_lines).collect();
    assert!(!lines.is_empty(), "no lines after the restart");
    let mut starting = None;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v.get(field).is_some(), "no {field} in {line}");
        }
        // The node's own events all have a message (a library's may be only fields).
        if v["target"].as_str().is_some_and(|t| t.starts_with("cairn")) {
            assert!(v["message"].is_string(), "no message in {line}");
        }
        if v["message"] == "node starting" {
            starting = Some(v);
        }
    }
    let starting = starting.unwrap_or_else(|| panic!("no `node starting` line in\n{}", lines.join("\n")));
    assert_eq!(starting["level"], "INFO");
    assert_eq!(starting["target"], "cairn_node");
    assert_eq!(starting["provider"], true, "the event's fields are top-level: {starting}");
    assert!(starting["address"].as_str().is_some_and(|a| a.len() == 64), "{starting}");
}
