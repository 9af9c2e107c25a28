//! The API's OpenRPC document ([OpenRPC 1.3](https://spec.open-rpc.org)), which the node
//! answers to `rpc.discover`.
//!
//! It is generated, not kept by hand: the `cairn_api!` declaration in `lib.rs` that defines the
//! [`CairnApi`](crate::CairnApi) trait also records, from the same items, every method's name,
//! doc comment, parameters (names, types, docs), result type, subscription and errors
//! ([`Method`]); the JSON Schemas come from the `schemars` derives of the wire types
//! ([`crate::types`] and `cairn-ledger`'s records, with their hex rules from
//! `cairn_ledger::schema`). A method added to the trait is in the document, with its types.
//!
//! The document holds:
//! - `methods`: every method the node serves, in the trait's order — `rpc.discover` itself,
//!   each call, and each subscription as two methods, its subscribe (with an `x-subscription`
//!   extension naming its notification and the notification's params) and its unsubscribe;
//! - `components.schemas`: the schemas of the records, referenced as
//!   `#/components/schemas/<name>` (draft-07 JSON Schema, as OpenRPC uses);
//! - `components.errors`: Cairn's error codes ([`crate::error::CAIRN_CODES`]) and the two
//!   JSON-RPC codes Cairn sends with a `data.reason`, keyed by that reason; each method lists
//!   those it can answer.
//!
//! Tests check it against the OpenRPC meta-schema (vendored in `rpc/schemas/`), against the
//! methods the node's RPC module serves (`node/src/rpc_api.rs`), against `docs/RPC.md`, and
//! pin it in `docs/openrpc.json`.

use std::borrow::Cow;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error;

/// The version of the OpenRPC specification the document follows.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// The schema of `rpc.discover`'s result, as the OpenRPC specification gives it.
pub const META_SCHEMA_URL: &str = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json";

/// The name of the discovery method OpenRPC defines.
pub const DISCOVER_METHOD: &str = "rpc.discover";

/// Where the components' schemas are, as a JSON pointer into the document.
const SCHEMAS_POINTER: &str = "/components/schemas";

/// The errors every method can answer: malformed parameters, a failure of the node, and a
/// caller over its request rate (the RPC server charges every call).
const COMMON_ERRORS: [i32; 3] = [error::INVALID_PARAMS, error::INTERNAL, error::OVERLOADED];

/// The JSON-RPC codes (of [`error::LIBRARY_CODES`]) that Cairn itself answers with a
/// `data.reason`; the other library codes are the server library's own.
const LIBRARY_CODES_SENT: [i32; 2] = [error::INVALID_PARAMS, error::INTERNAL];

/// The OpenRPC document, as `rpc.discover` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpenRpcDocument(pub Value);

impl JsonSchema for OpenRpcDocument {
    fn schema_name() -> Cow<'static, str> {
        "OpenRpcDocument".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "$ref": META_SCHEMA_URL })
    }
}

/// A subscription's id: an integer with the server's default id provider; `*_unsubscribe`
/// takes a string too.
struct SubscriptionId;

impl JsonSchema for SubscriptionId {
    fn schema_name() -> Cow<'static, str> {
        "SubscriptionId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A subscription's id, as its subscribe call returned it (an integer).",
            "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }],
        })
    }
}

/// The schema of a type, given the generator that collects the referenced components.
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One method of the API, as `cairn_api!` records it from the trait's item.
pub struct Method {
    /// The method's name on the wire.
    pub name: &'static str,
    /// Its doc comment, line by line.
    pub doc: &'static [&'static str],
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// The codes it can answer besides [`COMMON_ERRORS`].
    pub errors: &'static [i32],
    /// A call or a subscription.
    pub kind: Kind,
}

/// What a method is.
pub enum Kind {
    /// A call: one result.
    Call {
        /// The result's schema.
        result: SchemaFn,
        /// The result type's schema name.
        result_name: fn() -> Cow<'static, str>,
    },
    /// A subscription: its subscribe call answers an id, then notifications follow.
    Subscription {
        /// The notifications' method name.
        notification: &'static str,
        /// The method that ends it.
        unsubscribe: &'static str,
        /// The schema of a notification's item.
        item: SchemaFn,
    },
}

/// A parameter of a method.
pub struct Param {
    /// Its name (by-name calls use it as the key).
    pub name: &'static str,
    /// Its doc comment, line by line.
    pub doc: &'static [&'static str],
    /// Its schema.
    pub schema: SchemaFn,
    /// Whether a call must give it: false for an `Option`, which may be left out or `null`.
    pub required: bool,
}

impl Param {
    /// A parameter of Rust type `T`, described by the schema of `S` (`T` itself, unless the
    /// declaration names a schema for it, as for hex strings).
    pub fn new<T: DeserializeOwned, S: JsonSchema>(name: &'static str, doc: &'static [&'static str]) -> Param {
        Param {
            name,
            doc,
            schema: SchemaGenerator::subschema_for::<S>,
            // The server parses a missing parameter as `null`: what accepts it is optional.
            required: serde_json::from_value::<T>(Value::Null).is_err(),
        }
    }
}

impl Kind {
    /// A call answering `R`.
    pub fn call<R: JsonSchema>() -> Kind {
        Kind::Call { result: SchemaGenerator::subschema_for::<R>, result_name: R::schema_name }
    }

    /// A subscription whose notifications carry `I`.
    pub fn subscription<I: JsonSchema>(notification: &'static str, unsubscribe: &'static str) -> Kind {
        Kind::Subscription { notification, unsubscribe, item: SchemaGenerator::subschema_for::<I> }
    }
}

/// The document (built once; every `rpc.discover` answers the same).
pub fn document() -> &'static OpenRpcDocument {
    static DOCUMENT: OnceLock<OpenRpcDocument> = OnceLock::new();
    DOCUMENT.get_or_init(|| OpenRpcDocument(build(&crate::api_methods())))
}

/// The names of the methods the document lists, in its order.
pub fn method_names(document: &Value) -> Vec<&str> {
    document["methods"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect()
}

/// Builds the document of `methods`.
fn build(methods: &[Method]) -> Value {
    let mut generator = SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = SCHEMAS_POINTER.into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut listed = Vec::new();
    for m in methods {
        let params: Vec<Value> = m.params.iter().map(|p| param(&mut generator, p)).collect();
        let errors = method_errors(m.errors);
        let mut method = json!({
            "name": m.name,
            "description": markdown(m.doc),
            "paramStructure": "either",
            "params": params,
            "errors": errors,
        });
        match &m.kind {
            Kind::Call { result, result_name } => {
                method["result"] = json!({ "name": result_name(), "schema": schema(&mut generator, *result) });
                listed.push(method);
            }
            Kind::Subscription { notification, unsubscribe, item } => {
                let id = schema(&mut generator, SchemaGenerator::subschema_for::<SubscriptionId>);
                method["result"] = json!({
                    "name": "subscription",
                    "description": format!(
                        "The subscription's id: each `{notification}` notification carries it; `{unsubscribe}` ends it."
                    ),
                    "schema": id,
                });
                method["x-subscription"] = json!({
                    "notification": notification,
                    "unsubscribe": unsubscribe,
                    "description": format!(
                        "Notifications are `{{\"jsonrpc\": \"2.0\", \"method\": \"{notification}\", \"params\": \
                         {{\"subscription\": <id>, \"result\": <item>}}}}`, sent over the connection that subscribed \
                         (WebSocket)."
                    ),
                    "params": [
                        { "name": "subscription", "required": true, "schema": id },
                        { "name": "result", "required": true, "schema": schema(&mut generator, *item) },
                    ],
                });
                listed.push(method);
                listed.push(json!({
                    "name": unsubscribe,
                    "description": format!(
                        "Ends a `{}` subscription: no `{notification}` notification follows. Answers whether the \
                         subscription was active on this connection.",
                        m.name
                    ),
                    // The server library reads the id by position only.
                    "paramStructure": "by-position",
                    "params": [{ "name": "subscription", "required": true, "schema": id }],
                    "result": { "name": "unsubscribed", "schema": { "type": "boolean" } },
                    "errors": method_errors(&[]),
                }));
            }
        }
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "Cairn node JSON-RPC API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON-RPC API of a Cairn node: modules, jobs and their proofs, accounts, blocks and \
                state proofs. Bytes are lowercase hex without `0x`; records have exactly their documented fields.",
            "license": { "name": env!("CARGO_PKG_LICENSE") },
        },
        "externalDocs": {
            "description": "docs/RPC.md: the reference, with the limits and every error's meaning",
            "url": format!("{}/blob/main/docs/RPC.md", env!("CARGO_PKG_REPOSITORY")),
        },
        "servers": [{
            "name": "node",
            "url": "http://127.0.0.1:9944",
            "summary": "A node's default address: HTTP and WebSocket on one port (`--rpc` to change).",
        }],
        "methods": listed,
        "components": { "schemas": schemas, "errors": component_errors() },
    })
}

/// A parameter's content descriptor.
fn param(generator: &mut SchemaGenerator, p: &Param) -> Value {
    let mut d = json!({ "name": p.name, "required": p.required, "schema": schema(generator, p.schema) });
    if !p.doc.is_empty() {
        d["description"] = markdown(p.doc).into();
    }
    d
}

/// The schema `f` gives, with the draft-07 rewrites applied (those of the components are
/// applied when they are taken).
fn schema(generator: &mut SchemaGenerator, f: SchemaFn) -> Value {
    let mut s = f(generator);
    for t in generator.transforms_mut() {
        t.transform(&mut s);
    }
    s.to_value()
}

/// The references to a method's errors: the common ones, then its own.
fn method_errors(own: &[i32]) -> Vec<Value> {
    let mut codes: Vec<i32> = Vec::new();
    for code in own.iter().chain(COMMON_ERRORS.iter()) {
        if !codes.contains(code) {
            codes.push(*code);
        }
    }
    codes
        .into_iter()
        .map(|code| {
            let name = error::code_name(code).expect("every code a method lists is in error.rs's tables");
            json!({ "$ref": format!("#/components/errors/{name}") })
        })
        .collect()
}

/// Every error a method may list, keyed by its `data.reason`.
fn component_errors() -> Value {
    let listed =
        error::CAIRN_CODES.iter().chain(error::LIBRARY_CODES.iter().filter(|(c, _, _)| LIBRARY_CODES_SENT.contains(c)));
    let mut errors = serde_json::Map::new();
    for (code, name, meaning) in listed {
        errors.insert((*name).to_owned(), json!({ "code": code, "message": meaning, "data": { "reason": name } }));
    }
    Value::Object(errors)
}

/// A doc comment as Markdown: its lines joined into paragraphs, and rustdoc's links to other
/// items of the trait (`[text](Self::item)`) as their text.
fn markdown(lines: &[&str]) -> String {
    let mut text = String::new();
    for line in lines.iter().map(|l| l.trim()) {
        if line.is_empty() {
            text.push_str("\n\n");
        } else {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push(' ');
            }
            text.push_str(line);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](Self::") {
        let (before, after) = rest.split_at(at);
        let (Some(open), Some(close)) = (before.rfind('['), after.find(')')) else { break };
        out.push_str(&before[..open]);
        out.push_str(&before[open + 1..]);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_ledger::{Action, Hash, JobStatus, PublicKey, Signature, SignedTx, Transaction, Tx};
    use jsonschema::{Draft, Registry, Validator};

    use super::*;
    use crate::types::*;

    /// The OpenRPC 1.3 meta-schema and the JSON Schema meta-schema it references (see
    /// `rpc/schemas/README.md`).
    const OPENRPC_META_SCHEMA: &str = include_str!("../schemas/openrpc-meta-schema.json");
    const JSON_SCHEMA_META_SCHEMA: &str = include_str!("../schemas/json-schema-tools-meta-schema.json");
    /// Where the tests register the document, to resolve `#/components/schemas/…` in it.
    const DOCUMENT_URI: &str = "https://cairn.invalid/openrpc.json";
    const RPC_MD: &str = include_str!("../../docs/RPC.md");
    const OPENRPC_JSON: &str = include_str!("../../docs/openrpc.json");
    const OPENRPC_JSON_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openrpc.json");

    fn vendored(text: &str) -> Value {
        serde_json::from_str(text).expect("a vendored meta-schema is JSON")
    }

    /// Both meta-schemas (under their `$id`s, and the OpenRPC one also under the URL
    /// `rpc.discover`'s result names) and `document`, all draft-07; nothing is fetched.
    fn registry(document: &Value) -> Registry<'static> {
        let openrpc = vendored(OPENRPC_META_SCHEMA);
        let resources = [
            ("https://meta.json-schema.tools", vendored(JSON_SCHEMA_META_SCHEMA)),
            ("https://meta.open-rpc.org/", openrpc.clone()),
            (META_SCHEMA_URL, openrpc),
            (DOCUMENT_URI, document.clone()),
        ];
        let mut builder = Registry::new().draft(Draft::Draft7).retrieve_known_draft_meta_schemas(false);
        for (uri, contents) in resources {
            builder = builder.add(uri, Draft::Draft7.create_resource(contents)).expect("a valid URI");
        }
        builder.prepare().expect("the vendored schemas resolve offline")
    }

    fn validator(registry: &Registry<'_>, schema: &Value) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(registry)
            .offline()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("the schema {schema} compiles: {e}"))
    }

    /// Every way `instance` breaks `schema`, one line each.
    fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
        validator.iter_errors(instance).map(|e| format!("at {}: {e}", e.instance_path())).collect()
    }

    /// A validator of OpenRPC documents.
    fn meta_validator(registry: &Registry<'_>) -> Validator {
        validator(registry, &json!({ "$ref": META_SCHEMA_URL }))
    }

    #[test]
    fn the_document_is_a_valid_openrpc_document() {
        let doc = &document().0;
        let registry = registry(doc);
        let meta = meta_validator(&registry);
        let wrong = errors(&meta, doc);
        assert!(wrong.is_empty(), "the OpenRPC document breaks the meta-schema:\n{}", wrong.join("\n"));

        // The validator is not vacuous: it sees a broken document, and a broken JSON Schema in it.
        let mut broken = doc.clone();
        broken["openrpc"] = json!("2.0.0");
        assert!(!errors(&meta, &broken).is_empty(), "an unknown OpenRPC version is refused");
        let mut broken = doc.clone();
        broken["methods"][1]["params"][0]["schema"] = json!({ "type": 5 });
        assert!(!errors(&meta, &broken).is_empty(), "a malformed parameter schema is refused");
        let mut broken = doc.clone();
        broken["methods"][1]["result"]["extra"] = json!(true);
        assert!(!errors(&meta, &broken).is_empty(), "an unknown field of a content descriptor is refused");
    }

    #[test]
    fn every_method_is_listed_once_with_its_errors_and_references_resolve() {
        let doc = &document().0;
        let names = method_names(doc);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "method names are unique: {names:?}");
        assert_eq!(names.first(), Some(&DISCOVER_METHOD), "rpc.discover describes itself first");
        let methods = doc["methods"].as_array().expect("methods");
        let subscriptions: Vec<_> = methods.iter().filter(|m| m.get("x-subscription").is_some()).collect();
        let subscribed: Vec<_> = subscriptions.iter().map(|m| m["name"].as_str().expect("a name")).collect();
        assert_eq!(subscribed, ["job_subscribe", "chain_subscribeHeads"], "the subscriptions");
        for sub in subscriptions {
            let at = names.iter().position(|n| *n == sub["name"]).expect("listed");
            assert_eq!(json!(names.get(at + 1)), sub["x-subscription"]["unsubscribe"], "its unsubscribe follows it");
        }
        // Every `$ref` into the document points at something in it.
        let text = doc.to_string();
        let mut refs = 0;
        for piece in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = format!("/{}", &piece[..piece.find('"').expect("a closed string")]);
            assert!(doc.pointer(&pointer).is_some(), "{pointer} is in the document");
            refs += 1;
        }
        assert!(refs > 50, "the methods refer to shared schemas and errors ({refs})");
        // Each Cairn code a method answers is in the error table of error.rs, with its reason.
        for (code, name, _) in error::CAIRN_CODES {
            assert_eq!(doc["components"]["errors"][name]["code"], json!(code), "{name}");
        }
    }

    /// The schema of a component, to validate values with.
    fn component(name: &str) -> Value {
        json!({ "$ref": format!("{DOCUMENT_URI}#/components/schemas/{name}") })
    }

    #[test]
    fn the_records_json_forms_fit_their_schemas() {
        let doc = &document().0;
        let registry = registry(doc);
        let mut wrong = Vec::new();
        let mut check = |name: &str, what: &str, value: &Value| {
            for e in errors(&validator(&registry, &component(name)), value) {
                wrong.push(format!("{what} ({name}) {e}"));
            }
        };
        // The test vectors of docs/fixtures, as the RPC sends and takes them.
        let fixtures: [(&str, &str, &str); 7] = [
            ("SignedOffer", "job-offer.json", include_str!("../../docs/fixtures/job-offer.json")),
            ("ReceiptProof", "receipt-proof.json", include_str!("../../docs/fixtures/receipt-proof.json")),
            ("SignedOffer", "linked/offer.json", include_str!("../../docs/fixtures/linked/offer.json")),
            ("Block", "linked/block.json", include_str!("../../docs/fixtures/linked/block.json")),
            ("Commit", "linked/commit.json", include_str!("../../docs/fixtures/linked/commit.json")),
            (
                "ReceiptProof",
                "linked/receipt-proof.json",
                include_str!("../../docs/fixtures/linked/receipt-proof.json"),
            ),
            ("StateProof", "linked/state-proof.json", include_str!("../../docs/fixtures/linked/state-proof.json")),
        ];
        for (name, file, text) in fixtures {
            check(name, file, &serde_json::from_str(text).expect("a fixture is JSON"));
        }
        // Every other record, as serde writes it.
        let (hash, key) = (Hash::of(b"x"), PublicKey([7; 32]));
        let result = ResultInfo {
            provider: key,
            status: JobStatus::Trap,
            fuel_used: 9,
            output_hash: hash,
            output: b"trap".to_vec(),
            output_in_blob: false,
            reason: Some("trap".into()),
        };
        let values: Vec<(&str, Value)> = vec![
            (
                "JobEvent",
                json!(JobEvent { job_id: hash, stage: JobStage::Accepted, result: None, height: None, reason: None }),
            ),
            (
                "JobEvent",
                json!(JobEvent {
                    job_id: hash,
                    stage: JobStage::Finalized,
                    result: Some(result.clone()),
                    height: Some(3),
                    reason: Some("r".into())
                }),
            ),
            (
                "JobInfo",
                json!(JobInfo {
                    job_id: hash,
                    stage: JobStage::Executed,
                    client: key,
                    module_id: hash,
                    fuel_limit: 1,
                    max_price: 2,
                    assigned: vec![key, key],
                    result: Some(result),
                    offer_height: Some(1),
                    receipt_height: None,
                    paid: Some(u64::MAX),
                    pending: Some(PendingOffer { nonce: 1, fee: 2, includable: false }),
                    reason: None,
                    waiting: Some(JobWaiting {
                        reason: WaitingReason::WaitingForNonce,
                        message: "nonce 0 has not reached this node".into(),
                    }),
                }),
            ),
            (
                "JobEstimate",
                json!(JobEstimate {
                    job_id: hash,
                    height: 3,
                    status: JobStatus::Trap,
                    fuel_used: 9,
                    fuel_limit: 10,
                    output_size_bytes: 4,
                    reason: Some("trap".into()),
                    escrow: 20,
                    fee: 1,
                    providers: vec![EstimateProvider { address: key, price_per_fuel: 2 }],
                    cost: 18,
                    refund: 2,
                    admissible: false,
                    problems: vec![EstimateProblem { reason: "bad_nonce".into(), message: "nonce 3 is wrong".into() }],
                }),
            ),
            ("HeadInfo", json!(HeadInfo { height: 0, hash: Hash::ZERO, state_root: hash, time_ms: 1 })),
            ("AccountInfo", json!(AccountInfo { address: key, balance: 1, nonce: 2, next_nonce: 3 })),
            (
                "NodeInfo",
                json!(NodeInfo {
                    version: "0.1.0".into(),
                    chain_id: hash,
                    chain_name: "test".into(),
                    address: key,
                    peer_id: "12D3Koo".into(),
                    listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                    validator: true,
                    provider: false,
                    peers: 3,
                    height: 4,
                    blocks_executed: 5,
                    tx_fee_min: 1,
                }),
            ),
            (
                "ProviderInfo",
                json!(ProviderInfo {
                    address: key,
                    price_per_fuel: 1,
                    stake: 2,
                    capacity: 3,
                    active_jobs: 0,
                    unbonding: 0,
                    eligible: true,
                    jobs_done: 4,
                    slashes: 0,
                    missed: 1,
                    region: "eu-west".into()
                }),
            ),
            (
                "EvidenceInfo",
                json!(EvidenceInfo {
                    offender: key,
                    height: 1,
                    round: 0,
                    kind: EvidenceKind::ConflictingPrecommits,
                    hash
                }),
            ),
            ("Transaction", json!(Transaction::Resolve { job_id: hash })),
        ];
        for (name, value) in &values {
            check(name, &format!("{value}"), value);
        }
        let actions = [
            Action::Transfer { to: key, amount: 1 },
            Action::RegisterProvider { stake: 1, price_per_fuel: 2, capacity: 3, region: String::new() },
            Action::UpdatePrice { price_per_fuel: 4 },
            Action::Unbond { amount: 5 },
            Action::Challenge { job_id: hash, bond: 6 },
        ];
        for action in actions {
            let tx = Tx { version: 1, chain_id: hash, sender: key, nonce: 0, fee: 1, action };
            let signed = SignedTx { tx, signature: Signature([3; 64]) };
            check("SignedTx", "a signed transaction", &json!(signed));
            check("Transaction", "an account transaction", &json!(Transaction::Account(signed)));
        }
        assert!(wrong.is_empty(), "JSON that serde writes breaks its schema:\n{}", wrong.join("\n"));

        // And what the node refuses, the schemas refuse: uppercase hex, `0x`, unknown fields.
        let offer: Value = serde_json::from_str(include_str!("../../docs/fixtures/job-offer.json")).expect("JSON");
        let offers = validator(&registry, &component("SignedOffer"));
        let mut bad = Vec::new();
        let mut upper = offer.clone();
        upper["offer"]["module_id"] = json!(offer["offer"]["module_id"].as_str().expect("hex").to_uppercase());
        bad.push(("uppercase hex", upper));
        let mut prefixed = offer.clone();
        prefixed["offer"]["input"] = json!(format!("0x{}", offer["offer"]["input"].as_str().expect("hex")));
        bad.push(("0x prefix", prefixed));
        let mut odd = offer.clone();
        odd["offer"]["input"] = json!("abc");
        bad.push(("odd hex", odd));
        let mut unknown = offer.clone();
        unknown["offer"]["tip"] = json!(1);
        bad.push(("unknown field", unknown));
        let mut missing = offer.clone();
        missing.as_object_mut().expect("object").remove("signature");
        bad.push(("missing field", missing));
        for (what, value) in bad {
            assert!(!offers.is_valid(&value), "the schema refuses an offer with {what}");
            assert!(serde_json::from_value::<cairn_ledger::SignedOffer>(value).is_err(), "serde refuses {what} too");
        }
    }

    /// The method table of RPC.md: each row's method and its params (`name`, or `name?` for an
    /// optional one: the leading backticked names of the params cell, before any explanation).
    fn rpc_md_methods() -> BTreeMap<String, Vec<(String, bool)>> {
        let table = RPC_MD.split("\n| method | params | result |\n").nth(1).expect("RPC.md has its method table");
        let mut methods = BTreeMap::new();
        for row in table.lines().skip(1).take_while(|l| l.starts_with('|')) {
            let mut cells = row.trim_start_matches("| ").splitn(3, " | ");
            let (method, params) = (cells.next().expect("a method cell"), cells.next().expect("a params cell"));
            let method = method.trim_matches('`').to_owned();
            let mut listed = Vec::new();
            let mut rest = params;
            while let Some(after) = rest.strip_prefix('`') {
                let end = after.find('`').expect("a closed backtick");
                let name = &after[..end];
                listed.push(match name.strip_suffix('?') {
                    Some(optional) => (optional.to_owned(), false),
                    None => (name.to_owned(), true),
                });
                rest = after[end + 1..].strip_prefix(", ").unwrap_or("");
            }
            assert!(methods.insert(method.clone(), listed).is_none(), "RPC.md lists {method} once");
        }
        methods
    }

    #[test]
    fn docs_rpc_md_lists_every_method_with_its_params() {
        let doc = &document().0;
        let documented = rpc_md_methods();
        let mut wrong = Vec::new();
        for m in doc["methods"].as_array().expect("methods") {
            let name = m["name"].as_str().expect("a name");
            let params: Vec<(String, bool)> = m["params"]
                .as_array()
                .expect("params")
                .iter()
                .map(|p| (p["name"].as_str().expect("a name").to_owned(), p["required"] == json!(true)))
                .collect();
            match documented.get(name) {
                None => wrong.push(format!("{name} is served but not in RPC.md's table")),
                Some(listed) if *listed != params => {
                    wrong.push(format!("{name}: RPC.md lists params {listed:?}, the API has {params:?}"))
                }
                Some(_) => {}
            }
        }
        let served = method_names(doc);
        for name in documented.keys().filter(|n| !served.contains(&n.as_str())) {
            wrong.push(format!("RPC.md lists {name}, which the API does not have"));
        }
        assert!(wrong.is_empty(), "docs/RPC.md and the API differ:\n{}", wrong.join("\n"));
        assert!(RPC_MD.contains("`rpc.discover`"), "RPC.md describes rpc.discover");
    }

    #[test]
    fn docs_openrpc_json_is_the_document() {
        let pinned: Value = serde_json::from_str(OPENRPC_JSON).expect("docs/openrpc.json is JSON");
        assert!(
            pinned == document().0,
            "docs/openrpc.json is stale; regenerate it with `cargo test -p cairn-rpc -- --ignored write_docs_openrpc_json` \
             and review the diff"
        );
    }

    /// Writes `docs/openrpc.json` (run deliberately when the API changes, then review the diff).
    #[test]
    #[ignore = "writes docs/openrpc.json; run by hand when the API changes on purpose"]
    fn write_docs_openrpc_json() {
        let text = serde_json::to_string_pretty(&document().0).expect("the document serializes");
        std::fs::write(OPENRPC_JSON_PATH, text + "\n").expect("write docs/openrpc.json");
    }

    #[test]
    fn doc_comments_become_markdown() {
        assert_eq!(
            markdown(&[" One", " line.", "", " Two: [`job_proofs`](Self::job_proofs)."]),
            "One line.\n\nTwo: `job_proofs`."
        );
        let required = |p: Param| p.required;
        assert!(required(Param::new::<Hash, Hash>("h", &[])));
        assert!(!required(Param::new::<Option<u64>, Option<u64>>("h", &[])));
    }
}
