//! The operator's kit in `ops/`, checked against the node: every metric the Grafana dashboard
//! and the Prometheus alerts query is one a node exports (so renaming a metric in
//! `src/metrics.rs` without them fails here), every panel of the dashboard has a title and a
//! query, Prometheus' own `promtool` accepts the alerting rules, the scrape configuration and
//! each of the dashboard's queries, and the example `node.toml` is a configuration the node
//! accepts, the one the systemd unit reads. `docs/OPERATING.md` describes them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cairn_node::NodeConfig;
use cairn_node::metrics::{Metrics, StatusLabel, TopicLabel};
use cairn_vm::{Vm, VmConfig};
use serde_json::Value;

/// A file of `ops/`.
fn ops(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The names of every series a node exports, as Prometheus stores them: each sample's name, and
/// the names each `# TYPE` line implies: `_total` of a counter, `_bucket`, `_sum` and `_count`
/// of a histogram, `_info` of an info.
fn exported_names() -> BTreeSet<String> {
    let vm = Arc::new(Vm::new(VmConfig::default()));
    let dir = tempfile::tempdir().expect("a folder");
    let metrics = Metrics::new(cairn_node::rpc_server::method_names(), Some(vm), Some(dir.path().to_owned()));
    // A labelled family is in the exposition from its first series on: one of each.
    metrics.topic_peers.get_or_create(&TopicLabel { topic: "blocks" }).set(1);
    metrics.gossip("blocks", "accepted");
    metrics.rpc_call("chain_head", Some(cairn_rpc::error::OVERLOADED));
    metrics.jobs_executed.get_or_create(&StatusLabel { status: "ok" }).inc();
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    assert!(names.contains("cairn_head_height"), "an exposition without the head's height:\n{text}");
    names
}

/// Words of PromQL that are not metric names.
const KEYWORDS: [&str; 8] = ["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"];
/// Modifiers followed by a list of label names.
const LABEL_LISTS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The index just past the closing `close` of what starts at `start` (an opening bracket or a
/// quote), skipping quoted strings inside.
fn skip_past(chars: &[char], start: usize, close: char) -> usize {
    let quote = matches!(chars[start], '"' | '\'' | '`');
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote => i += 1,
            c if c == close => return i + 1,
            '"' | '\'' | '`' if !quote => i = skip_past(chars, i, chars[i]) - 1,
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// The metric names a PromQL expression reads: its identifiers, less functions and
/// aggregations (followed by `(`, `by` or `without`), keywords, label names (in `{…}` and
/// after `by`, `on`, …), strings, numbers and durations (`[5m]`). A Grafana query
/// `label_values(metric, label)` reads `metric`.
fn metric_names(expr: &str) -> Vec<String> {
    if let Some(args) = expr.trim().strip_prefix("label_values(") {
        return vec![args.split([',', ')']).next().unwrap_or_default().trim().to_string()];
    }
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_past(&chars, i, c),
            '{' => i = skip_past(&chars, i, '}'),
            '[' => i = skip_past(&chars, i, ']'),
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if ident(c) || c == '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let rest: String = chars[next..].iter().collect();
                if LABEL_LISTS.contains(&word.as_str()) {
                    if chars.get(next) == Some(&'(') {
                        i = skip_past(&chars, next, ')');
                    }
                } else if word.starts_with('$')
                    || KEYWORDS.contains(&word.to_lowercase().as_str())
                    || rest.starts_with('(')
                    || rest.starts_with("by ")
                    || rest.starts_with("by(")
                    || rest.starts_with("without")
                {
                    // A Grafana variable, a keyword, a function or an aggregation.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The dashboard, parsed.
fn dashboard() -> Value {
    serde_json::from_str(&read(&ops("grafana/cairn-node.json"))).expect("ops/grafana/cairn-node.json is JSON")
}

/// Every PromQL query of the dashboard: its panels' targets, as (panel title, query).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queries = vec![];
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target's expr");
            queries.push((p["title"].as_str().unwrap_or_default().to_string(), expr.to_string()));
        }
    }
    queries
}

/// One alerting rule of `alerts.yml`, as its lines say it.
struct Rule {
    alert: String,
    expr: String,
    block: String,
}

/// The rules of `alerts.yml`: each `- alert:` and the lines after it, up to the next. Each
/// `expr` is on one line (no YAML block scalar), so this reads it without a YAML parser.
fn alert_rules() -> Vec<Rule> {
    let text = read(&ops("prometheus/alerts.yml"));
    let mut rules: Vec<Rule> = vec![];
    for line in text.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            rules.push(Rule { alert: name.trim().to_string(), expr: String::new(), block: String::new() });
        }
        let Some(rule) = rules.last_mut() else { continue };
        rule.block.push_str(line);
        rule.block.push('\n');
        if let Some(expr) = line.trim_start().strip_prefix("expr:") {
            let expr = expr.trim();
            assert!(
                !expr.starts_with(['|', '>']) && !expr.is_empty(),
                "{}: keep `expr:` on one line (this test reads it without a YAML parser)",
                rule.alert
            );
            rule.expr = expr.to_string();
        }
    }
    assert!(!rules.is_empty(), "no `- alert:` in ops/prometheus/alerts.yml");
    rules
}

#[test]
fn the_query_parser_finds_metric_names_only() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (instance, le) (rate(cairn_a_bucket{instance=~"$instance",x="y}"}[$__rate_interval]))) > 0.2 and on() max(delta(cairn_b[5m])) > 1e3 or up{job="cairn"} == 0 or sum without (topic) (cairn_c_total)"#,
    );
    assert_eq!(names, ["cairn_a_bucket", "cairn_b", "up", "cairn_c_total"]);
    assert_eq!(metric_names("label_values(cairn_build_info, instance)"), ["cairn_build_info"]);
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let exported = exported_names();
    let dashboard = dashboard();
    let mut queries = dashboard_queries(&dashboard);
    for v in dashboard["templating"]["list"].as_array().expect("templating.list") {
        if v["type"] == "query" {
            let q = v["query"].get("query").unwrap_or(&v["query"]);
            queries.push((format!("variable {}", v["name"]), q.as_str().expect("a variable's query").to_string()));
        }
    }
    queries.extend(alert_rules().into_iter().map(|r| (format!("alert {}", r.alert), r.expr)));
    let mut read = BTreeSet::new();
    for (what, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{what}: no metric in {expr:?}");
        for name in names {
            assert!(
                name == "up" || exported.contains(&name),
                "{what}: {name} is not a metric a node exports (in {expr:?}); the node exports:\n{exported:#?}"
            );
            read.insert(name);
        }
    }
    // The dashboard and the alerts cover the node's metrics.
    for name in ["cairn_head_lag_blocks", "cairn_provider_slashed_total", "cairn_store_size_bytes", "cairn_build_info"]
    {
        assert!(read.contains(name), "nothing queries {name}");
    }
}

#[test]
fn the_dashboard_has_a_title_and_a_query_in_every_panel() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "cairn-node");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name}"));
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(variable("instance")["type"], "query");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "a panel without a title: {p}");
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "panel id {} twice", p["id"]);
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}: its data source is the variable");
        let targets =
            p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no targets"));
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: a target without a query");
            assert!(expr.contains("$instance"), "{title}: {expr:?} ignores the instance variable");
        }
    }
    assert!(panels.len() > 20, "{} panels", panels.len());
}

#[test]
fn every_alert_says_what_it_means() {
    for rule in alert_rules() {
        for field in ["severity:", "summary:", "description:"] {
            assert!(rule.block.contains(field), "alert {} has no {field}", rule.alert);
        }
        assert!(rule.alert.starts_with("Cairn"), "alert {}", rule.alert);
    }
}

/// Runs `promtool` with `args`; fails with its output unless it succeeds.
fn promtool(args: &[&str]) {
    let out = match Command::new("promtool").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run promtool ({e}): run scripts/setup.sh, which installs Debian's prometheus package (promtool comes with it)"
        ),
    };
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_the_config_and_the_dashboards_queries() {
    let rules = ops("prometheus/alerts.yml");
    let config = ops("prometheus/prometheus.yml");
    promtool(&["check", "rules", rules.to_str().expect("a UTF-8 path")]);
    promtool(&["check", "config", config.to_str().expect("a UTF-8 path")]);
    // Each of the dashboard's queries, with Grafana's variables given values, as a recording
    // rule: promtool parses its expression.
    let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_queries(&dashboard()).iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*");
        let quoted = serde_json::to_string(&expr).expect("a JSON string is a YAML string");
        text.push_str(&format!("      - record: cairn_dashboard_query_{i}\n        expr: {quoted}\n"));
    }
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, text).expect("writes");
    promtool(&["check", "rules", path.to_str().expect("a UTF-8 path")]);
}

#[test]
fn the_systemd_unit_runs_the_example_configuration() {
    let config =
        NodeConfig::load(&ops("systemd/node.toml")).expect("ops/systemd/node.toml is a valid node configuration");
    assert!(config.provider && config.metrics.is_some(), "{config:?}");
    let unit = read(&ops("systemd/cairn-node.service"));
    let line = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("the unit has no {key}="))
            .to_string()
    };
    assert_eq!(line("ExecStart"), "/usr/local/bin/cairn node run --config /etc/cairn/node.toml");
    assert_eq!(line("ReadWritePaths"), config.home.display().to_string(), "the unit lets the node write its home");
    assert_eq!(line("KillSignal"), "SIGTERM", "the node stops cleanly on SIGTERM (cairn_node::shutdown_signal)");
    for key in ["User", "Restart", "LimitNOFILE", "NoNewPrivileges", "ProtectSystem", "TimeoutStopSec"] {
        line(key);
    }
}
