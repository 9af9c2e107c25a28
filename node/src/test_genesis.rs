//! Test only: the genesis of a small market, as the node's unit tests build it.

use cairn_ledger::{
    ChainParams, FORMAT_VERSION, Genesis, GenesisAccount, GenesisProvider, Hash, JobOffer, Keypair, Placement,
    PublicKey, Validator,
};

/// A provider of [`market`]: its address, price per unit of fuel and capacity.
pub(crate) type Offering = (PublicKey, u64, u32);

/// Chain `name` with one validator, `client` funded with `balance`, and `providers` (each
/// staking 10,000, in no region), the default parameters.
pub(crate) fn market(name: &str, client: &Keypair, balance: u64, providers: &[Offering]) -> Genesis {
    Genesis {
        version: FORMAT_VERSION,
        chain_name: name.into(),
        genesis_time_ms: 0,
        validators: vec![Validator { address: Keypair::from_seed([9; 32]).public(), power: 1 }],
        accounts: vec![GenesisAccount { address: client.public(), balance }],
        providers: providers
            .iter()
            .map(|&(address, price_per_fuel, capacity)| GenesisProvider {
                address,
                price_per_fuel,
                stake: 10_000,
                capacity,
                region: String::new(),
            })
            .collect(),
        params: ChainParams::default(),
    }
}

/// An offer of `client` on chain `chain_id`, for tests to adjust: nonce 0, fee 1, the module
/// `H("module")`, no input, 1,000 fuel at 1 a unit, one provider, ranked at height 0, due by
/// height 100, anywhere.
pub(crate) fn offer(chain_id: Hash, client: &Keypair) -> JobOffer {
    JobOffer {
        version: FORMAT_VERSION,
        chain_id,
        client: client.public(),
        nonce: 0,
        fee: 1,
        module_id: Hash::of(b"module"),
        input: Vec::new(),
        fuel_limit: 1_000,
        max_price: 1,
        redundancy: 1,
        assignment_height: 0,
        deadline_height: 100,
        placement: Placement::Anywhere,
        input_blob: None,
    }
}
