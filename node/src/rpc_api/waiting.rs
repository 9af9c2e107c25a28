//! Why a job without a result waits: `job_get`'s `waiting`, from the head state and what this
//! node knows — pure, so that every reason's rule is here, next to its test.
//!
//! The reasons ([`WaitingReason`]) are tried in order, the first that applies is given:
//!
//! | reason | a pending offer | a job on chain (open, no result) |
//! |---|---|---|
//! | `deadline_passed` | `deadline_height ≤ head`: it can no longer be included | `deadline_height ≤ head`: it expires with the next block unless a result is in it |
//! | `no_eligible_provider` | fewer than k providers have the stake and ask ≤ `max_price` | — (assigned when included) |
//! | `providers_at_capacity` | enough by stake and price, fewer than k of them with capacity left | — |
//! | `waiting_for_nonce` | an earlier nonce of its client is missing here | — |
//! | `module_unknown_to_provider` | this node is assigned and has not got the module | the same, for a slot it holds |
//! | `assigned` | otherwise: who it is assigned to at the head | otherwise: who holds the slots without a result, since when |
//!
//! A pending offer with no eligible provider is refused by block building (dropped) once it
//! can be included, so that comes before the nonce gap: filling the gap would not help.

use std::time::Duration;

use cairn_contracts::{Job, State};
use cairn_ledger::{Hash, JobOffer, Placement, PublicKey};
use cairn_rpc::{JobWaiting, WaitingReason};

/// What this node knows of a job that the state does not say.
#[derive(Debug, Clone, Copy)]
pub struct Here {
    /// This node's address.
    pub address: PublicKey,
    /// Whether this node is a provider that does not have the job's module (it fetches the
    /// module of a job assigned to it from its peers before it can run it).
    pub fetching_module: bool,
}

/// Where a pending offer stands in its client's nonce order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceOrder {
    /// Every earlier nonce is on chain or pending here: it can be included next.
    Includable,
    /// Behind a gap: `missing` is the first nonce of the client that has not reached this node.
    Gap {
        /// The missing nonce.
        missing: u64,
    },
}

fn waiting(reason: WaitingReason, message: String) -> JobWaiting {
    JobWaiting { reason, message }
}

fn list(providers: &[PublicKey]) -> String {
    providers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Why a pending offer (in this node's mempool, not on chain) has no result, at `head`.
pub fn of_pending(
    state: &State,
    head: u64,
    offer: &JobOffer,
    job_id: &Hash,
    order: NonceOrder,
    here: &Here,
    gap_timeout: Duration,
) -> JobWaiting {
    let deadline = offer.deadline_height;
    if deadline <= head {
        return waiting(
            WaitingReason::DeadlinePassed,
            format!(
                "its deadline (height {deadline}) is not after the head (height {head}): the offer can no longer be \
                 included and is dropped; submit a new offer with a later deadline_height"
            ),
        );
    }
    let (k, max_price) = (usize::from(offer.redundancy), offer.max_price);
    if state.eligible_count(max_price, &offer.placement) < k {
        return no_provider(state, offer, "block building refuses this offer");
    }
    if let NonceOrder::Gap { missing } = order {
        return waiting(
            WaitingReason::WaitingForNonce,
            format!(
                "nonce {missing} of account {} has not reached this node: this offer (nonce {}) waits behind it, \
                 neither included nor executed, and is dropped if it has not come within {gap_timeout:?} of its \
                 arrival; submit the transaction with nonce {missing}",
                offer.client, offer.nonce
            ),
        );
    }
    let assigned = state.assignment(job_id, max_price, &offer.placement, k);
    if here.fetching_module && assigned.contains(&here.address) {
        return fetching(here, &offer.module_id);
    }
    waiting(
        WaitingReason::Assigned,
        format!(
            "waiting to be included in a block; at the head it is assigned to {} (the assignment is fixed when it is \
             included), which runs it as soon as it can be included",
            list(&assigned)
        ),
    )
}

/// Why fewer providers than the offer's redundancy are eligible for it: the price (in the
/// regions it allows, if it allows some only), or their capacity. `consequence` says what that
/// does to the job.
pub fn no_provider(state: &State, offer: &JobOffer, consequence: &str) -> JobWaiting {
    let (k, max_price) = (usize::from(offer.redundancy), offer.max_price);
    let priced = state.priced_count(max_price, &offer.placement);
    if let Placement::Only { regions } = &offer.placement
        && priced < k
    {
        return waiting(
            WaitingReason::NoEligibleProvider,
            format!(
                "{priced} provider(s) with the stake in region(s) {} ask at most {max_price} per unit of fuel, fewer \
                 than the redundancy {k}: {consequence}; prefer those regions instead of requiring them, raise \
                 max_price or lower the redundancy",
                regions.join(", ")
            ),
        );
    }
    if priced < k {
        let lowest = match state.lowest_ask() {
            Some(ask) => format!("the lowest ask is {ask}"),
            None => "no provider is registered with the stake".to_owned(),
        };
        return waiting(
            WaitingReason::NoEligibleProvider,
            format!(
                "{priced} provider(s) with the stake ask at most {max_price} per unit of fuel, fewer than the \
                 redundancy {k} ({lowest}): {consequence}; raise max_price or lower the redundancy (a pending offer is \
                 replaced by one with its nonce and a fee at least 10 % higher)"
            ),
        );
    }
    waiting(
        WaitingReason::ProvidersAtCapacity,
        format!(
            "{priced} provider(s) ask at most {max_price} per unit of fuel, but fewer than the redundancy {k} of them \
             have capacity left (their assigned jobs are not delivered yet): {consequence} until some deliver; wait, or \
             raise max_price to reach other providers"
        ),
    )
}

fn fetching(here: &Here, module_id: &Hash) -> JobWaiting {
    waiting(
        WaitingReason::ModuleUnknownToProvider,
        format!(
            "this node ({}) is assigned to run it and does not have module {module_id} yet: it is fetching it from its \
             peers and runs the job once it arrives (module_put it to this node to hurry)",
            here.address
        ),
    )
}

/// Why a job open on chain has no result yet, at `head`.
pub fn of_open(state: &State, head: u64, job: &Job, here: &Here) -> JobWaiting {
    let deadline = job.deadline_height;
    if deadline <= head {
        return waiting(
            WaitingReason::DeadlinePassed,
            format!(
                "its deadline (height {deadline}) is reached (head {head}): unless a result is in the next block, the \
                 job expires with it and the escrow is refunded"
            ),
        );
    }
    let awaited: Vec<(PublicKey, u64)> = job.awaited().collect();
    if here.fetching_module && awaited.iter().any(|(p, _)| *p == here.address) {
        return fetching(here, &job.module_id);
    }
    if awaited.is_empty() {
        return waiting(
            WaitingReason::Assigned,
            "every assigned provider has delivered: the job closes with the next block".to_owned(),
        );
    }
    let delivery_blocks = state.params().delivery_blocks;
    let holders: Vec<String> = awaited.iter().map(|(p, since)| format!("{p} (since height {since})")).collect();
    let then = if job.has_stand_in() {
        format!(
            "a provider that has not delivered {delivery_blocks} blocks after its assignment is replaced by the next \
             ranked one"
        )
    } else {
        format!(
            "no stand-in is left: if no result comes, the escrow is refunded after the deadline (height {deadline})"
        )
    };
    waiting(WaitingReason::Assigned, format!("assigned to {}; {then}", holders.join(", ")))
}

#[cfg(test)]
mod tests {
    use cairn_contracts::{NoReexecution, VerifyAlways};
    use cairn_ledger::{FORMAT_VERSION, Genesis, Keypair, SignedOffer, Transaction};

    use super::*;

    /// A client and providers asking 1, 2, …, the first with capacity 1.
    struct World {
        genesis: Genesis,
        client: Keypair,
        providers: Vec<Keypair>,
    }

    fn world(providers: u8) -> World {
        let client = Keypair::from_seed([1; 32]);
        let providers: Vec<Keypair> = (0..providers).map(|i| Keypair::from_seed([10 + i; 32])).collect();
        let offerings: Vec<_> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.public(), 1 + i as u64, if i == 0 { 1 } else { 100 }))
            .collect();
        let genesis = crate::test_genesis::market("waiting", &client, 1_000_000, &offerings);
        World { genesis, client, providers }
    }

    fn offer(w: &World, nonce: u64, max_price: u64, deadline_height: u64) -> SignedOffer {
        JobOffer {
            version: FORMAT_VERSION,
            chain_id: w.genesis.chain_id(),
            client: w.client.public(),
            nonce,
            fee: 1,
            module_id: Hash::of(b"wasm"),
            input: b"in".to_vec(),
            fuel_limit: 100,
            max_price,
            redundancy: 1,
            assignment_height: 0,
            deadline_height,
            placement: cairn_ledger::Placement::Anywhere,
            input_blob: None,
        }
        .sign(&w.client)
    }

    const ELSEWHERE: Here = Here { address: PublicKey([0; 32]), fetching_module: false };

    fn pending(state: &State, head: u64, o: &SignedOffer, order: NonceOrder, here: &Here) -> JobWaiting {
        of_pending(state, head, &o.offer, &o.job_id(), order, here, Duration::from_secs(60))
    }

    #[test]
    fn a_pending_offer_says_what_stops_it_first() {
        let w = world(2);
        let mut state = State::from_genesis(&w.genesis).expect("genesis");
        let gap = NonceOrder::Gap { missing: 3 };

        // Below every ask: no eligible provider, whatever else holds; the lowest ask is named.
        let cheap = offer(&w, 4, 0, 50);
        for order in [NonceOrder::Includable, gap] {
            let why = pending(&state, 0, &cheap, order, &ELSEWHERE);
            assert_eq!(why.reason, WaitingReason::NoEligibleProvider, "{why:?}");
            assert!(why.message.contains("the lowest ask is 1"), "{}", why.message);
        }
        // Past its deadline: that first.
        let late = offer(&w, 4, 0, 7);
        assert_eq!(pending(&state, 7, &late, gap, &ELSEWHERE).reason, WaitingReason::DeadlinePassed);
        assert_eq!(pending(&state, 6, &late, gap, &ELSEWHERE).reason, WaitingReason::NoEligibleProvider);

        // At price 1 the one provider is eligible: behind a gap it waits for the missing nonce.
        let o = offer(&w, 4, 1, 50);
        let why = pending(&state, 0, &o, gap, &ELSEWHERE);
        assert_eq!(why.reason, WaitingReason::WaitingForNonce);
        assert!(why.message.contains("nonce 3 of account") && why.message.contains("(nonce 4)"), "{}", why.message);
        assert!(why.message.contains("within 60s"), "{}", why.message);
        // Includable: assigned, and the message names the provider.
        let why = pending(&state, 0, &o, NonceOrder::Includable, &ELSEWHERE);
        assert_eq!(why.reason, WaitingReason::Assigned);
        let cheapest = w.providers[0].public();
        assert!(why.message.contains(&cheapest.to_string()), "{}", why.message);
        // This node is that provider and has not got the module: it says so; another provider
        // fetching the module does not.
        let me = Here { address: cheapest, fetching_module: true };
        assert_eq!(pending(&state, 0, &o, NonceOrder::Includable, &me).reason, WaitingReason::ModuleUnknownToProvider);
        let other = Here { address: w.providers[1].public(), fetching_module: true };
        assert_eq!(pending(&state, 0, &o, NonceOrder::Includable, &other).reason, WaitingReason::Assigned);

        // The cheapest provider's one slot taken by a job on chain: priced, but at capacity.
        let first = offer(&w, 0, 1, 50);
        state
            .apply_tx(&Transaction::Offer(first), 1, &mut NoReexecution, &mut VerifyAlways)
            .expect("the first offer applies");
        assert_eq!(pending(&state, 1, &o, gap, &ELSEWHERE).reason, WaitingReason::ProvidersAtCapacity);
        // At price 2 the other provider is eligible.
        let two = offer(&w, 4, 2, 50);
        assert_eq!(pending(&state, 1, &two, gap, &ELSEWHERE).reason, WaitingReason::WaitingForNonce);
    }

    #[test]
    fn a_job_on_chain_names_who_holds_its_slots_and_what_happens_next() {
        let w = world(3);
        let mut state = State::from_genesis(&w.genesis).expect("genesis");
        // At price 1 only the cheapest provider ranks: no stand-in.
        let o = offer(&w, 0, 1, 30);
        state.apply_tx(&Transaction::Offer(o.clone()), 1, &mut NoReexecution, &mut VerifyAlways).expect("offer");
        let job = state.job(&o.job_id()).expect("on chain").clone();
        let cheapest = w.providers[0].public();
        let why = of_open(&state, 1, &job, &ELSEWHERE);
        assert_eq!(why.reason, WaitingReason::Assigned);
        assert!(why.message.contains(&format!("{cheapest} (since height 1)")), "{}", why.message);
        assert!(why.message.contains("no stand-in is left"), "{}", why.message);
        let me = Here { address: cheapest, fetching_module: true };
        assert_eq!(of_open(&state, 1, &job, &me).reason, WaitingReason::ModuleUnknownToProvider);
        assert_eq!(of_open(&state, 30, &job, &me).reason, WaitingReason::DeadlinePassed);

        // At price 3 the two others rank (the cheapest is at capacity): one is the other's
        // stand-in.
        let o = offer(&w, 1, 3, 30);
        state.apply_tx(&Transaction::Offer(o.clone()), 2, &mut NoReexecution, &mut VerifyAlways).expect("offer");
        let job = state.job(&o.job_id()).expect("on chain");
        let why = of_open(&state, 2, job, &ELSEWHERE);
        assert!(why.message.contains("replaced by the next ranked one"), "{}", why.message);
    }

    #[test]
    fn every_reason_has_its_stable_name_and_is_documented_in_order() {
        let doc = include_str!("../../../docs/RPC.md");
        let table = doc.split("\n| `reason` | when |\n").nth(1).expect("RPC.md has the table of waiting reasons");
        let rows: Vec<&str> = table.lines().skip(1).take_while(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), WaitingReason::ALL.len());
        for (reason, row) in WaitingReason::ALL.into_iter().zip(rows) {
            assert_eq!(serde_json::to_value(reason).expect("serializes"), serde_json::json!(reason.as_str()));
            assert!(row.starts_with(&format!("| `{reason}` |")), "RPC.md lists {reason} in its place: {row}");
        }
    }
}
