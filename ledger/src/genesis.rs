//! The genesis file: the chain's first state, its validators and its parameters.
//!
//! Written as JSON (`genesis.json`); its chain id is `sha256(borsh(genesis))`, so every field
//! — including the parameters — is part of the chain's identity.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::types::{FORMAT_VERSION, Validator, ValidatorSet};
use crate::{Error, Hash, Result};

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The account's address.
    pub address: PublicKey,
    /// Its starting balance.
    pub balance: u64,
}

/// A provider registered at genesis, with its standing ask.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenesisProvider {
    /// The provider's address.
    pub address: PublicKey,
    /// Its price per unit of fuel.
    pub price_per_fuel: u64,
    /// Its stake (created at genesis, counted in the total value).
    pub stake: u64,
    /// Jobs it executes at once.
    pub capacity: u32,
    /// Where it runs, or empty for no region (absent in JSON: empty).
    #[serde(default)]
    pub region: String,
}

/// Chain-wide parameters: every node must agree on them (they are in the chain id).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// How far behind the head an offer's `assignment_height` may be.
    pub assignment_window_blocks: u64,
    /// The longest deadline an offer may ask for, counted from its inclusion.
    pub deadline_max_blocks: u64,
    /// The largest input carried inline in an offer.
    pub input_bytes_max: u32,
    /// The largest output carried inline in a result.
    pub output_bytes_max: u32,
    /// The largest fuel limit an offer may ask for.
    pub fuel_limit_max: u64,
    /// The most transactions in one block.
    pub block_txs_max: u32,
    /// The largest encoded block (its transactions and last commit included).
    pub block_bytes_max: u32,
    /// The least stake for a provider to be assigned jobs.
    pub stake_min: u64,
    /// Blocks an unbonded stake waits before returning to the balance.
    pub unbonding_blocks: u64,
    /// The least fee of an account transaction (burned).
    pub tx_fee_min: u64,
    /// Blocks an assigned provider has to deliver before the next-ranked one takes its place.
    pub delivery_blocks: u64,
    /// Share of its stake (basis points) a provider loses to the client when a job it was
    /// assigned expires undelivered.
    pub missed_deadline_penalty_bps: u32,
    /// Blocks after a result's inclusion during which it can be challenged; payment waits.
    pub challenge_window_blocks: u64,
    /// The least bond of a challenge.
    pub challenge_bond_min: u64,
    /// Share of its stake (basis points) a provider whose result is proven wrong loses to the
    /// challenger.
    pub slash_bps: u32,
}

/// The largest `input_bytes_max` a chain may set: an offer with such an input still fits one
/// gossip message on `txs` (WIRE.md, limits).
pub const PARAMS_INPUT_BYTES_LIMIT: u32 = 1 << 20;
/// The largest `output_bytes_max` a chain may set: a result with such an output still fits
/// one gossip message on `results`.
pub const PARAMS_OUTPUT_BYTES_LIMIT: u32 = 1 << 20;
/// The largest `block_bytes_max` a chain may set: such a block with its commit still fits one
/// gossip message on `blocks` and `proposals`.
pub const PARAMS_BLOCK_BYTES_LIMIT: u32 = 9 << 20;

/// Room a block keeps for its header and last commit, below `block_bytes_max`.
pub const BLOCK_OVERHEAD_BYTES: u32 = 64 << 10;

impl ChainParams {
    /// Checks that the parameters are in range: shares in basis points at most 10,000, room
    /// for at least one transaction in a block, a usable fuel limit.
    pub fn validate(&self) -> Result<()> {
        for (name, bps) in
            [("slash_bps", self.slash_bps), ("missed_deadline_penalty_bps", self.missed_deadline_penalty_bps)]
        {
            if bps > 10_000 {
                return Err(Error::Invalid(format!("params.{name} is {bps}: at most 10000 basis points")));
            }
        }
        if (self.output_bytes_max as usize) < crate::REASON_BYTES_MAX {
            return Err(Error::Invalid(format!(
                "params.output_bytes_max must be at least {} bytes: a failed job's output is its reason",
                crate::REASON_BYTES_MAX
            )));
        }
        for (name, value, limit) in [
            ("input_bytes_max", self.input_bytes_max, PARAMS_INPUT_BYTES_LIMIT),
            ("output_bytes_max", self.output_bytes_max, PARAMS_OUTPUT_BYTES_LIMIT),
            ("block_bytes_max", self.block_bytes_max, PARAMS_BLOCK_BYTES_LIMIT),
        ] {
            if value > limit {
                return Err(Error::Invalid(format!(
                    "params.{name} is {value}: at most {limit} bytes, what one gossip message carries"
                )));
            }
        }
        if self.block_bytes_max <= BLOCK_OVERHEAD_BYTES || self.block_txs_max == 0 || self.fuel_limit_max == 0 {
            return Err(Error::Invalid(format!(
                "params: block_bytes_max must exceed {BLOCK_OVERHEAD_BYTES}, block_txs_max and fuel_limit_max must be at least 1"
            )));
        }
        Ok(())
    }
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            assignment_window_blocks: 1_000,
            deadline_max_blocks: 10_000,
            input_bytes_max: 256 << 10,
            output_bytes_max: 64 << 10,
            fuel_limit_max: 10_000_000_000,
            block_txs_max: 5_000,
            block_bytes_max: 8 << 20,
            stake_min: 1_000,
            unbonding_blocks: 100,
            tx_fee_min: 1,
            delivery_blocks: 20,
            missed_deadline_penalty_bps: 100,
            challenge_window_blocks: 10,
            challenge_bond_min: 100,
            slash_bps: 5_000,
        }
    }
}

/// The genesis of a chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// A human name for the chain, e.g. `cairn-local`.
    pub chain_name: String,
    /// When the chain starts, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The validators and their voting power.
    pub validators: Vec<Validator>,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Registered providers.
    pub providers: Vec<GenesisProvider>,
    /// Chain parameters.
    pub params: ChainParams,
}

/// The largest genesis file read.
pub const GENESIS_FILE_BYTES_MAX: u64 = 16 << 20;

impl Genesis {
    /// The chain id: `sha256(borsh(genesis))`.
    pub fn chain_id(&self) -> Hash {
        Hash::of_borsh(self)
    }

    /// The validator set, in canonical order.
    pub fn validator_set(&self) -> Result<ValidatorSet> {
        ValidatorSet::new(self.validators.clone())
    }

    /// Checks the version, the validator set, the parameters' ranges, the providers, and that
    /// no address is listed twice.
    pub fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Version { what: "genesis", version: self.version });
        }
        self.validator_set()?;
        self.params.validate()?;
        for p in &self.providers {
            if p.capacity == 0 {
                return Err(Error::Invalid(format!("genesis provider {} has capacity 0", p.address)));
            }
            crate::placement::check_provider_region(&p.region)
                .map_err(|e| Error::Invalid(format!("genesis provider {}: {e}", p.address)))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.accounts {
            if !seen.insert(a.address) {
                return Err(Error::Invalid(format!("genesis lists account {} twice", a.address)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.providers {
            if !seen.insert(p.address) {
                return Err(Error::Invalid(format!("genesis lists provider {} twice", p.address)));
            }
        }
        Ok(())
    }

    /// Reads and validates a genesis JSON file.
    pub fn load(path: &Path) -> Result<Genesis> {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::Genesis(format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > GENESIS_FILE_BYTES_MAX {
            return Err(Error::Genesis(format!("{} is larger than {GENESIS_FILE_BYTES_MAX} bytes", path.display())));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Genesis(format!("cannot read {}: {e}", path.display())))?;
        let genesis: Genesis =
            serde_json::from_str(&text).map_err(|e| Error::Genesis(format!("{}: {e}", path.display())))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Writes the genesis as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("genesis always serializes");
        std::fs::write(path, text).map_err(|e| Error::Genesis(format!("cannot write {}: {e}", path.display())))
    }
}
