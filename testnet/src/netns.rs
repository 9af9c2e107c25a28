//! `--netns` testnets: each node runs in its own Linux network namespace with its own address,
//! and every packet between two of them — or between one and the host, where the clients run —
//! goes through a user-space router that delays, jitters and drops it as the topology says
//! (`netem.rs`). This machine's kernel has no `netem` qdisc, so the links are TUN devices: one
//! in each namespace, whose other end is a file the router reads packets from and writes
//! packets to once they are due. The nodes see real sockets and real round trips; TCP
//! recovers lost packets as on the Internet.
//!
//! The router is its own process (`cairn testnet router`), started by `up` and stopped by
//! `down` or when the testnet is dropped; it creates the namespaces and devices, and deletes
//! them when it stops. Root is required.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::netem::{Scheduler, Topology};
use crate::sys;

/// The file `up` writes the plan to, in the testnet's folder.
pub const PLAN_FILE: &str = "netns.json";
/// The file the router writes its pid to once the network is up.
const ROUTER_FILE: &str = "netns-router.json";
/// How long `up` waits for the router to set the network up.
const ROUTER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The most bytes queued in the router at once (packets in flight on every link); a packet
/// past it is dropped, as a full router buffer drops it.
pub const ROUTER_QUEUE_BYTES_MAX: usize = 64 << 20;
/// The largest packet read from a device (the devices' MTU is 1,500).
const PACKET_BYTES_MAX: usize = 65_536;
/// The most nodes a `--netns` testnet may have (node `i` is host `i + 1` of the /16, the host
/// `10.X.255.254`).
pub const NODES_MAX: usize = 65_000;

/// One node's place in the network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeNet {
    /// Its network namespace (`ip netns` name).
    pub netns: String,
    /// Its TUN device.
    pub tun: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its region.
    pub region: String,
}

/// The network of a `--netns` testnet: its namespaces, devices and addresses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// The topology.
    pub topology: Topology,
    /// Each node, by index.
    pub nodes: Vec<NodeNet>,
    /// The host's device (in the root namespace), address and region: the clients'.
    pub host: NodeNet,
    /// The prefix of the /16 every address is in (`10.X`).
    pub prefix: [u8; 2],
}

impl Plan {
    /// The plan of a testnet in `dir` of `nodes` nodes, the first `validators` validators: names
    /// and the /16 derived from the folder's path, so two testnets can run side by side.
    pub fn new(dir: &Path, topology: Topology, validators: usize, nodes: usize) -> anyhow::Result<Plan> {
        ensure!(nodes <= NODES_MAX, "at most {NODES_MAX} nodes in a --netns testnet");
        let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let digest = cairn_ledger::Hash::of(path.to_string_lossy().as_bytes()).0;
        let tag = hex::encode(&digest[..2]);
        // 10.64.0.0 to 10.191.255.255: private, and clear of the usual 10.0/10.1 of VPNs.
        let prefix = [10, 64 + digest[2] % 128];
        let address = |host: usize| {
            let host = u16::try_from(host).expect("checked: at most NODES_MAX");
            let [a, b] = host.to_be_bytes();
            Ipv4Addr::new(prefix[0], prefix[1], a, b)
        };
        let nodes = (0..nodes)
            .map(|i| NodeNet {
                netns: format!("cairn-{tag}-{i}"),
                tun: format!("cn{tag}n{i}"),
                ip: address(i + 1),
                region: topology.node_region(validators, i).to_owned(),
            })
            .collect();
        let host = NodeNet {
            netns: String::new(),
            tun: format!("cn{tag}h"),
            ip: Ipv4Addr::new(prefix[0], prefix[1], 255, 254),
            region: topology.nodes.client.clone(),
        };
        Ok(Plan { topology, nodes, host, prefix })
    }

    /// Reads the plan `up` wrote in `dir`, if the testnet there is a `--netns` one.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Plan>> {
        let path = dir.join(PLAN_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the plan into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(PLAN_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The path of node `i`'s namespace (what `setns` opens).
    pub fn netns_path(&self, i: usize) -> PathBuf {
        Path::new("/var/run/netns").join(&self.nodes[i].netns)
    }

    /// The round trip the topology gives between nodes `a` and `b`.
    pub fn rtt(&self, a: usize, b: usize) -> Duration {
        self.topology.rtt(&self.nodes[a].region, &self.nodes[b].region)
    }

    /// Every device, the host's last: index `nodes.len()` is the host.
    fn devices(&self) -> impl Iterator<Item = &NodeNet> {
        self.nodes.iter().chain(std::iter::once(&self.host))
    }
}

/// Refuses, with what to do, unless this process can set up namespaces.
pub fn require_root() -> anyhow::Result<()> {
    if !sys::is_root() {
        bail!("--netns needs root: it creates network namespaces and TUN devices (run it with sudo)");
    }
    let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    ensure!(ip.is_ok_and(|s| s.success()), "--netns needs the `ip` command (Debian: apt-get install iproute2)");
    Ok(())
}

/// Whether this machine lets this process build a `--netns` testnet: root, the `ip` command,
/// and a network namespace and a TUN device actually created (and deleted again). A container
/// without the network capabilities fails here, with the reason.
pub fn probe() -> anyhow::Result<()> {
    require_root()?;
    let name = format!("cairn-probe-{}", std::process::id());
    ip(&["netns", "add", &name])?;
    let _ = ip(&["netns", "del", &name]);
    let tun = format!("cnprobe{}", std::process::id() % 100_000);
    let device = sys::open_tun(&tun)?;
    drop(device);
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip")?;
    ensure!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// The router's record of itself.
#[derive(Serialize, Deserialize)]
struct RouterFile {
    pid: u32,
}

/// Starts the router of the testnet in `dir` (its plan saved there) and waits until the
/// network is up. The returned child is the router; stop it with [`stop_router`].
pub fn start_router(dir: &Path, binary: &Path) -> anyhow::Result<Child> {
    require_root()?;
    // A router left running by an earlier `up` (without `down`) is stopped first.
    stop_router(dir);
    let log = std::fs::File::create(dir.join("netns-router.log")).context("cannot create the router's log")?;
    let mut cmd = Command::new(binary);
    cmd.args(["testnet", "router", "--dir"]).arg(dir).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
    let deadline = Instant::now() + ROUTER_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("netns-router.log")).unwrap_or_default();
            bail!("the network router exited with {status} while starting:\n{log}");
        }
        if let Ok(bytes) = std::fs::read(dir.join(ROUTER_FILE))
            && serde_json::from_slice::<RouterFile>(&bytes).is_ok_and(|r| r.pid == child.id())
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the network router did not start within {ROUTER_START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the router of the testnet in `dir`, if one runs (it deletes the namespaces), and
/// deletes whatever namespaces of the plan are left.
pub fn stop_router(dir: &Path) {
    if let Ok(bytes) = std::fs::read(dir.join(ROUTER_FILE))
        && let Ok(r) = serde_json::from_slice::<RouterFile>(&bytes)
        && std::fs::read_to_string(format!("/proc/{}/cmdline", r.pid)).is_ok_and(|c| c.contains("router"))
    {
        let _ = Command::new("kill").arg("-TERM").arg(r.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && Path::new(&format!("/proc/{}", r.pid)).exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(dir.join(ROUTER_FILE));
    if let Ok(Some(plan)) = Plan::load(dir) {
        teardown(&plan);
    }
}

/// Deletes the plan's namespaces and host device (their devices go with them).
fn teardown(plan: &Plan) {
    for n in &plan.nodes {
        if Path::new("/var/run/netns").join(&n.netns).exists() {
            let _ = ip(&["netns", "del", &n.netns]);
        }
    }
    let _ = ip(&["link", "del", &plan.host.tun]);
}

/// The router: sets the network of the testnet in `dir` up, relays packets until SIGTERM or
/// SIGINT, then deletes the namespaces.
pub async fn run_router(dir: &Path) -> anyhow::Result<()> {
    require_root()?;
    let plan = Plan::load(dir)?.context("no netns.json: this testnet was not started with --netns")?;
    teardown(&plan);
    let devices = match setup(&plan) {
        Ok(d) => d,
        Err(e) => {
            teardown(&plan);
            return Err(e);
        }
    };
    let stats = relay(&plan, devices)?;
    std::fs::write(dir.join(ROUTER_FILE), serde_json::to_vec(&RouterFile { pid: std::process::id() })?)?;
    eprintln!("network up: {} namespaces, host {} in {}", plan.nodes.len(), plan.host.ip, plan.host.region);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("stopping: {}", stats.summary());
    teardown(&plan);
    let _ = std::fs::remove_file(dir.join(ROUTER_FILE));
    Ok(())
}

/// Creates every device in the root namespace, then moves each node's into its namespace and
/// gives it its address. Returns the devices' files, the host's last.
fn setup(plan: &Plan) -> anyhow::Result<Vec<File>> {
    let mut files = Vec::new();
    for n in &plan.nodes {
        files.push(sys::open_tun(&n.tun)?);
        ip(&["netns", "add", &n.netns])?;
        ip(&["link", "set", &n.tun, "netns", &n.netns])?;
        let addr = format!("{}/16", n.ip);
        ip(&["-n", &n.netns, "addr", "add", &addr, "dev", &n.tun])?;
        ip(&["-n", &n.netns, "link", "set", &n.tun, "up"])?;
        ip(&["-n", &n.netns, "link", "set", "lo", "up"])?;
    }
    files.push(sys::open_tun(&plan.host.tun)?);
    ip(&["addr", "add", &format!("{}/16", plan.host.ip), "dev", &plan.host.tun])?;
    ip(&["link", "set", &plan.host.tun, "up"])?;
    Ok(files)
}

/// What the router relayed and dropped, counted by its threads.
#[derive(Clone, Default)]
struct Stats(std::sync::Arc<std::sync::Mutex<Counts>>);

#[derive(Default)]
struct Counts {
    delivered: u64,
    lost: u64,
    queue_full: u64,
    unroutable: u64,
}

impl Stats {
    fn summary(&self) -> String {
        let c = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        format!(
            "{} packets delivered, {} lost as the topology says, {} dropped on a full queue, {} unroutable",
            c.delivered, c.lost, c.queue_full, c.unroutable
        )
    }

    fn add(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

/// A packet waiting for its time.
struct Due {
    at: Duration,
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Starts the relay: a thread per device reads its packets and hands them to the scheduler
/// thread, which writes each to its destination's device when it is due.
fn relay(plan: &Plan, devices: Vec<File>) -> anyhow::Result<Stats> {
    let stats = Stats::default();
    let by_ip: HashMap<Ipv4Addr, usize> = plan.devices().enumerate().map(|(i, n)| (n.ip, i)).collect();
    let regions: Vec<&str> = plan.devices().map(|n| n.region.as_str()).collect();
    let mut scheduler = Scheduler::new(u64::from(std::process::id()));
    for (a, ra) in regions.iter().enumerate() {
        for (b, rb) in regions.iter().enumerate() {
            // A cut pair has no path: its packets are dropped.
            if a != b && !plan.topology.is_cut(a, b) {
                scheduler.set_path(a, b, plan.topology.path(ra, rb));
            }
        }
    }
    let start = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<(usize, usize, Duration, Vec<u8>)>(16_384);
    let mut writers = Vec::new();
    for (from, device) in devices.into_iter().enumerate() {
        writers.push(device.try_clone().context("cannot clone a device's file")?);
        let (tx, by_ip, stats) = (tx.clone(), by_ip.clone(), stats.clone());
        std::thread::Builder::new().name(format!("netns-read-{from}")).spawn(move || {
            let mut device = device;
            let mut buf = vec![0u8; PACKET_BYTES_MAX];
            loop {
                let n = match device.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                };
                let packet = &buf[..n];
                // IPv4 only: the destination address is bytes 16..20 of the header.
                let to = (n >= 20 && packet[0] >> 4 == 4)
                    .then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
                    .and_then(|dst| by_ip.get(&dst).copied());
                match to {
                    Some(to) if to != from => {
                        if tx.send((from, to, start.elapsed(), packet.to_vec())).is_err() {
                            return;
                        }
                    }
                    _ => stats.add(|c| c.unroutable += 1),
                }
            }
        })?;
    }
    drop(tx);
    let stats_out = stats.clone();
    std::thread::Builder::new().name("netns-schedule".into()).spawn(move || {
        let mut heap: BinaryHeap<Due> = BinaryHeap::new();
        let (mut seq, mut queued) = (0u64, 0usize);
        loop {
            let wait = heap.peek().map_or(Duration::from_secs(1), |d| d.at.saturating_sub(start.elapsed()));
            match rx.recv_timeout(wait) {
                Ok((from, to, now, packet)) => match scheduler.deliver_at(from, to, now) {
                    None => stats.add(|c| c.lost += 1),
                    Some(_) if queued + packet.len() > ROUTER_QUEUE_BYTES_MAX => stats.add(|c| c.queue_full += 1),
                    Some(at) => {
                        queued += packet.len();
                        seq += 1;
                        heap.push(Due { at, seq, to, packet });
                    }
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = start.elapsed();
            let mut sent = 0;
            while heap.peek().is_some_and(|d| d.at <= now) {
                let due = heap.pop().expect("peeked");
                queued -= due.packet.len();
                // A full device queue in a namespace drops the packet, as a link would.
                let _ = writers[due.to].write(&due.packet);
                sent += 1;
            }
            if sent > 0 {
                stats.add(|c| c.delivered += sent);
            }
        }
    })?;
    Ok(stats_out)
}

/// A measured round trip between two nodes.
#[derive(Clone, Debug, Serialize)]
pub struct RttSample {
    /// From this node.
    pub from: usize,
    /// To this node.
    pub to: usize,
    /// Their regions.
    pub regions: [String; 2],
    /// The topology's round trip.
    pub expected_ms: f64,
    /// Median and largest of the TCP handshakes measured.
    pub median_ms: f64,
    /// The largest.
    pub max_ms: f64,
}

/// Measures the round trip from each node to each other one, as the nodes see it: a thread
/// enters the source node's namespace and times `samples` TCP handshakes (one round trip each)
/// with the destination's RPC port (pairs the topology cuts are skipped). `targets[i]` is node
/// `i`'s RPC address.
pub fn measure_rtts(plan: &Plan, targets: &[SocketAddr], samples: usize) -> anyhow::Result<Vec<RttSample>> {
    let mut out = Vec::new();
    for from in 0..targets.len() {
        let netns = plan.netns_path(from);
        let targets: Vec<(usize, SocketAddr)> =
            targets.iter().copied().enumerate().filter(|(to, _)| !plan.topology.is_cut(from, *to)).collect();
        let measured = std::thread::spawn(move || -> anyhow::Result<Vec<(usize, Vec<f64>)>> {
            sys::enter_netns(&netns)?;
            let mut all = Vec::new();
            for (to, addr) in targets.iter().filter(|(to, _)| *to != from) {
                let to = *to;
                let mut times = Vec::new();
                for _ in 0..samples {
                    let t = Instant::now();
                    let stream = TcpStream::connect_timeout(addr, Duration::from_secs(10))
                        .with_context(|| format!("node {from} cannot reach node {to} at {addr}"))?;
                    times.push(t.elapsed().as_secs_f64() * 1_000.0);
                    drop(stream);
                }
                all.push((to, times));
            }
            Ok(all)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the measuring thread panicked"))??;
        for (to, mut times) in measured {
            times.sort_by(f64::total_cmp);
            out.push(RttSample {
                from,
                to,
                regions: [plan.nodes[from].region.clone(), plan.nodes[to].region.clone()],
                expected_ms: plan.rtt(from, to).as_secs_f64() * 1_000.0,
                median_ms: times[times.len() / 2],
                max_ms: *times.last().expect("at least one sample"),
            });
        }
    }
    Ok(out)
}

/// The samples by region pair: expected, and the median of the nodes' medians.
pub fn rtt_by_regions(samples: &[RttSample]) -> BTreeMap<(String, String), (f64, f64)> {
    let mut by: BTreeMap<(String, String), (f64, Vec<f64>)> = BTreeMap::new();
    for s in samples {
        let [a, b] = &s.regions;
        let key = if a <= b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        by.entry(key).or_insert((s.expected_ms, Vec::new())).1.push(s.median_ms);
    }
    by.into_iter()
        .map(|(k, (expected, mut m))| {
            m.sort_by(f64::total_cmp);
            (k, (expected, m[m.len() / 2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
        [[region]]
        name = "eu"
        rtt_ms = 10
        [[region]]
        name = "us"
        rtt_ms = 10
        [[link]]
        regions = ["eu", "us"]
        rtt_ms = 80
        [nodes]
        validators = ["eu"]
        providers = ["us", "eu"]
        client = "us"
    "#;

    #[test]
    fn a_plan_gives_each_node_its_namespace_device_address_and_region() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topology = Topology::parse(TWO).expect("valid");
        let plan = Plan::new(dir.path(), topology.clone(), 1, 300).expect("plan");
        assert_eq!(plan, Plan::new(dir.path(), topology.clone(), 1, 300).expect("plan"), "deterministic");
        let [a, b] = plan.prefix;
        assert!(a == 10 && (64..192).contains(&b), "{:?}", plan.prefix);
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in plan.devices().enumerate() {
            assert!(seen.insert(n.ip), "{} given twice", n.ip);
            assert!(n.tun.len() < 16, "interface name {} fits IFNAMSIZ", n.tun);
            assert_eq!(n.ip.octets()[..2], plan.prefix);
            if i < plan.nodes.len() {
                assert!(n.netns.starts_with("cairn-") && n.netns.ends_with(&format!("-{i}")), "{}", n.netns);
            }
        }
        assert_eq!(plan.nodes[255].ip, Ipv4Addr::new(a, b, 1, 0), "node 255 is host 256 of the /16");
        let regions: Vec<&str> = plan.nodes[..4].iter().map(|n| n.region.as_str()).collect();
        assert_eq!(regions, ["eu", "us", "eu", "us"]);
        assert_eq!((plan.host.region.as_str(), plan.host.ip), ("us", Ipv4Addr::new(a, b, 255, 254)));
        assert_eq!(plan.rtt(0, 1), Duration::from_millis(80));
        // Another folder, other names (two testnets side by side).
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(Plan::new(other.path(), topology, 1, 1).expect("plan").nodes[0].netns, plan.nodes[0].netns);
        plan.save(dir.path()).expect("save");
        assert_eq!(Plan::load(dir.path()).expect("load"), Some(plan));
        assert_eq!(Plan::load(other.path()).expect("load"), None);
    }
}
