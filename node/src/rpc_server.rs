//! The JSON-RPC server's transport: its own accept loop, fair to its clients
//! ([`crate::rpc_limits`]: connections per address and in total, calls per address per
//! second), serving the methods of [`crate::rpc_api`] over HTTP and WebSocket.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use cairn_rpc::CairnApiServer;
use cairn_rpc::error;
use futures::future::Either;
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, BatchEntryErr, MethodResponse, Notification, Request, RpcServiceBuilder, RpcServiceT,
};
use jsonrpsee::server::{
    Methods, PingConfig, Server, ServerConfig, ServerHandle, serve_with_graceful_shutdown, stop_channel,
};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::rpc_api::RpcImpl;
use crate::rpc_limits::{
    Backlog, Client, ConnectionRefusal, ConnectionSlot, ConnectionTable, Limits, RATE_CLIENTS_TRACKED_MAX, RateLimit,
    RateRefusal, RateTable,
};
use crate::service::view::Handle;

/// Refused connections being answered at once, at most; past it a refused socket is closed
/// without an answer. Bounds the sockets and tasks refusals hold to this many, each for at most
/// [`REFUSAL_LINGER`].
const REFUSALS_IN_FLIGHT_MAX: usize = 64;

/// How long a refused socket is kept, at most, to read what the client sent: closing a socket
/// with unread bytes resets the connection, and the client could lose the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Bytes read from a refused client before its socket is closed, at most.
const REFUSAL_DRAIN_BYTES_MAX: usize = 64 << 10;

/// The pause after a failed accept (such as running out of file descriptors), so the loop does
/// not spin while the condition lasts.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Worker threads of the RPC server's own runtime. Idle, a thread costs nothing; on cores the
/// node's own work keeps busy, each is one more turn the scheduler gives to answering calls:
/// at 3× the peak on two cores the refusals' p99 was ~40 ms with 2, ~15 ms with 4 and over
/// 500 ms with 1 (BENCHMARKS.md). More would take still more of the cores from consensus when
/// the calls themselves are what floods the node.
pub const RPC_THREADS: usize = 4;

/// The runtime the RPC server runs on, one per process, apart from the node's: calls are
/// answered, and refused under overload, on threads of their own instead of waiting behind
/// the node's gossip and consensus tasks. Its sockets are registered with its own I/O driver,
/// so a busy node runtime delays neither their reading nor their writing.
fn rpc_runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::Mutex<Option<&'static tokio::runtime::Runtime>> = std::sync::Mutex::new(None);
    let mut runtime = RUNTIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(r) = *runtime {
        return Ok(r);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RPC_THREADS)
        .thread_name("cairn-rpc")
        .enable_all()
        .build()
        .context("starting the RPC server's runtime")?;
    // Kept for the life of the process: a runtime may not be dropped from async code.
    let r: &'static tokio::runtime::Runtime = Box::leak(Box::new(built));
    *runtime = Some(r);
    Ok(r)
}

/// Starts the RPC server on the configured address; records the address bound.
///
/// The server runs its own accept loop so that it can be fair (see [`crate::rpc_limits`]): a
/// connection over its client's share or over the total is answered with HTTP 429 and closed,
/// and every call of a connection is charged to its client's token bucket by the `FairCalls`
/// middleware.
pub async fn start(node: Handle) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    start_with_metrics(node, None).await
}

/// The API's method names, subscriptions' and unsubscriptions' included (the labels of the
/// RPC metrics).
pub fn method_names() -> Vec<&'static str> {
    cairn_rpc::openrpc::method_names(&cairn_rpc::openrpc::document().0)
}

/// [`start`], counting every call in `metrics` (per method, and per error code).
pub async fn start_with_metrics(
    node: Handle,
    metrics: Option<Arc<Metrics>>,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let c = node.config.clone();
    anyhow::ensure!(
        c.rpc_connections_max >= 1 && c.rpc_connections_per_ip_max >= 1,
        "rpc_connections_max and rpc_connections_per_ip_max must be at least 1"
    );
    anyhow::ensure!(
        c.rpc_requests_per_ip_per_second >= 1 && c.rpc_requests_per_ip_burst >= 1,
        "rpc_requests_per_ip_per_second and rpc_requests_per_ip_burst must be at least 1"
    );
    let limits = ServerConfig::builder()
        .max_request_body_size(c.rpc_request_bytes_max)
        .max_response_body_size(c.rpc_response_bytes_max)
        .max_connections(c.rpc_connections_max)
        .max_subscriptions_per_connection(c.rpc_subscriptions_per_connection_max)
        // A WebSocket client that vanished without closing is noticed and its slot freed.
        .enable_ws_ping(PingConfig::new())
        .build();
    let fair = Limits::new(
        ConnectionTable::new(c.rpc_connections_per_ip_max, c.rpc_connections_max),
        RateTable::new(
            RateLimit { per_second: c.rpc_requests_per_ip_per_second, burst: c.rpc_requests_per_ip_burst },
            RATE_CLIENTS_TRACKED_MAX,
        ),
    );
    let listener =
        std::net::TcpListener::bind(c.rpc).with_context(|| format!("cannot bind the RPC server to {}", c.rpc))?;
    listener.set_nonblocking(true).context("the RPC server's socket")?;
    let addr = listener.local_addr()?;
    let runtime = rpc_runtime()?;
    // Registered with the RPC runtime's I/O driver.
    let listener = {
        let _in_it = runtime.enter();
        TcpListener::from_std(listener).context("the RPC server's socket")?
    };
    // `GET /health`, `GET /ready` and the explorer's files are answered before the JSON-RPC
    // server (crate::health, crate::explorer).
    let health = crate::health::HealthLayer::new(node.view.clone(), node.address);
    let services = Server::builder()
        .set_config(limits)
        .set_http_middleware(tower::ServiceBuilder::new().layer(health))
        .to_service_builder();
    let methods: Methods = RpcImpl::new(node).into_rpc().into();
    let (stop, handle) = stop_channel();
    runtime.spawn(async move {
        let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT_MAX));
        let stopped = stop.clone().shutdown();
        tokio::pin!(stopped);
        loop {
            let (socket, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "RPC server cannot accept a connection");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                },
                () = &mut stopped => break,
            };
            let client = Client::of(peer.ip());
            let slot = match fair.open_connection(client) {
                Ok(slot) => slot,
                Err(refusal) => {
                    tracing::debug!(%client, %refusal, "RPC connection refused");
                    refuse(socket, refusal, &refusals);
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let calls = fair.clone();
            let counted = metrics.clone();
            let backlog = Arc::new(Backlog::default());
            let owed = backlog.clone();
            let middleware = RpcServiceBuilder::new().layer_fn(move |inner| FairCalls {
                inner,
                client,
                limits: calls.clone(),
                metrics: counted.clone(),
                backlog: owed.clone(),
            });
            let service = services.clone().set_rpc_middleware(middleware).build(methods.clone(), stop.clone());
            let stopped = stop.clone().shutdown();
            tokio::spawn(async move {
                if let Err(e) =
                    serve_with_graceful_shutdown(CountedSocket { socket, backlog, _slot: slot }, service, stopped).await
                {
                    tracing::debug!(%client, error = %e, "RPC connection ended with an error");
                }
            });
        }
    });
    Ok((addr, handle))
}

/// Answers a refused connection with HTTP 429 and `refusal` as text, then closes it. The
/// answer is small and the socket new, so writing it does not wait; the socket is then read
/// (at most [`REFUSAL_DRAIN_BYTES_MAX`], for at most [`REFUSAL_LINGER`]) so that closing it
/// does not reset the connection before the client has read the answer.
fn refuse(mut socket: TcpStream, refusal: ConnectionRefusal, in_flight: &Arc<Semaphore>) {
    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let body = format!("{refusal}\n");
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            socket.write_all(answer.as_bytes()).await?;
            socket.shutdown().await?;
            let mut buf = [0u8; 4096];
            let mut read = 0;
            while read < REFUSAL_DRAIN_BYTES_MAX {
                match socket.read(&mut buf).await? {
                    0 => break,
                    n => read += n,
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

/// An accepted socket and its client's connection slot, given back when the socket closes —
/// also after a WebSocket upgrade, which moves the socket out of the HTTP connection into the
/// WebSocket's task. It is read only while the connection's [`Backlog`] allows, and counts
/// what it writes there.
struct CountedSocket {
    socket: TcpStream,
    backlog: Arc<Backlog>,
    _slot: ConnectionSlot,
}

impl AsyncRead for CountedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.backlog.may_read_or_wake(cx.waker()) {
            return Poll::Pending;
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

impl CountedSocket {
    fn count(&self, written: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = written {
            self.backlog.written(n);
        }
        written
    }
}

impl AsyncWrite for CountedSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.socket).poll_write(cx, buf);
        this.count(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.socket).poll_write_vectored(cx, bufs);
        this.count(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

/// RPC middleware charging every call of a connection to its client's token bucket: a call
/// over the rate is not run and gets [`error::OVERLOADED`] with a retry hint. Each entry of a
/// batch is charged like a call; a notification over the rate is dropped (it has no answer).
/// Every call, batch and notification counts in the connection's [`Backlog`] while it runs,
/// and its answer's bytes after.
#[derive(Clone)]
struct FairCalls<S> {
    inner: S,
    client: Client,
    limits: Arc<Limits>,
    metrics: Option<Arc<Metrics>>,
    backlog: Arc<Backlog>,
}

/// A call of a connection in progress; it ends when dropped, with its answer's bytes once it
/// has one (a call whose connection closed is dropped unanswered).
struct InProgress {
    backlog: Arc<Backlog>,
    answer_bytes: usize,
}

impl InProgress {
    fn start(backlog: &Arc<Backlog>) -> InProgress {
        backlog.call_started();
        InProgress { backlog: backlog.clone(), answer_bytes: 0 }
    }

    /// Ends the call with `answer` (a notification's is never sent).
    fn answered(mut self, answer: MethodResponse) -> MethodResponse {
        if !answer.is_notification() {
            self.answer_bytes = answer.as_json().get().len();
        }
        answer
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.backlog.call_ended(self.answer_bytes);
    }
}

/// The error of a call over its client's rate: the refusal's text, and `retry_after_ms`.
fn over_rate(refusal: &RateRefusal) -> jsonrpsee::types::ErrorObjectOwned {
    error::overloaded(refusal.to_string(), refusal.retry_after_ms())
}

impl<S> RpcServiceT for FairCalls<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let metrics = self.metrics.clone();
        let method = metrics.as_ref().map(|m| m.method(request.method_name()));
        let answer = match self.limits.take_call(self.client) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => Either::Right(std::future::ready(MethodResponse::error(request.id, over_rate(&refusal)))),
        };
        let call = InProgress::start(&self.backlog);
        async move {
            let response = answer.await;
            if let (Some(metrics), Some(method)) = (metrics, method) {
                metrics.rpc_call_of(method, response.as_error_code());
            }
            call.answered(response)
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let was_empty = batch.is_empty();
        let entries: Vec<_> = batch
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(BatchEntry::Call(request)) => Some(match self.limits.take_call(self.client) {
                    // A batch's calls are counted; their errors are in the batch's one answer.
                    Ok(()) => {
                        if let Some(m) = &self.metrics {
                            m.rpc_call(request.method_name(), None);
                        }
                        Ok(BatchEntry::Call(request))
                    }
                    Err(refusal) => Err(BatchEntryErr::new(request.id, over_rate(&refusal))),
                }),
                Ok(BatchEntry::Notification(n)) => {
                    self.limits.take_call(self.client).is_ok().then_some(Ok(BatchEntry::Notification(n)))
                }
                Err(e) => Some(Err(e)),
            })
            .collect();
        let answer = if entries.is_empty() && !was_empty {
            // Only notifications, all over the rate: nothing to answer.
            Either::Right(std::future::ready(MethodResponse::notification()))
        } else {
            Either::Left(self.inner.batch(Batch::from(entries)))
        };
        let call = InProgress::start(&self.backlog);
        async move { call.answered(answer.await) }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let answer = match self.limits.take_call(self.client) {
            Ok(()) => Either::Left(self.inner.notification(n)),
            Err(_) => Either::Right(std::future::ready(MethodResponse::notification())),
        };
        let call = InProgress::start(&self.backlog);
        async move { call.answered(answer.await) }
    }
}
