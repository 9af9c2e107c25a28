//! Health for operators and their orchestrators, on the RPC port: `GET /health` answers 200
//! while the node runs; `GET /ready` answers 200 when it is ready to serve (caught up with its
//! peers), 206 while it syncs (with how far behind it is), 503 when it cannot be (no peer on
//! a chain that needs them). Both bodies are JSON (`/ready`'s is a [`Health`], the answer of
//! the `system_health` RPC method). Answered from the view the event loop publishes: a probe never
//! waits for the loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cairn_rpc::{Health, Readiness};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use serde::Serialize;
use tokio::sync::watch;
use tower::{Layer, Service};

use crate::service::view::View;

/// A node this many finalized blocks (or fewer) behind the highest one its peers showed it is
/// ready; further behind, it is syncing.
pub const READY_LAG_BLOCKS_MAX: u64 = 2;

/// The health `view` shows, for the node whose key is `address`: a lone validator of its chain
/// needs no peer; any other node does.
pub fn health_of(view: &View, address: &cairn_ledger::PublicKey) -> Health {
    let head_height = view.head.as_ref().map_or(0, |h| h.height);
    let peer_height = view.net.peer_height;
    let lag_blocks = peer_height.saturating_sub(head_height);
    let validators = &view.genesis.validators;
    let alone_is_enough = validators.len() == 1 && validators[0].address == *address;
    let (status, reason) = if view.net.peers == 0 && !alone_is_enough {
        (Readiness::NotReady, Some("no connected peer".to_string()))
    } else if lag_blocks > READY_LAG_BLOCKS_MAX {
        (Readiness::Syncing, Some(format!("{lag_blocks} blocks behind its peers")))
    } else {
        (Readiness::Ready, None)
    };
    Health { status, head_height, peer_height, lag_blocks, peers: view.net.peers as u64, reason }
}

/// The HTTP status `/ready` answers with.
pub fn http_status(health: &Health) -> http::StatusCode {
    match health.status {
        Readiness::Ready => http::StatusCode::OK,
        Readiness::Syncing => http::StatusCode::PARTIAL_CONTENT,
        Readiness::NotReady => http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The HTTP middleware answering `GET /health`, `GET /ready` and the explorer's files
/// ([`crate::explorer`]) before the JSON-RPC server.
#[derive(Clone)]
pub struct HealthLayer {
    view: watch::Receiver<Arc<View>>,
    address: cairn_ledger::PublicKey,
}

impl HealthLayer {
    /// Answers from `view`, for the node whose key is `address`.
    pub fn new(view: watch::Receiver<Arc<View>>, address: cairn_ledger::PublicKey) -> HealthLayer {
        HealthLayer { view, address }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = HealthService<S>;

    fn layer(&self, inner: S) -> HealthService<S> {
        HealthService { inner, view: self.view.clone(), address: self.address }
    }
}

/// See [`HealthLayer`].
#[derive(Clone)]
pub struct HealthService<S> {
    inner: S,
    view: watch::Receiver<Arc<View>>,
    address: cairn_ledger::PublicKey,
}

fn json_response(status: http::StatusCode, body: &impl Serialize) -> HttpResponse {
    let body = serde_json::to_vec(body).expect("health serializes");
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(HttpBody::from(body))
        .expect("a valid response")
}

impl<S, B> Service<HttpRequest<B>> for HealthService<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == http::Method::GET {
            match request.uri().path() {
                "/health" => {
                    let alive = json_response(http::StatusCode::OK, &serde_json::json!({ "status": "alive" }));
                    return Box::pin(std::future::ready(Ok(alive)));
                }
                "/ready" => {
                    let health = health_of(&self.view.borrow(), &self.address);
                    let answer = json_response(http_status(&health), &health);
                    return Box::pin(std::future::ready(Ok(answer)));
                }
                path => {
                    let tags = request.headers().get(http::header::IF_NONE_MATCH).map(http::HeaderValue::as_bytes);
                    if let Some(answer) = crate::explorer::answer(path, tags) {
                        return Box::pin(std::future::ready(Ok(answer)));
                    }
                }
            }
        }
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use cairn_ledger::{Genesis, Keypair};

    use super::*;
    use crate::service::view::NetInfo;

    fn view(genesis: Genesis, head: Option<u64>, peers: usize, peer_height: u64) -> View {
        View {
            chain_id: genesis.chain_id(),
            state: cairn_contracts::State::from_genesis(&genesis).expect("a valid genesis"),
            genesis: Arc::new(genesis),
            head: head.map(|height| cairn_ledger::BlockHeader { height, ..test_header() }),
            net: NetInfo { peers, peer_height, ..NetInfo::default() },
            blocks_executed: 0,
        }
    }

    fn test_header() -> cairn_ledger::BlockHeader {
        cairn_ledger::BlockHeader {
            version: cairn_ledger::FORMAT_VERSION,
            chain_id: cairn_ledger::Hash::ZERO,
            height: 0,
            parent_hash: cairn_ledger::Hash::ZERO,
            time_ms: 0,
            proposer: Keypair::from_seed([1; 32]).public(),
            tx_root: cairn_ledger::Hash::ZERO,
            receipt_root: cairn_ledger::Hash::ZERO,
            state_root: cairn_ledger::Hash::ZERO,
            last_commit_hash: cairn_ledger::Hash::ZERO,
            tx_count: 0,
            receipt_count: 0,
        }
    }

    fn genesis(validators: &[&Keypair]) -> Genesis {
        Genesis {
            version: cairn_ledger::FORMAT_VERSION,
            chain_name: "health".into(),
            genesis_time_ms: 0,
            validators: validators.iter().map(|k| cairn_ledger::Validator { address: k.public(), power: 10 }).collect(),
            accounts: vec![],
            providers: vec![],
            params: cairn_ledger::ChainParams::default(),
        }
    }

    #[test]
    fn ready_syncing_or_not_ready_from_peers_and_lag() {
        let (a, b) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let two = genesis(&[&a, &b]);
        let h = |v: &View| health_of(v, &a.public());
        let ready = h(&view(two.clone(), Some(10), 3, 12));
        assert_eq!((ready.status, ready.lag_blocks, http_status(&ready).as_u16()), (Readiness::Ready, 2, 200));
        let syncing = h(&view(two.clone(), Some(10), 3, 13));
        assert_eq!((syncing.status, syncing.lag_blocks, http_status(&syncing).as_u16()), (Readiness::Syncing, 3, 206));
        let alone = h(&view(two, Some(10), 0, 0));
        assert_eq!((alone.status, http_status(&alone).as_u16()), (Readiness::NotReady, 503));
        // The only validator of its chain finalizes alone.
        let solo = h(&view(genesis(&[&a]), None, 0, 0));
        assert_eq!(solo.status, Readiness::Ready);
        assert_eq!(health_of(&view(genesis(&[&b]), None, 0, 0), &a.public()).status, Readiness::NotReady);
    }
}
