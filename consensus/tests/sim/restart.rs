//! The write-ahead log: a validator that crashes and restarts from it signs the same messages
//! again, never different ones.

use cairn_consensus::{
    ConsensusMessage, ConsensusParams, Engine, EngineInput, EngineOutput, Proposal, SignedProposal, TimeoutKind,
    proposer,
};
use cairn_ledger::{Hash, Keypair, Validator, ValidatorSet, VoteKind};

const CHAIN: Hash = Hash([3; 32]);

fn keys(n: u8) -> (Vec<Keypair>, ValidatorSet) {
    let keys: Vec<Keypair> = (1..=n).map(|i| Keypair::from_seed([i; 32])).collect();
    let set = ValidatorSet::new(keys.iter().map(|k| Validator { address: k.public(), power: 1 }).collect())
        .expect("valid set");
    (keys, set)
}

fn key_of(keys: &[Keypair], who: cairn_ledger::PublicKey) -> &Keypair {
    keys.iter().find(|k| k.public() == who).expect("a validator's key")
}

fn wal(outputs: &[EngineOutput]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            EngineOutput::WalAppend(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// The votes `who` published at `height`, `round`, of `kind`.
fn published_votes(outputs: &[EngineOutput], kind: VoteKind) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            EngineOutput::Publish(b) => match ConsensusMessage::decode(b).expect("decodes") {
                ConsensusMessage::Vote(v) if v.vote.kind == kind && v.vote.height == 1 && v.vote.round == 0 => {
                    Some(b.clone())
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn proposal(keys: &[Keypair], set: &ValidatorSet, block_hash: Hash) -> Vec<u8> {
    let who = proposer(set, 1, 0);
    let p = Proposal::new(CHAIN, 1, 0, block_hash, None, who);
    ConsensusMessage::Proposal(SignedProposal::sign(key_of(keys, who), p)).encode()
}

/// A validator that is not the proposer of height 1, round 0.
fn follower(keys: &[Keypair], set: &ValidatorSet) -> Keypair {
    let p = proposer(set, 1, 0);
    keys.iter().find(|k| k.public() != p).expect("another validator").clone()
}

fn engine(key: &Keypair, set: &ValidatorSet) -> Engine {
    Engine::new(key.clone(), CHAIN, set.clone(), ConsensusParams::default()).expect("a validator")
}

#[test]
fn a_validator_restarted_before_sending_its_vote_sends_the_same_vote() {
    let (keys, set) = keys(4);
    let me = follower(&keys, &set);
    let block = Hash::of(b"block 1");
    let mut e = engine(&me, &set);
    let mut out = e.handle(EngineInput::StartHeight { height: 1 });
    out.extend(e.handle(EngineInput::BlockValidity { height: 1, block_hash: block, valid: true }));
    out.extend(e.handle(EngineInput::Message(proposal(&keys, &set, block))));
    let signed = published_votes(&out, VoteKind::Prevote);
    assert_eq!(signed.len(), 1, "one prevote signed");
    // Crash after the WAL append, before the publish: only the WAL survives.
    let log = wal(&out);
    assert!(log.len() >= 2, "the proposal and the prevote are logged");
    drop(e);

    let mut restarted = engine(&me, &set);
    let out = restarted.replay(1, &log).expect("replays");
    assert_eq!(published_votes(&out, VoteKind::Prevote), signed, "the very same prevote is sent again");
    assert!(wal(&out).is_empty(), "nothing is logged twice");
}

#[test]
fn a_restarted_validator_never_signs_a_conflicting_vote() {
    let (keys, set) = keys(4);
    let me = follower(&keys, &set);
    let mut e = engine(&me, &set);
    let mut out = e.handle(EngineInput::StartHeight { height: 1 });
    // No proposal in time: prevote nil.
    out.extend(e.handle(EngineInput::TimeoutElapsed { height: 1, round: 0, kind: TimeoutKind::Propose }));
    let nil = published_votes(&out, VoteKind::Prevote);
    assert_eq!(nil.len(), 1);
    // Keep only the signed prevote in the log (as if the timeout entry were lost), restart,
    // then the late proposal arrives: the engine must stick to nil.
    let own_only: Vec<Vec<u8>> = wal(&out)
        .into_iter()
        .filter(|b| matches!(cairn_consensus::WalEntry::decode(b), Ok(cairn_consensus::WalEntry::Message(_))))
        .collect();
    assert_eq!(own_only.len(), 1);
    let mut restarted = engine(&me, &set);
    let mut out = restarted.replay(1, &own_only).expect("replays");
    let block = Hash::of(b"late block");
    out.extend(restarted.handle(EngineInput::BlockValidity { height: 1, block_hash: block, valid: true }));
    out.extend(restarted.handle(EngineInput::Message(proposal(&keys, &set, block))));
    let prevotes = published_votes(&out, VoteKind::Prevote);
    assert!(prevotes.iter().all(|p| *p == nil[0]), "only the nil prevote is ever signed for round 0");
}

#[test]
fn four_validators_decide_and_a_restarted_one_decides_the_same_block_again() {
    let (keys, set) = keys(4);
    let mut engines: Vec<Engine> = keys.iter().map(|k| engine(k, &set)).collect();
    let mut logs: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    let mut inbox: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut decided: Vec<Option<(Hash, cairn_ledger::Commit)>> = vec![None; 4];
    let block = Hash::of(b"the block");
    let mut step = |i: usize, out: Vec<EngineOutput>, inbox: &mut Vec<(usize, Vec<u8>)>, engines: &mut Vec<Engine>| {
        let mut extra = Vec::new();
        for o in out {
            match o {
                EngineOutput::WalAppend(b) => logs[i].push(b),
                EngineOutput::Publish(b) => inbox.extend((0..4).filter(|&j| j != i).map(|j| (j, b.clone()))),
                EngineOutput::RequestValue { height, round, .. } => {
                    extra.push(EngineInput::ProposeValue { height, round, block_hash: block })
                }
                EngineOutput::NeedBlock { height, block_hash, .. } => {
                    extra.push(EngineInput::BlockValidity { height, block_hash, valid: true })
                }
                EngineOutput::Decided { block_hash, commit, .. } => decided[i] = Some((block_hash, commit)),
                _ => {}
            }
        }
        for input in extra {
            let out = engines[i].handle(input);
            for o in out {
                match o {
                    EngineOutput::WalAppend(b) => logs[i].push(b),
                    EngineOutput::Publish(b) => inbox.extend((0..4).filter(|&j| j != i).map(|j| (j, b.clone()))),
                    _ => {}
                }
            }
        }
    };
    for i in 0..4 {
        let out = engines[i].handle(EngineInput::StartHeight { height: 1 });
        step(i, out, &mut inbox, &mut engines);
    }
    while let Some((to, bytes)) = inbox.pop() {
        let out = engines[to].handle(EngineInput::Message(bytes));
        step(to, out, &mut inbox, &mut engines);
    }
    for d in &decided {
        let (hash, commit) = d.as_ref().expect("every validator decided");
        assert_eq!(*hash, block);
        assert!(commit.verify(CHAIN, &set).expect("the commit verifies") >= 3);
    }
    // Validator 0 crashed before storing the block: replaying its WAL decides it again.
    let mut restarted = engine(&keys[0], &set);
    let out = restarted.replay(1, &logs[0]).expect("replays");
    let again = out.iter().find_map(|o| match o {
        EngineOutput::Decided { block_hash, .. } => Some(*block_hash),
        _ => None,
    });
    assert_eq!(again, Some(block));
}
