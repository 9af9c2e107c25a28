//! Fair use of the JSON-RPC server: connections and request rate are limited per client
//! address as well as in total, so one client cannot take what every other client needs.
//!
//! | limit | what it bounds | over it |
//! |---|---|---|
//! | `rpc_connections_max` | open connections, all clients together | HTTP 429, closed |
//! | `rpc_connections_per_ip_max` | open connections of one [`Client`] | HTTP 429, closed |
//! | `rpc_requests_per_ip_per_second`, `rpc_requests_per_ip_burst` | calls of one [`Client`] (each batch entry counts) | error `OVERLOADED` with a retry hint |
//! | [`RATE_CLIENTS_TRACKED_MAX`] | clients whose rate is tracked at once | error `OVERLOADED` for clients not tracked yet |
//! | `rpc_subscriptions_per_connection_max` | subscriptions of one connection (enforced by jsonrpsee) | JSON-RPC error |
//! | [`UNSENT_ANSWER_BYTES_MAX`], [`CALLS_IN_PROGRESS_MAX`] | answers of one connection its client has not taken, calls being answered | the connection is not read until they drain ([`Backlog`]) |
//!
//! A client is an IPv4 address or an IPv6 /64 network ([`Client::of`]). Subscriptions are
//! bounded per connection, so per client by `rpc_connections_per_ip_max ×
//! rpc_subscriptions_per_connection_max` and in total by `rpc_connections_max ×
//! rpc_subscriptions_per_connection_max`.
//!
//! This module is the state only, with the time passed in: [`ConnectionTable`] counts open
//! connections, [`RateTable`] keeps a token bucket per client, [`Backlog`] counts what one
//! connection owes its client. [`Limits`] shares the tables between the accept loop and the RPC
//! middleware of [`crate::rpc_server`], which do the I/O.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

/// The most clients whose request rate is tracked at once. Each entry is an address and an
/// instant, about 64 bytes with the map's overhead, so the table stays under ~4 MiB. An idle
/// client (its bucket full again) is evicted when room is needed; while every tracked client
/// is within its burst, calls from new clients are refused.
pub const RATE_CLIENTS_TRACKED_MAX: usize = 65_536;

/// The rate table looks for idle clients to evict at most this often: a sweep visits every
/// entry, so this bounds its cost to one pass over [`RATE_CLIENTS_TRACKED_MAX`] entries a
/// second, however many new clients arrive.
pub const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// IPv6 clients are counted by network prefix of this many bits: a single host is commonly
/// given a whole /64, so counting single IPv6 addresses would give one host 2^64 shares.
pub const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// Who a connection or call is charged to: an IPv4 address, or the /64 network of an IPv6
/// address (an IPv4-mapped IPv6 address counts as the IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    /// The client a peer address belongs to.
    pub fn of(ip: IpAddr) -> Client {
        Client(match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << (128 - IPV6_CLIENT_PREFIX_BITS)))),
            },
        })
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_CLIENT_PREFIX_BITS}"),
        }
    }
}

/// Why a connection was refused. Its text is what the client reads in the HTTP 429 answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// The client already has its share of connections open.
    PerClient {
        /// `rpc_connections_per_ip_max`.
        max: u32,
    },
    /// The node has all the connections it serves open.
    Total {
        /// `rpc_connections_max`.
        max: u32,
    },
}

impl fmt::Display for ConnectionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionRefusal::PerClient { max } => {
                write!(f, "too many connections from your address ({max}); close some and retry")
            }
            ConnectionRefusal::Total { max } => {
                write!(f, "the node serves at most {max} connections and all are in use; retry shortly")
            }
        }
    }
}

/// Proof that [`ConnectionTable::open`] counted a connection; [`ConnectionTable::close`] takes
/// it back, so only a counted connection can be uncounted, and only once.
#[derive(Debug)]
#[must_use = "a connection counted must be closed with its ticket"]
pub struct ConnectionTicket(Client);

/// Open connections, per client and in total.
#[derive(Debug)]
pub struct ConnectionTable {
    per_client_max: u32,
    total_max: u32,
    /// Only clients with at least one connection open: at most `total_max` entries.
    open: HashMap<Client, u32>,
    total: u32,
}

impl ConnectionTable {
    /// A table allowing `per_client_max` connections per client and `total_max` in all.
    pub fn new(per_client_max: u32, total_max: u32) -> ConnectionTable {
        ConnectionTable { per_client_max, total_max, open: HashMap::new(), total: 0 }
    }

    /// Counts a new connection of `client`, or says which limit it is over (the client's own
    /// share first: that one is the client's to fix).
    pub fn open(&mut self, client: Client) -> Result<ConnectionTicket, ConnectionRefusal> {
        if self.open_by(client) >= self.per_client_max {
            return Err(ConnectionRefusal::PerClient { max: self.per_client_max });
        }
        if self.total >= self.total_max {
            return Err(ConnectionRefusal::Total { max: self.total_max });
        }
        *self.open.entry(client).or_insert(0) += 1;
        self.total += 1;
        Ok(ConnectionTicket(client))
    }

    /// Uncounts a connection that has closed.
    pub fn close(&mut self, ticket: ConnectionTicket) {
        let ConnectionTicket(client) = ticket;
        match self.open.entry(client) {
            Entry::Occupied(mut e) if *e.get() > 1 => *e.get_mut() -= 1,
            Entry::Occupied(e) => {
                e.remove();
            }
            Entry::Vacant(_) => unreachable!("a ticket is only issued for a counted connection"),
        }
        self.total -= 1;
    }

    /// Connections of `client` open now.
    pub fn open_by(&self, client: Client) -> u32 {
        self.open.get(&client).copied().unwrap_or(0)
    }

    /// Connections open now, all clients together.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Clients with a connection open now.
    pub fn clients(&self) -> usize {
        self.open.len()
    }
}

/// How fast one client may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls a second, on average (at least 1).
    pub per_second: u32,
    /// Calls at once on top of that: the size of the client's token bucket (at least 1).
    pub burst: u32,
}

/// Why a call was refused. Its text is the message of the `OVERLOADED` error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateRefusal {
    /// The client's bucket is empty.
    OverRate {
        /// The client's limit.
        limit: RateLimit,
        /// When the next call would be accepted.
        retry_after: Duration,
    },
    /// [`RATE_CLIENTS_TRACKED_MAX`] other clients are within their burst and this one is not
    /// tracked yet.
    TooManyClients {
        /// When the next sweep for idle clients may run.
        retry_after: Duration,
    },
}

impl RateRefusal {
    /// The retry hint in whole milliseconds, rounded up, at least 1.
    pub fn retry_after_ms(&self) -> u64 {
        let (RateRefusal::OverRate { retry_after, .. } | RateRefusal::TooManyClients { retry_after }) = self;
        let ms = retry_after.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    }
}

impl fmt::Display for RateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.retry_after_ms();
        match self {
            RateRefusal::OverRate { limit, .. } => write!(
                f,
                "too many requests from your address (at most {} a second, {} at once); slow down and retry \
                 in {ms} ms",
                limit.per_second, limit.burst
            ),
            RateRefusal::TooManyClients { .. } => write!(
                f,
                "the node is serving requests from too many addresses at once; slow down and retry in {ms} ms"
            ),
        }
    }
}

/// A token bucket per client. A bucket holds `burst` tokens, a call takes one, and tokens come
/// back at `per_second`. Each bucket is kept as the one instant at which it will be full again
/// (`full_at`): it holds `burst - (full_at - now) / interval` tokens now, and a bucket that is
/// full carries no information, so its entry can be evicted.
#[derive(Debug)]
pub struct RateTable {
    limit: RateLimit,
    /// The time one token takes to come back: 1 s / `per_second`.
    interval: Duration,
    /// The time an empty bucket takes to fill: `interval × burst`.
    burst_span: Duration,
    clients_max: usize,
    full_at: HashMap<Client, Instant>,
    last_sweep: Option<Instant>,
}

impl RateTable {
    /// A table giving each client `limit` and tracking at most `clients_max` clients. A rate
    /// or burst of 0 is taken as 1.
    pub fn new(limit: RateLimit, clients_max: usize) -> RateTable {
        let limit = RateLimit { per_second: limit.per_second.max(1), burst: limit.burst.max(1) };
        let interval = Duration::from_secs(1) / limit.per_second;
        RateTable {
            limit,
            interval,
            burst_span: interval * limit.burst,
            clients_max,
            full_at: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Takes a token from `client`'s bucket for a call at `now`, or says when to retry.
    pub fn take(&mut self, client: Client, now: Instant) -> Result<(), RateRefusal> {
        if !self.full_at.contains_key(&client) && self.full_at.len() >= self.clients_max {
            self.sweep(now);
            if self.full_at.len() >= self.clients_max {
                let next_sweep = self.last_sweep.map_or(now, |t| t + RATE_SWEEP_INTERVAL);
                return Err(RateRefusal::TooManyClients { retry_after: next_sweep.saturating_duration_since(now) });
            }
        }
        let full_at = self.full_at.entry(client).or_insert(now);
        let after = (*full_at).max(now) + self.interval;
        let limit_at = now + self.burst_span;
        if after > limit_at {
            return Err(RateRefusal::OverRate { limit: self.limit, retry_after: after - limit_at });
        }
        *full_at = after;
        Ok(())
    }

    /// Evicts the clients whose bucket is full again at `now`, unless a sweep ran less than
    /// [`RATE_SWEEP_INTERVAL`] ago.
    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|t| now < t + RATE_SWEEP_INTERVAL) {
            return;
        }
        self.last_sweep = Some(now);
        self.full_at.retain(|_, full_at| *full_at > now);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.full_at.len()
    }
}

/// The limits shared by the RPC server's accept loop and its middleware, on the real clock.
#[derive(Debug)]
pub struct Limits {
    connections: Mutex<ConnectionTable>,
    rates: Mutex<RateTable>,
}

impl Limits {
    /// Shares `connections` and `rates`.
    pub fn new(connections: ConnectionTable, rates: RateTable) -> Arc<Limits> {
        Arc::new(Limits { connections: Mutex::new(connections), rates: Mutex::new(rates) })
    }

    /// Counts a new connection of `client` for as long as the returned slot lives.
    pub fn open_connection(self: &Arc<Self>, client: Client) -> Result<ConnectionSlot, ConnectionRefusal> {
        let ticket = lock(&self.connections).open(client)?;
        Ok(ConnectionSlot { limits: self.clone(), ticket: Some(ticket) })
    }

    /// Charges one call to `client`.
    pub fn take_call(&self, client: Client) -> Result<(), RateRefusal> {
        lock(&self.rates).take(client, Instant::now())
    }

    /// Connections of `client` open now.
    pub fn connections_of(&self, client: Client) -> u32 {
        lock(&self.connections).open_by(client)
    }
}

/// One counted connection; dropping it uncounts the connection.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<Limits>,
    ticket: Option<ConnectionTicket>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            lock(&self.limits.connections).close(ticket);
        }
    }
}

/// A connection stops being read once the answers made for it and not written to its socket
/// yet pass this many bytes, until they drain below it. Answers are made on tasks of their own
/// (WebSocket calls run concurrently), so without it a client that sends calls and never reads
/// the answers would have them pile up in the server's memory for as long as it keeps sending.
pub const UNSENT_ANSWER_BYTES_MAX: usize = 8 << 20;

/// A connection stops being read while this many of its calls are being answered: each may
/// make an answer up to `rpc_response_bytes_max`, so a connection holds at most about
/// [`UNSENT_ANSWER_BYTES_MAX`] plus this many answers its client has not taken.
pub const CALLS_IN_PROGRESS_MAX: usize = 32;

/// What one connection owes its client: the bytes of answers made and not yet written to its
/// socket, and its calls being answered. Past [`UNSENT_ANSWER_BYTES_MAX`] or
/// [`CALLS_IN_PROGRESS_MAX`] the connection is not read (so no new call starts) until its
/// client takes its answers: a client reading slowly is served at its own pace, and one that
/// never reads holds a bounded amount, then is closed by the WebSocket ping's inactivity limit.
///
/// Writes are counted as they leave, frames and subscription notifications included, which
/// answers (the only ones counted as made) do not cover: the count never goes below zero, so it
/// may only undercount what waits, by what notifications wrote meanwhile (bounded by
/// jsonrpsee's per-subscription buffer).
#[derive(Debug, Default)]
pub struct Backlog {
    unsent: AtomicUsize,
    in_progress: AtomicUsize,
    /// The connection's reader, waiting for the backlog to drain.
    reader: Mutex<Option<Waker>>,
}

impl Backlog {
    /// Whether the connection may be read: its backlog is within both bounds.
    pub fn may_read(&self) -> bool {
        self.unsent.load(Ordering::Acquire) <= UNSENT_ANSWER_BYTES_MAX
            && self.in_progress.load(Ordering::Acquire) < CALLS_IN_PROGRESS_MAX
    }

    /// Whether the connection may be read; if not, `waker` is woken once it may.
    pub fn may_read_or_wake(&self, waker: &Waker) -> bool {
        if self.may_read() {
            return true;
        }
        *lock(&self.reader) = Some(waker.clone());
        // Drained between the check and the registration: read now.
        self.may_read()
    }

    /// A call started.
    pub fn call_started(&self) {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
    }

    /// A call ended with an answer of `bytes` (0 for none).
    pub fn call_ended(&self, bytes: usize) {
        self.unsent.fetch_add(bytes, Ordering::AcqRel);
        self.in_progress.fetch_sub(1, Ordering::AcqRel);
        self.wake_if_readable();
    }

    /// `bytes` were written to the socket.
    pub fn written(&self, bytes: usize) {
        let _ = self.unsent.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(bytes)));
        self.wake_if_readable();
    }

    fn wake_if_readable(&self) {
        if self.may_read()
            && let Some(waker) = lock(&self.reader).take()
        {
            waker.wake();
        }
    }
}

/// The tables' locks are held for a few map operations; a panic while holding one leaves
/// nothing half-done that matters, so a poisoned lock is used as it is.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_connection_is_not_read_past_its_unsent_answers_or_calls_and_is_woken_when_they_drain() {
        let b = Backlog::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        // Answers up to the bound: still read.
        b.call_started();
        b.call_ended(UNSENT_ANSWER_BYTES_MAX);
        assert!(b.may_read_or_wake(&waker));
        // One byte more: not read, until a write takes it back under.
        b.call_started();
        b.call_ended(1);
        assert!(!b.may_read_or_wake(&waker));
        b.written(0);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nothing drained");
        b.written(1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once readable");
        assert!(b.may_read());
        // Writes beyond what was counted (frames, notifications) never go below zero.
        b.written(usize::MAX);
        b.call_started();
        b.call_ended(UNSENT_ANSWER_BYTES_MAX + 1);
        assert!(!b.may_read(), "no credit was kept from the extra writes");
        b.written(usize::MAX);
        // Calls in progress up to the bound: not read until one ends.
        for _ in 0..CALLS_IN_PROGRESS_MAX {
            assert!(b.may_read_or_wake(&waker));
            b.call_started();
        }
        assert!(!b.may_read_or_wake(&waker));
        b.call_ended(0);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(b.may_read());
    }

    fn client(last: u8) -> Client {
        Client::of(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn ipv6_clients_are_their_64_network_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(Client::of(a), Client::of(b));
        assert_ne!(Client::of(a), Client::of(other));
        assert_eq!(Client::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(Client::of(mapped), Client::of(IpAddr::from([10, 1, 2, 3])));
        assert_ne!(client(1), client(2));
    }

    #[test]
    fn a_client_at_its_share_is_refused_while_others_are_served() {
        let mut t = ConnectionTable::new(2, 5);
        let a1 = t.open(client(1)).expect("first");
        let _a2 = t.open(client(1)).expect("second");
        assert_eq!(t.open(client(1)).map(|_| ()), Err(ConnectionRefusal::PerClient { max: 2 }));
        let _b = t.open(client(2)).expect("another client is served");
        assert_eq!((t.open_by(client(1)), t.total(), t.clients()), (2, 3, 2));
        t.close(a1);
        let _a3 = t.open(client(1)).expect("a slot freed by closing is usable again");
    }

    #[test]
    fn the_total_is_enforced_and_says_so_and_closing_frees_it() {
        let mut t = ConnectionTable::new(2, 3);
        let tickets: Vec<_> = [1, 1, 2].into_iter().map(|c| t.open(client(c)).expect("under the limits")).collect();
        assert_eq!(t.open(client(3)).map(|_| ()), Err(ConnectionRefusal::Total { max: 3 }));
        // The client's own share is named first when both apply.
        assert_eq!(t.open(client(1)).map(|_| ()), Err(ConnectionRefusal::PerClient { max: 2 }));
        for ticket in tickets {
            t.close(ticket);
        }
        assert_eq!((t.total(), t.clients()), (0, 0), "closed clients leave no entry behind");
        let _c = t.open(client(3)).expect("served once others closed");
    }

    #[test]
    fn refusals_say_which_limit_and_what_to_do() {
        assert_eq!(
            ConnectionRefusal::PerClient { max: 32 }.to_string(),
            "too many connections from your address (32); close some and retry"
        );
        assert!(ConnectionRefusal::Total { max: 256 }.to_string().contains("at most 256 connections"));
        let r = RateRefusal::OverRate {
            limit: RateLimit { per_second: 10, burst: 20 },
            retry_after: Duration::from_micros(1_500),
        };
        assert_eq!(r.retry_after_ms(), 2, "rounded up");
        assert!(r.to_string().contains("slow down and retry in 2 ms"), "{r}");
        assert_eq!(RateRefusal::TooManyClients { retry_after: Duration::ZERO }.retry_after_ms(), 1, "at least 1 ms");
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_the_rate() {
        let limit = RateLimit { per_second: 10, burst: 3 };
        let mut t = RateTable::new(limit, 16);
        let t0 = Instant::now();
        for _ in 0..3 {
            t.take(client(1), t0).expect("within the burst");
        }
        let refused = t.take(client(1), t0).expect_err("the bucket is empty");
        assert_eq!(refused, RateRefusal::OverRate { limit, retry_after: Duration::from_millis(100) });
        // Another client has its own bucket.
        t.take(client(2), t0).expect("another client is served");
        // One token comes back every 100 ms: not before, exactly then.
        assert!(t.take(client(1), t0 + Duration::from_millis(99)).is_err());
        t.take(client(1), t0 + Duration::from_millis(100)).expect("one token back");
        assert!(t.take(client(1), t0 + Duration::from_millis(100)).is_err());
        // After a long pause the bucket is full again, not fuller.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            t.take(client(1), later).expect("full again");
        }
        assert!(t.take(client(1), later).is_err(), "the bucket holds no more than its burst");
    }

    #[test]
    fn a_steady_rate_is_served_and_a_faster_one_is_not() {
        let mut t = RateTable::new(RateLimit { per_second: 1_000, burst: 1 }, 16);
        let t0 = Instant::now();
        let (mut served, mut refused) = (0, 0);
        // 4,000 calls a second for one second: about 1,000 served.
        for i in 0..4_000u64 {
            match t.take(client(1), t0 + Duration::from_micros(250 * i)) {
                Ok(()) => served += 1,
                Err(_) => refused += 1,
            }
        }
        assert_eq!((served, refused), (1_000, 3_000));
    }

    #[test]
    fn the_table_is_bounded_and_idle_clients_make_room() {
        let limit = RateLimit { per_second: 1, burst: 2 };
        let mut t = RateTable::new(limit, 2);
        let t0 = Instant::now();
        t.take(client(1), t0).expect("tracked");
        t.take(client(2), t0).expect("tracked");
        // Both are within their burst: a third client cannot be tracked, and is told when to retry.
        let refused = t.take(client(3), t0).expect_err("table full");
        assert_eq!(refused, RateRefusal::TooManyClients { retry_after: RATE_SWEEP_INTERVAL });
        assert_eq!(t.tracked(), 2);
        // A second later both buckets are full again: idle, evicted for the newcomer.
        let t1 = t0 + RATE_SWEEP_INTERVAL;
        t.take(client(3), t1).expect("room was made");
        assert_eq!(t.tracked(), 1, "only the newcomer is tracked");
    }

    #[test]
    fn sweeps_are_rate_limited_when_no_client_is_idle() {
        let mut t = RateTable::new(RateLimit { per_second: 1, burst: 10 }, 1);
        let t0 = Instant::now();
        for _ in 0..5 {
            t.take(client(1), t0).expect("tracked");
        }
        assert!(matches!(t.take(client(2), t0), Err(RateRefusal::TooManyClients { .. })));
        // Client 1 stays busy; until the next sweep is due, newcomers are refused without one.
        let soon = t0 + Duration::from_millis(400);
        let refused = t.take(client(3), soon).expect_err("no sweep yet");
        assert_eq!(refused, RateRefusal::TooManyClients { retry_after: Duration::from_millis(600) });
        // Client 1's bucket is full again 5 s after its calls: then it is evicted.
        t.take(client(2), t0 + Duration::from_secs(5)).expect("client 1 idle, evicted");
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let limits = Limits::new(ConnectionTable::new(1, 10), RateTable::new(RateLimit { per_second: 1, burst: 1 }, 4));
        let slot = limits.open_connection(client(1)).expect("first");
        assert!(matches!(limits.open_connection(client(1)), Err(ConnectionRefusal::PerClient { max: 1 })));
        assert_eq!(limits.connections_of(client(1)), 1);
        drop(slot);
        assert_eq!(limits.connections_of(client(1)), 0);
        let _slot = limits.open_connection(client(1)).expect("free again");
        limits.take_call(client(1)).expect("a call");
        assert!(limits.take_call(client(1)).is_err(), "burst of 1");
    }
}
