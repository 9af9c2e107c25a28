//! Every documented error code is reachable on a real node, with its `data.reason`; Cairn's
//! codes never collide with the server library's (an oversized request, an unknown method and
//! bad hex get the library's and JSON-RPC's own codes).

use cairn_ledger::{Hash, Keypair};
use cairn_rpc::client::{self, OfferTerms};
use cairn_rpc::{CairnApiClient, error};
use jsonrpsee::core::ClientError;

use crate::support::{start, uppercase_module};

/// The code and `data.reason` of a call's error.
fn code_and_reason<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (i32, String) {
    match r {
        Err(ClientError::Call(e)) => (e.code(), error::reason_of(&e).unwrap_or_default()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_code_is_reachable_with_its_reason() {
    let mut net = start(1).await;
    // Node 0 with a tiny request rate, so `overloaded` is reachable by calling twice.
    let home = net.t.dir.join("nodes").join("0");
    std::fs::write(
        home.join(cairn_testnet::NODE_CONFIG_FILE),
        "rpc_requests_per_ip_per_second = 1\nrpc_requests_per_ip_burst = 1000\n",
    )
    .expect("node.toml");
    net.t.kill(0).expect("stop");
    net.t.restart(0).await.expect("restart");
    let c = net.rpc(1).await;
    let module_id = c.module_put(hex::encode(uppercase_module())).await.expect("module_put");
    let key = &net.client_key;
    let offer = |terms: OfferTerms, nonce: Option<u64>, module: Hash| {
        let c = &c;
        async move { client::sign_offer(c, key, module, b"codes".to_vec(), terms, nonce).await.expect("offer") }
    };
    let mut reached = Vec::new();

    let r = code_and_reason(c.job_get(Hash::of(b"nothing")).await);
    reached.push((r, (error::NOT_FOUND, "not_found")));
    let cheap = offer(OfferTerms { fee: Some(0), ..OfferTerms::default() }, None, module_id).await;
    let r = code_and_reason(c.job_submit(cheap).await);
    reached.push((r, (error::INVALID_TX, "fee_below_minimum")));
    let mut forged = offer(OfferTerms::default(), None, module_id).await;
    forged.signature.0[0] ^= 1;
    let r = code_and_reason(c.job_submit(forged).await);
    reached.push((r, (error::BAD_SIGNATURE, "bad_signature")));
    let poor = client::sign_offer(&c, &Keypair::generate(), module_id, b"x".to_vec(), OfferTerms::default(), None)
        .await
        .expect("offer");
    let r = code_and_reason(c.job_submit(poor).await);
    reached.push((r, (error::INSUFFICIENT_BALANCE, "insufficient_balance")));
    let next = c.account_get(key.public()).await.expect("account").next_nonce;
    let far = offer(OfferTerms::default(), Some(next + 1_000), module_id).await;
    let r = code_and_reason(c.job_submit(far).await);
    reached.push((r, (error::BAD_NONCE, "bad_nonce")));
    let r = code_and_reason(c.module_put(hex::encode(b"not wasm")).await);
    reached.push((r, (error::INVALID_MODULE, "invalid_module")));
    // Behind a nonce gap the offer waits unexecuted: accepted, and no receipt yet.
    let waiting = offer(OfferTerms::default(), Some(next + 1), module_id).await;
    let waiting_id = c.job_submit(waiting).await.expect("accepted behind a gap");
    let r = code_and_reason(c.job_proof(waiting_id, None).await);
    reached.push((r, (error::NOT_FINALIZED, "not_finalized")));
    let unknown = offer(OfferTerms::default(), Some(next), Hash::of(b"no such module")).await;
    let r = code_and_reason(c.job_submit(unknown).await);
    reached.push((r, (error::MODULE_UNKNOWN, "module_unknown")));
    let no_blob = OfferTerms { input_blob: Some(Hash::of(b"no such blob")), ..OfferTerms::default() };
    let no_blob = client::sign_offer(&c, key, module_id, Vec::new(), no_blob, Some(next)).await.expect("offer");
    let r = code_and_reason(c.job_submit(no_blob).await);
    reached.push((r, (error::BLOB_UNKNOWN, "blob_unknown")));
    let r = code_and_reason(c.module_put("zz".into()).await);
    reached.push((r, (error::INVALID_PARAMS, "invalid_params")));
    // One rule for hex everywhere: lowercase, no `0x`.
    use jsonrpsee::core::client::ClientT;
    for id in [format!("0x{waiting_id}"), waiting_id.to_string().to_uppercase()] {
        let r = c.request::<serde_json::Value, _>("job_get", jsonrpsee::rpc_params![id.clone()]).await;
        assert_eq!(code_and_reason(r).0, error::INVALID_PARAMS, "{id} refused");
    }
    // Node 0 takes one call a second from an address (after the burst).
    let slow = net.rpc(0).await;
    let mut over = None;
    for _ in 0..2_000 {
        if let Err(ClientError::Call(e)) = slow.chain_head().await {
            over = Some((e.code(), error::reason_of(&e).unwrap_or_default()));
            break;
        }
    }
    reached.push((over.expect("over its rate"), (error::OVERLOADED, "overloaded")));

    for ((code, reason), (want_code, want_reason)) in &reached {
        assert_eq!((*code, reason.as_str()), (*want_code, *want_reason));
    }
    // Every Cairn code was reached.
    for (code, name, _) in error::CAIRN_CODES {
        assert!(reached.iter().any(|(_, (c, _))| *c == code), "{name} ({code}) reached");
    }

    // The library's own codes keep their meaning: an unknown method, a request too large.
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .max_request_size(64 << 20)
        .build(net.t.rpc_url(1))
        .await
        .expect("connect");
    let r = ws.request::<serde_json::Value, _>("no_such_method", jsonrpsee::rpc_params![]).await;
    assert_eq!(code_and_reason(r).0, -32601);
    // Too large to read, a request has no id to answer to: the answer comes back with a null
    // id, here over plain HTTP.
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"module_put","params":["{}"]}}"#, "0".repeat(11 << 20));
    let answer = http_post(net.t.nodes[1].rpc, &body).await;
    assert!(answer.contains("-32007"), "an oversized request: {answer}");
}

/// POSTs `body` to the JSON-RPC server at `addr` over plain HTTP/1.1; returns the answer.
async fn http_post(addr: std::net::SocketAddr, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    // The server may answer and close before reading the whole body.
    let _ = s.write_all(body.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_to_a_job_that_never_comes_ends_with_dropped() {
    let net = start(1).await;
    let c = net.rpc(0).await;
    let mut sub = c.job_subscribe(Hash::of(b"never submitted")).await.expect("subscribe (clients subscribe first)");
    let wait = cairn_node::rpc_api::UNKNOWN_JOB_WAIT + std::time::Duration::from_secs(15);
    let ev = tokio::time::timeout(wait, sub.next())
        .await
        .expect("an event within the wait")
        .expect("not closed silently")
        .expect("an event");
    assert_eq!(ev.stage, cairn_rpc::JobStage::Dropped);
    assert!(ev.reason.as_deref().is_some_and(|r| r.contains("no job with this id")), "{ev:?}");
}
