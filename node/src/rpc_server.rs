//! The JSON-RPC server: [`CairnApiServer`] over the node's [`Shared`] state.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use cairn_contracts::{JobPhase, TxError};
use cairn_ledger::{
    Block, FORMAT_VERSION, Hash, PublicKey, ReceiptProof, SignedOffer, SignedTx, StateProof, StateValue, Transaction,
};

/// The most providers `provider_list` returns.
const PROVIDER_LIST_MAX: usize = 10_000;

/// `consensus_evidence` looks at this many heights, up to the highest one messages are taken for.
const EVIDENCE_HEIGHTS_MAX: u64 = 10_000;

/// The most evidence `consensus_evidence` returns.
const EVIDENCE_LIST_MAX: usize = 1_000;

/// The longest state key (a tag and a 32-byte id).
const STATE_KEY_BYTES_MAX: usize = 33;
use cairn_rpc::error::{self, err};
use cairn_rpc::{
    AccountInfo, CairnApiServer, EvidenceInfo, EvidenceKind, HeadInfo, JobEvent, JobInfo, JobStage, NodeInfo,
    PendingOffer, ProviderInfo, RpcResult,
};
use futures::future::Either;
use jsonrpsee::core::{SubscriptionResult, async_trait};
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, BatchEntryErr, MethodResponse, Notification, Request, RpcServiceBuilder, RpcServiceT,
};
use jsonrpsee::server::{
    Methods, PendingSubscriptionSink, PingConfig, Server, ServerConfig, ServerHandle, SubscriptionMessage,
    serve_with_graceful_shutdown, stop_channel,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use crate::chain::proof_from_store;
use crate::mempool::MempoolError;
use crate::rpc_limits::{
    Client, ConnectionRefusal, ConnectionSlot, ConnectionTable, Limits, RATE_CLIENTS_TRACKED_MAX, RateLimit,
    RateRefusal, RateTable,
};
use crate::service::{AdmitError, Command, Shared, lock};
use crate::tracker::result_info;

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

/// Starts the RPC server on the configured address; records the address bound.
///
/// The server runs its own accept loop so that it can be fair (see [`crate::rpc_limits`]): a
/// connection over its client's share or over the total is answered with HTTP 429 and closed,
/// and every call of a connection is charged to its client's token bucket by the `FairCalls`
/// middleware.
pub async fn start(shared: Arc<Shared>) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let c = &shared.config;
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
        TcpListener::bind(c.rpc).await.with_context(|| format!("cannot bind the RPC server to {}", c.rpc))?;
    let addr = listener.local_addr()?;
    let services = Server::builder().set_config(limits).to_service_builder();
    let uploads = Arc::new(tokio::sync::Semaphore::new(MODULE_UPLOADS_AT_ONCE));
    let methods: Methods = RpcImpl { shared: shared.clone(), uploads }.into_rpc().into();
    let (stop, handle) = stop_channel();
    tokio::spawn(async move {
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
            let middleware =
                RpcServiceBuilder::new().layer_fn(move |inner| FairCalls { inner, client, limits: calls.clone() });
            let service = services.clone().set_rpc_middleware(middleware).build(methods.clone(), stop.clone());
            let stopped = stop.clone().shutdown();
            tokio::spawn(async move {
                if let Err(e) =
                    serve_with_graceful_shutdown(CountedSocket { socket, _slot: slot }, service, stopped).await
                {
                    tracing::debug!(%client, error = %e, "RPC connection ended with an error");
                }
            });
        }
    });
    let _ = shared.rpc_addr.set(addr);
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
/// WebSocket's task.
struct CountedSocket {
    socket: TcpStream,
    _slot: ConnectionSlot,
}

impl AsyncRead for CountedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
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
#[derive(Clone)]
struct FairCalls<S> {
    inner: S,
    client: Client,
    limits: Arc<Limits>,
}

/// The error of a call over its client's rate: the refusal's text, and `retry_after_ms`.
fn over_rate(refusal: &RateRefusal) -> jsonrpsee::types::ErrorObjectOwned {
    let data = serde_json::json!({ "retry_after_ms": refusal.retry_after_ms() });
    jsonrpsee::types::ErrorObjectOwned::owned(error::OVERLOADED, refusal.to_string(), Some(data))
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
        match self.limits.take_call(self.client) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(refusal) => Either::Right(std::future::ready(MethodResponse::error(request.id, over_rate(&refusal)))),
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let was_empty = batch.is_empty();
        let entries: Vec<_> = batch
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(BatchEntry::Call(request)) => Some(match self.limits.take_call(self.client) {
                    Ok(()) => Ok(BatchEntry::Call(request)),
                    Err(refusal) => Err(BatchEntryErr::new(request.id, over_rate(&refusal))),
                }),
                Ok(BatchEntry::Notification(n)) => {
                    self.limits.take_call(self.client).is_ok().then_some(Ok(BatchEntry::Notification(n)))
                }
                Err(e) => Some(Err(e)),
            })
            .collect();
        if entries.is_empty() && !was_empty {
            // Only notifications, all over the rate: nothing to answer.
            Either::Right(std::future::ready(MethodResponse::notification()))
        } else {
            Either::Left(self.inner.batch(Batch::from(entries)))
        }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        match self.limits.take_call(self.client) {
            Ok(()) => Either::Left(self.inner.notification(n)),
            Err(_) => Either::Right(std::future::ready(MethodResponse::notification())),
        }
    }
}

fn message(ev: &JobEvent) -> Result<SubscriptionMessage, serde_json::Error> {
    Ok(jsonrpsee::core::to_json_raw_value(ev)?.into())
}

/// Module uploads validated and compiled at once (each takes up to the compile bound of
/// JOB-ABI.md §5); more wait their turn.
pub const MODULE_UPLOADS_AT_ONCE: usize = 1;

struct RpcImpl {
    shared: Arc<Shared>,
    uploads: Arc<tokio::sync::Semaphore>,
}

fn internal(e: impl std::fmt::Display) -> jsonrpsee::types::ErrorObjectOwned {
    err(error::INTERNAL, format!("internal error: {e}; see the node's log"))
}

/// `overloaded`, with `retry_after_ms` in the error's data.
fn overloaded(message: String, retry_after_ms: u64) -> jsonrpsee::types::ErrorObjectOwned {
    jsonrpsee::types::ErrorObjectOwned::owned(
        error::OVERLOADED,
        message,
        Some(serde_json::json!({ "retry_after_ms": retry_after_ms })),
    )
}

fn tx_error(e: &TxError) -> jsonrpsee::types::ErrorObjectOwned {
    let code = match e {
        TxError::BadSignature(_) => error::BAD_SIGNATURE,
        TxError::InsufficientBalance { .. } => error::INSUFFICIENT_BALANCE,
        TxError::Nonce { .. } => error::BAD_NONCE,
        _ => error::INVALID_TX,
    };
    err(code, e.to_string())
}

impl RpcImpl {
    fn submit(&self, tx: Transaction) -> RpcResult<()> {
        match self.shared.admit(&tx) {
            Ok(_) => {}
            Err(AdmitError::Tx(e)) => return Err(tx_error(&e)),
            Err(AdmitError::Overloaded(o)) => return Err(overloaded(o.to_string(), o.retry_after_ms)),
            Err(AdmitError::Mempool(e @ MempoolError::Full(_))) => {
                return Err(overloaded(e.to_string(), self.shared.config.block_time_ms.max(1) * 4));
            }
            Err(AdmitError::Mempool(e)) => return Err(err(error::INVALID_TX, e.to_string())),
        }
        self.shared
            .commands
            .try_send(Command::Tx(Box::new(tx)))
            .map_err(|_| err(error::OVERLOADED, "the node is busy; retry shortly"))
    }
    fn job_info(&self, job_id: Hash) -> RpcResult<JobInfo> {
        let tracked = lock(&self.shared.tracker).get(&job_id);
        let chain = self.shared.chain();
        if let Some(job) = chain.state.job(&job_id) {
            let loc = chain.store.job(&job_id).map_err(internal)?.unwrap_or_default();
            let mut result = tracked.as_ref().and_then(|t| t.1.clone());
            if result.is_none()
                && let Some((h, _)) = loc.receipt
                && let Some(block) = chain.store.block(h).map_err(internal)?
            {
                result = block.txs.iter().find_map(|tx| match tx {
                    Transaction::Result(r) if r.claim.job_id == job_id => Some(result_info(r)),
                    _ => None,
                });
            }
            let stage = match job.phase {
                JobPhase::Completed | JobPhase::Settled | JobPhase::Slashed | JobPhase::Challenged => {
                    JobStage::Finalized
                }
                // Its results are in blocks; it settles when its re-execution does.
                JobPhase::Disputed => JobStage::Included,
                JobPhase::Expired => JobStage::Expired,
                JobPhase::Open => tracked.as_ref().map_or(JobStage::Accepted, |t| t.0),
            };
            return Ok(JobInfo {
                job_id,
                stage,
                client: job.client,
                module_id: job.module_id,
                fuel_limit: job.fuel_limit,
                max_price: job.max_price,
                // Every provider assigned so far: the first k ranked, then stand-ins.
                assigned: job.assignees().to_vec(),
                result,
                offer_height: loc.offer_height,
                receipt_height: loc.receipt.map(|r| r.0),
                paid: (job.phase == JobPhase::Settled).then_some(job.paid),
                pending: None,
                reason: None,
            });
        }
        let (offer, includable) = {
            let mempool = lock(&self.shared.mempool);
            match mempool.offer(&job_id) {
                Some(o) => {
                    let state_nonce = chain.state.account(&o.offer.client).nonce;
                    (Some(o.clone()), mempool.is_includable(o.offer.client, o.offer.nonce, state_nonce))
                }
                None => (None, false),
            }
        };
        let pending = offer.as_ref().map(|o| PendingOffer { nonce: o.offer.nonce, fee: o.offer.fee, includable });
        let dropped = match &offer {
            Some(_) => None,
            None => lock(&self.shared.tracker).dropped(&job_id).map(|(o, why)| (o.clone(), why.map(str::to_owned))),
        };
        let (o, reason) = match (offer, dropped) {
            (Some(o), _) => (o, None),
            (None, Some((o, why))) => (o, why),
            (None, None) => {
                return Err(err(error::NOT_FOUND, format!("job {job_id} is unknown to this node; check the id")));
            }
        };
        Ok(JobInfo {
            job_id,
            stage: tracked.as_ref().map_or(JobStage::Accepted, |t| t.0),
            client: o.offer.client,
            module_id: o.offer.module_id,
            fuel_limit: o.offer.fuel_limit,
            max_price: o.offer.max_price,
            assigned: chain.state.assignment(&job_id, o.offer.max_price, usize::from(o.offer.redundancy)),
            result: tracked.and_then(|t| t.1),
            offer_height: None,
            receipt_height: None,
            paid: None,
            pending,
            reason,
        })
    }
}

#[async_trait]
impl CairnApiServer for RpcImpl {
    async fn module_put(&self, wasm_hex: String) -> RpcResult<Hash> {
        let wasm = hex::decode(wasm_hex.strip_prefix("0x").unwrap_or(&wasm_hex))
            .map_err(|e| err(error::INVALID_MODULE, format!("the module must be hex: {e}")))?;
        // Validated and compiled (what a job's execution compiles, within the bound of
        // JOB-ABI.md §5), a few uploads at a time, off the async threads.
        let _slot = self.uploads.acquire().await.map_err(internal)?;
        let shared = self.shared.clone();
        let id = tokio::task::spawn_blocking(move || -> RpcResult<Hash> {
            shared.vm.prepare(&wasm).map_err(|e| err(error::INVALID_MODULE, e.to_string()))?;
            shared.chain().store.put_blob(&wasm).map_err(internal)
        })
        .await
        .map_err(internal)??;
        let _ = self.shared.commands.try_send(Command::ModuleUploaded(id));
        Ok(id)
    }

    async fn job_submit(&self, offer: SignedOffer) -> RpcResult<Hash> {
        let module_id = offer.offer.module_id;
        if !self.shared.chain().store.has_blob(&module_id).map_err(internal)? {
            return Err(err(
                error::MODULE_UNKNOWN,
                format!("module {module_id} is not stored on this node; upload it with module_put first"),
            ));
        }
        let job_id = offer.job_id();
        self.submit(Transaction::Offer(offer))?;
        Ok(job_id)
    }

    async fn tx_submit(&self, tx: SignedTx) -> RpcResult<Hash> {
        let tx = Transaction::Account(tx);
        let hash = tx.hash();
        self.submit(tx)?;
        Ok(hash)
    }

    async fn provider_list(&self) -> RpcResult<Vec<ProviderInfo>> {
        let chain = self.shared.chain();
        Ok(chain
            .state
            .providers()
            .take(PROVIDER_LIST_MAX)
            .map(|(address, p)| ProviderInfo {
                address: *address,
                price_per_fuel: p.price_per_fuel,
                stake: p.stake,
                capacity: p.capacity,
                active_jobs: p.active_jobs,
                unbonding: p.unbonding.iter().map(|(_, a)| *a).sum(),
                eligible: p.stake >= chain.state.params().stake_min && p.stake > 0 && p.active_jobs < p.capacity,
            })
            .collect())
    }

    async fn job_get(&self, job_id: Hash) -> RpcResult<JobInfo> {
        self.job_info(job_id)
    }

    async fn job_proof(&self, job_id: Hash) -> RpcResult<ReceiptProof> {
        let store = self.shared.chain().store.clone();
        match proof_from_store(&store, &job_id).map_err(internal)? {
            Some(p) => Ok(p),
            None => match self.job_info(job_id) {
                Ok(info) if info.stage == JobStage::Expired => {
                    Err(err(error::NOT_FOUND, format!("job {job_id} expired without a receipt")))
                }
                Ok(_) => Err(err(
                    error::NOT_FINALIZED,
                    format!("job {job_id} has no finalized receipt yet; retry after its finalized event"),
                )),
                Err(e) => Err(e),
            },
        }
    }

    async fn job_subscribe(&self, pending: PendingSubscriptionSink, job_id: Hash) -> SubscriptionResult {
        let (mut past, mut rx) = lock(&self.shared.tracker).subscribe(&job_id);
        if past.is_empty() {
            // Not seen since this node started: tell what the chain knows, if anything.
            if let Ok(info) = self.job_info(job_id)
                && info.stage >= JobStage::Finalized
            {
                past.push(JobEvent {
                    job_id,
                    stage: info.stage,
                    result: info.result,
                    height: info.receipt_height,
                    reason: info.reason,
                });
            }
        }
        let sink = pending.accept().await?;
        let mut last = None;
        for ev in past {
            last = Some(ev.stage);
            sink.send(message(&ev)?).await?;
        }
        let done = |s: Option<JobStage>| s.is_some_and(JobStage::is_terminal);
        while !done(last) {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                ev = rx.recv() => match ev {
                    Ok(ev) if ev.job_id == job_id => {
                        last = Some(ev.stage);
                        sink.send(message(&ev)?).await?;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: resend the current stage.
                        let (past, _) = lock(&self.shared.tracker).subscribe(&job_id);
                        let sent = last;
                        for ev in past.into_iter().filter(|e| sent.is_none_or(|l| e.stage > l)) {
                            last = Some(ev.stage);
                            sink.send(message(&ev)?).await?;
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
        Ok(())
    }

    async fn chain_head(&self) -> RpcResult<HeadInfo> {
        let chain = self.shared.chain();
        Ok(match &chain.head {
            Some(h) => HeadInfo { height: h.height, hash: h.hash(), state_root: h.state_root, time_ms: h.time_ms },
            None => HeadInfo {
                height: 0,
                hash: Hash::ZERO,
                state_root: chain.store.state_root(0).map_err(internal)?.unwrap_or(Hash::ZERO),
                time_ms: chain.genesis.genesis_time_ms,
            },
        })
    }

    async fn chain_get_block(&self, height: u64) -> RpcResult<Block> {
        let store = self.shared.chain().store.clone();
        store
            .block(height)
            .map_err(internal)?
            .ok_or_else(|| err(error::NOT_FOUND, format!("no finalized block at height {height}")))
    }

    async fn account_get(&self, address: PublicKey) -> RpcResult<AccountInfo> {
        let account = self.shared.chain().state.account(&address);
        let next_nonce = lock(&self.shared.mempool).next_nonce(address, account.nonce);
        Ok(AccountInfo { address, balance: account.balance, nonce: account.nonce, next_nonce })
    }

    async fn state_get_proof(&self, key_hex: String, height: Option<u64>) -> RpcResult<StateProof> {
        let key = hex::decode(key_hex.strip_prefix("0x").unwrap_or(&key_hex))
            .map_err(|e| err(jsonrpsee::types::error::INVALID_PARAMS_CODE, format!("the key must be hex: {e}")))?;
        if key.len() > STATE_KEY_BYTES_MAX {
            return Err(err(jsonrpsee::types::error::INVALID_PARAMS_CODE, "state keys are at most 33 bytes"));
        }
        let (store, head) = {
            let chain = self.shared.chain();
            (chain.store.clone(), chain.height())
        };
        let height = height.unwrap_or(head);
        if height == 0 || height > head {
            return Err(err(error::NOT_FOUND, format!("no finalized block at height {height} (head is {head})")));
        }
        let header = store.block(height).map_err(internal)?.ok_or_else(|| internal("block missing"))?.header;
        let commit = store.commit(height).map_err(internal)?.ok_or_else(|| internal("commit missing"))?;
        let (value, proof) = store.state_proof(&key, height).map_err(|e| {
            err(error::NOT_FOUND, format!("no state proof at height {height}: {e}; older versions are pruned"))
        })?;
        Ok(StateProof { version: FORMAT_VERSION, key, value: value.map(StateValue), proof, header, commit })
    }

    async fn node_info(&self) -> RpcResult<NodeInfo> {
        let net = lock(&self.shared.net).clone();
        let chain = self.shared.chain();
        Ok(NodeInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            chain_id: chain.chain_id,
            chain_name: chain.genesis.chain_name.clone(),
            address: self.shared.key.public(),
            peer_id: net.peer_id,
            listen_addrs: net.listen_addrs,
            validator: self.shared.config.validator,
            provider: self.shared.config.provider,
            peers: net.peers,
            height: chain.height(),
            tx_fee_min: chain.state.params().tx_fee_min,
        })
    }

    async fn consensus_evidence(&self) -> RpcResult<Vec<EvidenceInfo>> {
        let (store, head) = {
            let chain = self.shared.chain();
            (chain.store.clone(), chain.height())
        };
        let top = head + 1 + cairn_consensus::HEIGHTS_AHEAD_MAX;
        let from = top.saturating_sub(EVIDENCE_HEIGHTS_MAX).max(1);
        let kept = store.evidence_between(from, top, EVIDENCE_LIST_MAX).map_err(internal)?;
        Ok(kept
            .into_iter()
            .filter_map(|(height, bytes)| {
                let info = evidence_info(&bytes);
                if info.is_none() {
                    tracing::warn!(height, "undecodable evidence in the store");
                }
                info
            })
            .collect())
    }
}

/// What the RPC shows of stored evidence (borsh of [`cairn_consensus::Evidence`]).
fn evidence_info(bytes: &[u8]) -> Option<EvidenceInfo> {
    use cairn_consensus::Evidence;
    let evidence: Evidence = borsh::from_slice(bytes).ok()?;
    let (round, kind) = match &evidence {
        Evidence::ConflictingVotes { first, .. } => (
            first.vote.round,
            match first.vote.kind {
                cairn_ledger::VoteKind::Prevote => EvidenceKind::ConflictingPrevotes,
                cairn_ledger::VoteKind::Precommit => EvidenceKind::ConflictingPrecommits,
            },
        ),
        Evidence::ConflictingProposals { first, .. } => (first.proposal.round, EvidenceKind::ConflictingProposals),
    };
    Some(EvidenceInfo { offender: evidence.offender(), height: evidence.height(), round, kind, hash: Hash::of(bytes) })
}
