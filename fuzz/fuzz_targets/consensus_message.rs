//! A consensus message as gossiped (`MESSAGE_VERSION || borsh(ConsensusMessage)`: votes,
//! proposals, certificates; CONSENSUS.md, WIRE.md): `ConsensusMessage::decode`, canonical,
//! then `check` against each fixture chain (validators, proposer, power, signatures).
#![no_main]

use cairn_consensus::ConsensusMessage;
use cairn_fuzz::chains;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > cairn_wire::CONSENSUS_MESSAGE_BYTES_MAX {
        return;
    }
    if let Ok(msg) = ConsensusMessage::decode(data) {
        let again = msg.encode();
        assert!(again == data, "accepted a non-canonical consensus message {msg:?}");
        let _ = (msg.height(), msg.round());
        for chain in chains() {
            let _ = msg.certificate_votes(chain.chain_id);
            let _ = msg.check(chain.chain_id, &chain.validators);
        }
    }
});
