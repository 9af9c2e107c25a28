//! JSON Schemas (`schemars`) of the records' JSON forms, from which the RPC's OpenRPC document
//! is generated (`cairn_rpc::openrpc`). The records derive theirs; this module gives the hex
//! forms their one rule ([`decode_hex`](crate::decode_hex)): ids, keys and signatures are
//! lowercase hex of a fixed length, byte strings lowercase hex of any even length, never with
//! `0x`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{Hash, PublicKey, Signature};

/// The pattern of a byte string in JSON: pairs of lowercase hex digits, no `0x` prefix.
pub const HEX_BYTES_PATTERN: &str = "^([0-9a-f]{2})*$";

/// The schema of `bytes` bytes as lowercase hex.
fn fixed_hex(bytes: usize, description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^[0-9a-f]{{{}}}$", bytes * 2),
        "description": description,
    })
}

impl JsonSchema for Hash {
    fn schema_name() -> Cow<'static, str> {
        "Hash".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        fixed_hex(
            32,
            "A SHA-256 digest (module id, job id, block or transaction hash, Merkle root): 64 lowercase hex digits.",
        )
    }
}

impl JsonSchema for PublicKey {
    fn schema_name() -> Cow<'static, str> {
        "PublicKey".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        fixed_hex(32, "An ed25519 public key, an account's or node's address: 64 lowercase hex digits.")
    }
}

impl JsonSchema for Signature {
    fn schema_name() -> Cow<'static, str> {
        "Signature".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        fixed_hex(64, "An ed25519 signature over `domain || 0x00 || borsh(body)`: 128 lowercase hex digits.")
    }
}

/// The schema of a byte string written as hex (the fields serialized with
/// [`hex_bytes`](crate::hash::hex_bytes)): `#[schemars(with = "HexBytes")]`. It has no values;
/// it only names the schema.
pub struct HexBytes;

impl JsonSchema for HexBytes {
    fn schema_name() -> Cow<'static, str> {
        "HexBytes".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": HEX_BYTES_PATTERN,
            "description": "Bytes as lowercase hex digits, two per byte, without `0x`.",
        })
    }
}
