//! The network a `--netns` testnet emulates: regions, the links between them, and when each
//! packet is delivered. Pure: the router (`netns.rs`) feeds it packets and clocks.
//!
//! A topology file (TOML) names the regions with the round-trip time, jitter and loss inside
//! each, the links between every two of them, and the region of each node and of the client
//! (the host, where `cairn testnet bench` and the RPC clients run):
//!
//! ```toml
//! [[region]]
//! name = "eu"
//! rtt_ms = 10          # between two nodes of this region
//! jitter_ms = 2
//!
//! [[link]]
//! regions = ["eu", "us"]
//! rtt_ms = 90
//! jitter_ms = 5
//! loss_percent = 0.1
//!
//! [nodes]
//! validators = ["eu", "us", "ap", "eu"]
//! providers = ["eu", "us", "ap"]
//! client = "eu"
//! ```
//!
//! `cuts = [[0, 5]]` (at the top) makes nodes 0 and 5 unable to reach each other, whatever
//! their regions: a partition between two nodes.
//!
//! A packet from region A to region B is delivered `rtt / 2 + u × jitter / 2` after it left,
//! `u` drawn uniformly from [−1, 1], never before the packet sent before it on the same
//! (source, destination) pair (each direction of a link is a FIFO, as one path through the
//! Internet is), and is dropped with probability `loss_percent / 100`: both directions
//! together make the round trip `rtt` ± `jitter` and its loss. The kernel's TCP recovers lost
//! packets as it would on the Internet.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

/// The most regions a topology may name.
pub const REGIONS_MAX: usize = 64;
/// The longest round trip a link may have.
pub const RTT_MAX: Duration = Duration::from_secs(10);

/// One region: its name and what a round trip inside it costs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Its name (the chain's region name: providers there declare it).
    pub name: String,
    /// Round-trip time between two nodes of the region, in milliseconds.
    pub rtt_ms: f64,
    /// Spread of the round trip, ± milliseconds.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Share of packets lost each way, in percent.
    #[serde(default)]
    pub loss_percent: f64,
}

/// The link between two regions.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two regions.
    pub regions: [String; 2],
    /// Round-trip time between a node of one and a node of the other, in milliseconds.
    pub rtt_ms: f64,
    /// Spread of the round trip, ± milliseconds.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Share of packets lost each way, in percent.
    #[serde(default)]
    pub loss_percent: f64,
}

/// Where the nodes and the client are.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Placements {
    /// The validators' regions, in node order; a testnet with more validators takes them in
    /// turn.
    pub validators: Vec<String>,
    /// The providers' regions, in node order (taken in turn likewise); the providers declare
    /// them at genesis.
    pub providers: Vec<String>,
    /// The client's region: the host running the RPC clients and the load generator.
    pub client: String,
}

/// A topology file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The regions.
    #[serde(rename = "region")]
    pub regions: Vec<Region>,
    /// The links between every two regions.
    #[serde(rename = "link", default)]
    pub links: Vec<Link>,
    /// Where the nodes are.
    pub nodes: Placements,
    /// Pairs of nodes (by index) whose packets to each other are all dropped.
    #[serde(default)]
    pub cuts: Vec<[usize; 2]>,
}

/// What one direction of a link does to a packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Path1 {
    /// The one-way delay (half the round trip).
    pub delay: Duration,
    /// The one-way jitter: the delay varies by up to ± this.
    pub jitter: Duration,
    /// Probability of losing a packet, 0 to 1.
    pub loss: f64,
}

impl Topology {
    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> anyhow::Result<Topology> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Topology::parse(&text).with_context(|| format!("topology {}", path.display()))
    }

    /// Parses and checks a topology's TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Topology> {
        let t: Topology = toml::from_str(text).context("not a topology")?;
        t.check()?;
        Ok(t)
    }

    /// Checks the names, the numbers and that every two regions are linked.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.regions.is_empty(), "it names no region");
        ensure!(self.regions.len() <= REGIONS_MAX, "it names more than {REGIONS_MAX} regions");
        let mut names = BTreeMap::new();
        for r in &self.regions {
            cairn_ledger::check_region(&r.name).map_err(|e| anyhow::anyhow!("{e}"))?;
            ensure!(names.insert(r.name.as_str(), ()).is_none(), "region {} is named twice", r.name);
            check_numbers(&format!("region {}", r.name), r.rtt_ms, r.jitter_ms, r.loss_percent)?;
        }
        let mut linked = BTreeMap::new();
        for l in &self.links {
            let [a, b] = &l.regions;
            for r in [a, b] {
                ensure!(names.contains_key(r.as_str()), "link {a}–{b} names unknown region {r}");
            }
            ensure!(a != b, "link {a}–{b} links a region to itself: give its rtt_ms in [[region]]");
            check_numbers(&format!("link {a}–{b}"), l.rtt_ms, l.jitter_ms, l.loss_percent)?;
            ensure!(linked.insert(pair(a, b), ()).is_none(), "link {a}–{b} is given twice");
        }
        let all: Vec<&str> = names.keys().copied().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                ensure!(linked.contains_key(&pair(a, b)), "no [[link]] between {a} and {b}");
            }
        }
        let p = &self.nodes;
        ensure!(!p.validators.is_empty(), "[nodes] validators is empty");
        for r in p.validators.iter().chain(&p.providers).chain(std::iter::once(&p.client)) {
            ensure!(names.contains_key(r.as_str()), "[nodes] names unknown region {r}");
        }
        for [a, b] in &self.cuts {
            ensure!(a != b, "cut [{a}, {b}] cuts a node from itself");
        }
        Ok(())
    }

    /// Whether nodes `a` and `b` are cut from each other.
    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cuts.iter().any(|c| *c == [a, b] || *c == [b, a])
    }

    /// The region of node `i` of a testnet of `validators` validators (validators first).
    pub fn node_region(&self, validators: usize, i: usize) -> &str {
        let p = &self.nodes;
        if i < validators || p.providers.is_empty() {
            &p.validators[i % p.validators.len()]
        } else {
            &p.providers[(i - validators) % p.providers.len()]
        }
    }

    /// The round trip between two regions, as the topology gives it.
    pub fn rtt(&self, a: &str, b: &str) -> Duration {
        let (rtt_ms, _, _) = self.numbers(a, b);
        Duration::from_secs_f64(rtt_ms / 1_000.0)
    }

    /// The largest round trip between two of `regions`.
    pub fn largest_rtt<'a>(&self, regions: impl IntoIterator<Item = &'a str> + Clone) -> Duration {
        let mut max = Duration::ZERO;
        for a in regions.clone() {
            for b in regions.clone() {
                max = max.max(self.rtt(a, b));
            }
        }
        max
    }

    /// What the way from region `a` to region `b` does to a packet.
    pub fn path(&self, a: &str, b: &str) -> Path1 {
        let (rtt_ms, jitter_ms, loss_percent) = self.numbers(a, b);
        Path1 {
            delay: Duration::from_secs_f64(rtt_ms / 2_000.0),
            jitter: Duration::from_secs_f64(jitter_ms / 2_000.0),
            loss: loss_percent / 100.0,
        }
    }

    fn numbers(&self, a: &str, b: &str) -> (f64, f64, f64) {
        if a == b {
            let r = self.regions.iter().find(|r| r.name == a).expect("checked: a known region");
            return (r.rtt_ms, r.jitter_ms, r.loss_percent);
        }
        let l = self.links.iter().find(|l| pair(&l.regions[0], &l.regions[1]) == pair(a, b)).expect("checked: linked");
        (l.rtt_ms, l.jitter_ms, l.loss_percent)
    }
}

fn pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

fn check_numbers(what: &str, rtt_ms: f64, jitter_ms: f64, loss_percent: f64) -> anyhow::Result<()> {
    let rtt_max = RTT_MAX.as_secs_f64() * 1_000.0;
    if !(0.0..=rtt_max).contains(&rtt_ms) {
        bail!("{what}: rtt_ms must be between 0 and {rtt_max}");
    }
    ensure!((0.0..=rtt_ms).contains(&jitter_ms), "{what}: jitter_ms must be between 0 and rtt_ms");
    ensure!((0.0..100.0).contains(&loss_percent), "{what}: loss_percent must be at least 0 and below 100");
    Ok(())
}

/// When packets are delivered, link by link: each (source, destination) pair is a FIFO with
/// its path's delay, jitter and loss. Randomness from a seeded generator, so a run can be
/// replayed.
pub struct Scheduler {
    /// Per (source, destination) node index: the path, and when its last packet is delivered.
    links: BTreeMap<(usize, usize), (Path1, Duration)>,
    rng: u64,
}

impl Scheduler {
    /// A scheduler with `seed` for jitter and loss.
    pub fn new(seed: u64) -> Scheduler {
        Scheduler { links: BTreeMap::new(), rng: seed | 1 }
    }

    /// Sets the path from `from` to `to`.
    pub fn set_path(&mut self, from: usize, to: usize, path: Path1) {
        self.links.insert((from, to), (path, Duration::ZERO));
    }

    /// When a packet that left `from` at `now` (time since any fixed start) reaches `to`, or
    /// `None` if it is lost (or no path is set).
    pub fn deliver_at(&mut self, from: usize, to: usize, now: Duration) -> Option<Duration> {
        let u = self.uniform();
        let lost = self.uniform() * 0.5 + 0.5;
        let (path, last) = self.links.get_mut(&(from, to))?;
        if lost < path.loss {
            return None;
        }
        let jitter = path.jitter.as_secs_f64() * u;
        let one_way = (path.delay.as_secs_f64() + jitter).max(0.0);
        let at = (now + Duration::from_secs_f64(one_way)).max(*last);
        *last = at;
        Some(at)
    }

    /// A number drawn uniformly from [−1, 1] (xorshift64*).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"
        [[region]]
        name = "eu"
        rtt_ms = 10
        jitter_ms = 2
        [[region]]
        name = "us"
        rtt_ms = 12
        [[region]]
        name = "ap"
        rtt_ms = 8
        [[link]]
        regions = ["eu", "us"]
        rtt_ms = 90
        jitter_ms = 6
        loss_percent = 1
        [[link]]
        regions = ["us", "ap"]
        rtt_ms = 150
        [[link]]
        regions = ["ap", "eu"]
        rtt_ms = 120
        [nodes]
        validators = ["eu", "us", "ap", "eu"]
        providers = ["eu", "us"]
        client = "eu"
    "#;

    fn three() -> Topology {
        let t: Topology = toml::from_str(THREE).expect("parses");
        t.check().expect("valid");
        t
    }

    #[test]
    fn a_topology_gives_each_pair_its_round_trip_and_each_node_its_region() {
        let t = three();
        assert_eq!(t.rtt("eu", "us"), Duration::from_millis(90));
        assert_eq!(t.rtt("us", "eu"), Duration::from_millis(90));
        assert_eq!(t.rtt("ap", "ap"), Duration::from_millis(8));
        assert_eq!(t.largest_rtt(["eu", "us", "ap"]), Duration::from_millis(150));
        let p = t.path("us", "eu");
        assert_eq!((p.delay, p.jitter, p.loss), (Duration::from_millis(45), Duration::from_millis(3), 0.01));
        // 4 validators, then providers in turn.
        let regions: Vec<&str> = (0..8).map(|i| t.node_region(4, i)).collect();
        assert_eq!(regions, ["eu", "us", "ap", "eu", "eu", "us", "eu", "us"]);
        // More validators than listed: in turn.
        assert_eq!(t.node_region(6, 5), "us");
    }

    #[test]
    fn a_topology_that_leaves_a_pair_unlinked_or_misnames_a_region_is_refused() {
        let cases = [
            (THREE.replace("regions = [\"us\", \"ap\"]", "regions = [\"us\", \"us\"]"), "to itself"),
            (
                THREE.replace("[[link]]\n        regions = [\"ap\", \"eu\"]\n        rtt_ms = 120", ""),
                "no [[link]] between ap and eu",
            ),
            (THREE.replace("client = \"eu\"", "client = \"mars\""), "unknown region mars"),
            (THREE.replace("name = \"ap\"", "name = \"AP\""), "region"),
            (THREE.replace("jitter_ms = 6", "jitter_ms = 600"), "jitter_ms"),
            (THREE.replace("loss_percent = 1", "loss_percent = 100"), "loss_percent"),
        ];
        for (text, expected) in cases {
            let t: Topology = toml::from_str(&text).expect("parses");
            let e = t.check().expect_err(expected);
            assert!(format!("{e:#}").contains(expected), "{e:#} should say {expected}");
        }
        assert!(toml::from_str::<Topology>(&THREE.replace("client", "clients")).is_err(), "unknown fields refused");
    }

    #[test]
    fn packets_arrive_after_the_paths_delay_in_order_and_some_are_lost() {
        let t = three();
        let mut s = Scheduler::new(7);
        s.set_path(0, 1, t.path("eu", "us"));
        s.set_path(1, 0, t.path("us", "eu"));
        s.set_path(0, 2, t.path("eu", "ap"));
        let (mut lost, mut last) = (0, Duration::ZERO);
        for i in 0..20_000u64 {
            let now = Duration::from_micros(i * 100);
            match s.deliver_at(0, 1, now) {
                None => lost += 1,
                Some(at) => {
                    // 45 ms ± 3 ms one way, and never before the packet before it.
                    assert!(at >= now + Duration::from_millis(42) && at <= now + Duration::from_millis(48), "{at:?}");
                    assert!(at >= last);
                    last = at;
                }
            }
            // No jitter, no loss: exactly half the round trip.
            assert_eq!(s.deliver_at(0, 2, now), Some(now + Duration::from_millis(60)));
        }
        // 1 % each way: 200 of 20,000 expected.
        assert!((120..=280).contains(&lost), "{lost} lost");
        assert_eq!(s.deliver_at(2, 0, Duration::ZERO), None, "no path set: dropped");
    }
}
