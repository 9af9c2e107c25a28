//! One client address cannot take the RPC server from the others: past its share of
//! connections it is refused with HTTP 429, past its request rate its calls get `OVERLOADED`,
//! and other addresses are served all along. Clients come from several loopback addresses
//! (all of 127/8 is loopback on Linux) by binding the client socket before connecting.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use cairn_rpc::CairnApiClient;
use cairn_rpc::client;
use cairn_rpc::error;
use cairn_testnet::Spec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Net, TIMEOUT, code_of, start_custom};

const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const THIRD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const FOURTH: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

const CHAIN_HEAD: &str = r#"{"jsonrpc":"2.0","id":1,"method":"chain_head","params":[]}"#;

/// The largest HTTP answer head read.
const HEAD_BYTES_MAX: usize = 64 << 10;

/// One validator whose `node.toml` is `config`.
async fn start_with_config(config: &'static str) -> Net {
    start_custom(1, 0, 0, move |spec: &mut Spec| {
        cairn_testnet::generate(spec).expect("testnet generated");
        let path = spec.dir.join("nodes").join("0").join(cairn_testnet::NODE_CONFIG_FILE);
        std::fs::write(&path, config).expect("write node.toml");
    })
    .await
}

/// A TCP connection to `node` from the loopback address `source`.
async fn connect_from(source: Ipv4Addr, node: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(node).await
}

fn http_post(node: SocketAddr, body: &str, connection: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nhost: {node}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: \
         {connection}\r\n\r\n{body}",
        body.len()
    )
}

/// An HTTP answer: its status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// Posts `body` over plain HTTP from `source` on a connection closed after the answer.
async fn http_call(source: Ipv4Addr, node: SocketAddr, body: &str) -> std::io::Result<Answer> {
    let call = async {
        let mut s = connect_from(source, node).await?;
        s.write_all(http_post(node, body, "close").as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"));
        Ok(Answer { status: status_of(head), body: body.to_string() })
    };
    tokio::time::timeout(TIMEOUT, call).await.unwrap_or_else(|_| panic!("no answer from {node} within {TIMEOUT:?}"))
}

/// A connection from `source` that got one answer (its status is returned) and is kept open,
/// as HTTP keep-alive allows.
async fn http_hold(source: Ipv4Addr, node: SocketAddr) -> std::io::Result<(TcpStream, u16)> {
    let hold = async {
        let mut s = connect_from(source, node).await?;
        s.write_all(http_post(node, CHAIN_HEAD, "keep-alive").as_bytes()).await?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(raw.len() < HEAD_BYTES_MAX, "no end to the answer's head");
            match s.read(&mut buf).await? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => raw.extend_from_slice(&buf[..n]),
            }
        }
        let status = status_of(&String::from_utf8_lossy(&raw));
        Ok((s, status))
    };
    tokio::time::timeout(TIMEOUT, hold).await.unwrap_or_else(|_| panic!("no answer from {node} within {TIMEOUT:?}"))
}

/// Polls `attempt` until it gives `Some`, failing the test after [`TIMEOUT`].
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, net: &Net, mut attempt: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(t) = attempt().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}\n{}", net.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_holding_its_share_of_connections_is_refused_one_more_while_others_are_served() {
    // 4 connections per address, 8 in all.
    let net = start_with_config("rpc_connections_per_ip_max = 4\nrpc_connections_max = 8\n").await;
    let node = net.t.nodes[0].rpc;
    let url = &net.t.rpc_url(0);

    // 127.0.0.1 takes its whole share with WebSockets (once the testnet's own start-up checks,
    // also from 127.0.0.1, have let theirs go).
    let mut websockets = Vec::new();
    while websockets.len() < 4 {
        let ws =
            eventually("a WebSocket from 127.0.0.1", &net, || async move { client::connect(url).await.ok() }).await;
        websockets.push(ws);
    }
    for ws in &websockets {
        ws.chain_head().await.expect("each held WebSocket is served");
    }

    // One more from 127.0.0.1 is refused, over WebSocket and over plain HTTP, saying why.
    assert!(client::connect(url).await.is_err(), "a fifth WebSocket from 127.0.0.1 is refused");
    let refused = http_call(FIRST, node, CHAIN_HEAD).await.expect("refused with an answer");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body.trim(), "too many connections from your address (4); close some and retry");

    // Another address is served.
    let served = http_call(SECOND, node, CHAIN_HEAD).await.expect("answered");
    assert_eq!(served.status, 200, "{served:?}");
    assert!(json(&served)["result"]["height"].is_u64(), "{served:?}");

    // 127.0.0.3 takes its share too (once 127.0.0.2's call has let its connection go): the
    // node is full, and any other address is refused and told it is the node's limit.
    let mut held = Vec::new();
    while held.len() < 4 {
        let s = eventually("a connection from 127.0.0.3", &net, || async move {
            match http_hold(THIRD, node).await {
                Ok((s, 200)) => Some(s),
                Ok((_, status)) => {
                    assert_eq!(status, 429, "only the total may refuse 127.0.0.3 here");
                    None
                }
                Err(_) => None,
            }
        })
        .await;
        held.push(s);
    }
    for source in [SECOND, FOURTH] {
        let refused = http_call(source, node, CHAIN_HEAD).await.expect("refused with an answer");
        assert_eq!(refused.status, 429, "{refused:?}");
        assert_eq!(refused.body.trim(), "the node serves at most 8 connections and all are in use; retry shortly");
    }

    // Closing gives the slots back: to the node's total, and to the address's share.
    drop(held.pop());
    eventually("127.0.0.4 served after a connection closed", &net, || async move {
        http_call(FOURTH, node, CHAIN_HEAD).await.ok().filter(|a| a.status == 200)
    })
    .await;
    drop(websockets.pop());
    let ws =
        eventually(
            "127.0.0.1 connects again after closing one",
            &net,
            || async move { client::connect(url).await.ok() },
        )
        .await;
    ws.chain_head().await.expect("served");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_over_its_request_rate_gets_overloaded_while_others_are_served() {
    // One call a second per address, twenty at once.
    let net = start_with_config("rpc_requests_per_ip_per_second = 1\nrpc_requests_per_ip_burst = 20\n").await;
    let node = net.t.nodes[0].rpc;

    // 127.0.0.1 calls as fast as it can over a WebSocket until it is told to slow down.
    let ws = net.rpc(0).await;
    let mut served = 0;
    let e = loop {
        match ws.chain_head().await {
            Ok(_) => served += 1,
            Err(e) => break e,
        }
        assert!(served <= 1_000, "1,000 calls in a row served at one call a second and twenty at once");
    };
    assert_eq!(code_of(&e), Some(error::OVERLOADED), "{e}");
    let jsonrpsee::core::ClientError::Call(obj) = &e else { unreachable!("code_of checked a call error") };
    assert!(obj.message().contains("slow down and retry in"), "{e}");
    let data: serde_json::Value = serde_json::from_str(obj.data().expect("a retry hint").get()).expect("JSON");
    let retry_after_ms = data["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1_000).contains(&retry_after_ms), "a token comes back every second: {retry_after_ms}");

    // Another address is served over HTTP meanwhile.
    let answer = http_call(SECOND, node, CHAIN_HEAD).await.expect("answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(json(&answer)["result"]["height"].is_u64(), "{answer:?}");

    // Each entry of a batch counts: a batch of 100 from a third address is served up to its
    // bucket, and the rest of the entries get OVERLOADED.
    let batch = format!(
        "[{}]",
        (0..100).map(|i| CHAIN_HEAD.replace(r#""id":1"#, &format!(r#""id":{i}"#))).collect::<Vec<_>>().join(",")
    );
    let answer = http_call(THIRD, node, &batch).await.expect("answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    let entries = json(&answer);
    let entries = entries.as_array().expect("a batch answer");
    assert_eq!(entries.len(), 100);
    let ok = entries.iter().filter(|e| e["result"]["height"].is_u64()).count();
    let overloaded =
        entries.iter().filter(|e| e["error"]["code"].as_i64() == Some(i64::from(error::OVERLOADED))).count();
    assert_eq!(ok + overloaded, 100, "{entries:?}");
    assert!(ok >= 20, "a fresh bucket serves its burst: {ok}");
    assert!(overloaded > 0, "a batch is charged per entry");
}

/// A client WebSocket frame (masked, as a client's must be) carrying `text`.
fn ws_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x5a, 0x17, 0xc3, 0x81];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A WebSocket opened by hand from `source`: its socket, past the server's 101 answer.
async fn raw_websocket(source: Ipv4Addr, node: SocketAddr) -> TcpStream {
    let mut s = connect_from(source, node).await.expect("connect");
    let upgrade = format!(
        "GET / HTTP/1.1\r\nhost: {node}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: \
         dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).await.expect("upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < HEAD_BYTES_MAX, "no end to the answer's head");
        s.read_exact(&mut byte).await.expect("the upgrade's answer");
        head.push(byte[0]);
    }
    assert_eq!(status_of(&String::from_utf8_lossy(&head)), 101, "{}", String::from_utf8_lossy(&head));
    s
}

/// What a client that never reads may make the server take from it, at most, in this test:
/// the kernel's buffers on both sides plus the answers the server keeps for the connection
/// (a few tens of MiB), well below what it sends.
const NEVER_READ_SENT_MAX: usize = 64 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_client_that_never_reads_is_not_read_either_while_others_are_served() {
    let net = start_with_config("rpc_requests_per_ip_burst = 10000\n").await;
    let node = net.t.nodes[0].rpc;
    // Calls whose answers are large (a call's id comes back in its answer), sent without ever
    // reading an answer.
    let mut ws = raw_websocket(FIRST, node).await;
    let id = "x".repeat(60_000);
    let frame = ws_text_frame(&format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"chain_head","params":[]}}"#));
    let mut sent = 0;
    let stalled = loop {
        let at = sent % frame.len();
        match tokio::time::timeout(std::time::Duration::from_secs(2), ws.write(&frame[at..])).await {
            Err(_) => break true,
            Ok(written) => sent += written.expect("the server keeps the connection while it is read"),
        }
        if sent > NEVER_READ_SENT_MAX {
            break false;
        }
    };
    assert!(stalled, "the server kept reading {sent} bytes of calls whose answers were never taken");

    // Other clients are served meanwhile.
    let served = http_call(SECOND, node, CHAIN_HEAD).await.expect("answered");
    assert_eq!(served.status, 200, "{served:?}");

    // Once the client takes its answers, the connection is read again: every call is answered.
    let calls = sent / frame.len();
    // The rest of the call the client was writing when the server stopped reading, and one more.
    let mut more = frame[sent % frame.len()..].to_vec();
    more.extend_from_slice(&frame);
    let reading = tokio::spawn(async move {
        let (mut reader, mut writer) = ws.into_split();
        let more = tokio::spawn(async move { writer.write_all(&more).await.map(|()| writer) });
        let mut answers = 0;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        // Each answer carries the 60,000-byte id: count answers by their bytes.
        while answers <= calls {
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection after {answers} answers");
            got += n;
            answers = got / 60_000;
        }
        more.await.expect("the writer").expect("one more call is taken once the answers are read");
    });
    tokio::time::timeout(TIMEOUT, reading).await.expect("answers read in time").expect("the reader");
}
