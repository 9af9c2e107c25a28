//! The block explorer, served on the RPC port under `/explorer/`: three static files built
//! from `clients/explorer` (its `npm run build` writes them to `node/explorer/`, where they are
//! committed) and embedded in the binary, so a node serves its explorer with no build step or
//! file at run time. The page talks JSON-RPC over a WebSocket to the same port and verifies
//! receipt proofs in the browser.
//!
//! Answered before the JSON-RPC server, like `/health`: `GET /explorer` redirects to
//! `/explorer/`; the files carry an `ETag` (a revalidated copy costs a 304) and a content
//! security policy that lets the page load scripts and styles only from the node and connect
//! only to it.

use std::sync::LazyLock;

use jsonrpsee::server::{HttpBody, HttpResponse};
use sha2::{Digest, Sha256};

/// Where the explorer lives on the RPC port.
pub const PREFIX: &str = "/explorer";

/// The policy the explorer's pages are served with: its own scripts and styles only, and
/// connections to the node that served it (its WebSocket included).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// Its path under [`PREFIX`].
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The explorer's files, as built in `node/explorer/`.
pub const ASSETS: [Asset; 3] = [
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../explorer/index.html"),
    },
    Asset {
        path: "/explorer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../explorer/explorer.js"),
    },
    Asset {
        path: "/explorer.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../explorer/explorer.css"),
    },
];

/// Each asset's entity tag: a prefix of its SHA-256, quoted, in [`ASSETS`] order.
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12]))).collect());

/// The answer to `GET path`, if the path is the explorer's (`None`: not ours, the JSON-RPC
/// server's). `if_none_match` is the request's `If-None-Match` header.
pub fn answer(path: &str, if_none_match: Option<&[u8]>) -> Option<HttpResponse> {
    let rest = path.strip_prefix(PREFIX)?;
    let file = match rest {
        "" => return Some(redirect(&format!("{PREFIX}/"))),
        "/" => "/index.html",
        other if other.starts_with('/') => other,
        // `/explorerfoo` is not ours.
        _ => return None,
    };
    let Some(index) = ASSETS.iter().position(|a| a.path == file) else {
        return Some(plain(http::StatusCode::NOT_FOUND, "no such file in the explorer"));
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let builder = http::Response::builder()
        .header(http::header::ETAG, etag.as_str())
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(http::header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(http::header::REFERRER_POLICY, "no-referrer");
    let response = if if_none_match.is_some_and(|tags| matches_etag(tags, etag)) {
        builder.status(http::StatusCode::NOT_MODIFIED).body(HttpBody::empty())
    } else {
        builder
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, asset.content_type)
            .body(HttpBody::from(asset.body.to_vec()))
    };
    Some(response.expect("a valid response"))
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn matches_etag(header: &[u8], etag: &str) -> bool {
    let Ok(header) = std::str::from_utf8(header) else { return false };
    header.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn redirect(to: &str) -> HttpResponse {
    http::Response::builder()
        .status(http::StatusCode::PERMANENT_REDIRECT)
        .header(http::header::LOCATION, to)
        .body(HttpBody::empty())
        .expect("a valid response")
}

fn plain(status: http::StatusCode, text: &'static str) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(HttpBody::from(text))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_each_file_redirects_the_bare_prefix_and_leaves_other_paths_alone() {
        assert!(answer("/", None).is_none());
        assert!(answer("/health", None).is_none());
        assert!(answer("/explorerx", None).is_none());
        let bare = answer("/explorer", None).expect("ours");
        assert_eq!(bare.status(), http::StatusCode::PERMANENT_REDIRECT);
        assert_eq!(bare.headers()[http::header::LOCATION], "/explorer/");
        let index = answer("/explorer/", None).expect("ours");
        assert_eq!(index.status(), http::StatusCode::OK);
        assert_eq!(index.headers()[http::header::CONTENT_TYPE], "text/html; charset=utf-8");
        for asset in &ASSETS {
            let r = answer(&format!("/explorer{}", asset.path), None).expect("ours");
            assert_eq!(r.status(), http::StatusCode::OK, "{}", asset.path);
            assert_eq!(r.headers()[http::header::CONTENT_TYPE], asset.content_type);
            assert!(!asset.body.is_empty(), "{} is built", asset.path);
        }
        assert_eq!(answer("/explorer/../Cargo.toml", None).expect("ours").status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_known_etag_gets_not_modified_and_a_changed_one_the_file() {
        let first = answer("/explorer/explorer.js", None).expect("ours");
        let etag = first.headers()[http::header::ETAG].as_bytes().to_vec();
        let again = answer("/explorer/explorer.js", Some(&etag)).expect("ours");
        assert_eq!(again.status(), http::StatusCode::NOT_MODIFIED);
        let weak = [b"W/".as_slice(), &etag].concat();
        assert_eq!(
            answer("/explorer/explorer.js", Some(&weak)).expect("ours").status(),
            http::StatusCode::NOT_MODIFIED
        );
        let other = answer("/explorer/explorer.js", Some(b"\"0123\"")).expect("ours");
        assert_eq!(other.status(), http::StatusCode::OK);
    }

    /// The page's script and its style sheet are the ones next to it: relative URLs, so the
    /// explorer works under the prefix and behind a proxy that serves it elsewhere.
    #[test]
    fn the_index_loads_the_embedded_script_and_style_sheet() {
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        assert!(index.contains("./explorer.js"), "the index loads ./explorer.js");
        assert!(index.contains("./explorer.css"), "the index loads ./explorer.css");
    }
}
