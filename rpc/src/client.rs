//! The client side of a job's life: estimate an offer, sign it, subscribe, submit, wait for each
//! stage, fetch the proof. Used by `cairn job run`, the testnet demo and the end-to-end tests.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_ledger::{
    Action, FORMAT_VERSION, Hash, JobOffer, Keypair, Placement, PublicKey, ReceiptProof, SignedOffer, SignedTx, Tx,
};
use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};

use crate::{CairnApiClient, JobEstimate, JobEvent, JobStage, ResultInfo};

/// The largest message the client accepts (a proof or a block with its transactions).
pub const CLIENT_MESSAGE_BYTES_MAX: u32 = 32 << 20;

/// Connects to a node's RPC (`ws://…`, or a bare `host:port`).
pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
    let url = if url.contains("://") { url.to_string() } else { format!("ws://{url}") };
    WsClientBuilder::default()
        .max_request_size(CLIENT_MESSAGE_BYTES_MAX)
        .max_response_size(CLIENT_MESSAGE_BYTES_MAX)
        .request_timeout(Duration::from_secs(60))
        .build(&url)
        .await
        .with_context(|| format!("cannot connect to the node's RPC at {url}; is the node running?"))
}

/// The economic terms of an offer, and where its job may run.
#[derive(Clone, Debug)]
pub struct OfferTerms {
    /// The most fuel the job may use.
    pub fuel_limit: u64,
    /// The highest price per unit of fuel.
    pub max_price: u64,
    /// Blocks from the head until the deadline.
    pub deadline_blocks: u64,
    /// How many providers execute the job (k; the escrow covers k executions).
    pub redundancy: u8,
    /// The fee, burned when the offer is included; `None` pays the chain's minimum (`node_info`'s
    /// `tx_fee_min`).
    pub fee: Option<u64>,
    /// Which providers' regions are ranked first, or only ones allowed.
    pub placement: Placement,
    /// The input as a blob stored on the node (`blob_put`), by id; the inline input is then
    /// empty.
    pub input_blob: Option<Hash>,
}

impl Default for OfferTerms {
    fn default() -> Self {
        OfferTerms {
            fuel_limit: 100_000_000,
            max_price: 1,
            deadline_blocks: 200,
            redundancy: 1,
            fee: None,
            placement: Placement::Anywhere,
            input_blob: None,
        }
    }
}

/// Builds and signs an offer for the chain the node serves, with `terms` (the fee defaults to
/// the chain's minimum). `nonce: None` asks the node for the account's next nonce (counting
/// offers in its mempool).
pub async fn sign_offer(
    client: &WsClient,
    key: &Keypair,
    module_id: Hash,
    input: Vec<u8>,
    terms: OfferTerms,
    nonce: Option<u64>,
) -> anyhow::Result<SignedOffer> {
    Ok(build_offer(client, key.public(), module_id, input, terms, nonce).await?.sign(key))
}

/// How many blocks before the head it read a client's offer names as its `assignment_height`.
/// A job's providers learn a block after the validators that decide it (gossip, then its
/// execution), and hold an offer that names a block they have not applied until they have:
/// naming the newest block made that wait a third of the submit→result p99 at half the peak.
/// Any height within the chain's `assignment_window_blocks` is valid.
pub const ASSIGNMENT_LAG_BLOCKS: u64 = 1;

/// Builds the offer [`sign_offer`] signs, unsigned: for the chain the node serves, assigned at
/// the block before its head ([`ASSIGNMENT_LAG_BLOCKS`]), with `terms` (the fee defaults to
/// the chain's minimum; the deadline counts from the head) and `nonce` (`None`: the account's
/// next one, counting offers in the node's mempool).
pub async fn build_offer(
    client: &WsClient,
    payer: PublicKey,
    module_id: Hash,
    input: Vec<u8>,
    terms: OfferTerms,
    nonce: Option<u64>,
) -> anyhow::Result<JobOffer> {
    let info = client.node_info().await.context("node_info")?;
    let head = client.chain_head().await.context("chain_head")?;
    let nonce = match nonce {
        Some(n) => n,
        None => client.account_get(payer).await.context("account_get")?.next_nonce,
    };
    Ok(JobOffer {
        version: FORMAT_VERSION,
        chain_id: info.chain_id,
        client: payer,
        nonce,
        fee: terms.fee.unwrap_or(info.tx_fee_min),
        module_id,
        input,
        fuel_limit: terms.fuel_limit,
        max_price: terms.max_price,
        redundancy: terms.redundancy,
        assignment_height: head.height.saturating_sub(ASSIGNMENT_LAG_BLOCKS),
        deadline_height: head.height + terms.deadline_blocks,
        placement: terms.placement,
        input_blob: terms.input_blob,
    })
}

/// Stores `bytes` on the node as a blob (`blob_put`, at most
/// [`DATA_BLOB_BYTES_MAX`](cairn_ledger::DATA_BLOB_BYTES_MAX), refused here before sending) and
/// checks that the id it answers is their hash.
pub async fn put_blob(client: &WsClient, bytes: &[u8]) -> anyhow::Result<Hash> {
    let max = cairn_ledger::DATA_BLOB_BYTES_MAX;
    anyhow::ensure!(bytes.len() <= max, "the blob is {} bytes, over the largest blob of {max} bytes", bytes.len());
    let id = client.blob_put(hex::encode(bytes)).await.context("blob_put")?;
    anyhow::ensure!(id == Hash::of(bytes), "the node answered blob id {id}, not the bytes' hash");
    Ok(id)
}

/// A blob's bytes by id (`blob_get`), checked against the id.
pub async fn get_blob(client: &WsClient, id: Hash) -> anyhow::Result<Vec<u8>> {
    let bytes = cairn_ledger::decode_hex(&client.blob_get(id).await.context("blob_get")?, "blob")?;
    anyhow::ensure!(Hash::of(&bytes) == id, "the node sent a blob that does not match its id {id}");
    Ok(bytes)
}

/// Puts an input larger than the chain carries inline (`input_bytes_max`) into a blob on the
/// node ([`put_blob`]) and names it in `terms`; returns the input the offer carries inline
/// (empty if it went into a blob).
pub async fn place_input(client: &WsClient, input: Vec<u8>, terms: &mut OfferTerms) -> anyhow::Result<Vec<u8>> {
    if input.is_empty() {
        return Ok(input);
    }
    let inline_max = client.chain_genesis().await.context("chain_genesis")?.params.input_bytes_max as usize;
    if input.len() <= inline_max {
        return Ok(input);
    }
    terms.input_blob = Some(put_blob(client, &input).await?);
    Ok(Vec::new())
}

/// A result's output bytes: inline, or fetched by its hash ([`get_blob`]).
pub async fn output_of(client: &WsClient, result: &ResultInfo) -> anyhow::Result<Vec<u8>> {
    if result.output_in_blob { get_blob(client, result.output_hash).await } else { Ok(result.output.clone()) }
}

/// Asks the node what `offer` would use and cost if it were signed with `key` and submitted now
/// (`job_estimate`). The offer is signed here only to learn its job id (Ed25519 signatures are
/// deterministic: signing it again to submit it gives the same id); the signature is not sent,
/// so the node cannot submit the offer.
pub async fn estimate(client: &WsClient, key: &Keypair, offer: JobOffer) -> anyhow::Result<JobEstimate> {
    let job_id = offer.clone().sign(key).job_id();
    client.job_estimate(offer, job_id).await.context("job_estimate")
}

/// Builds and signs an account transaction for the chain the node serves. `fee: None` pays the
/// chain's minimum (`node_info`'s `tx_fee_min`).
pub async fn sign_tx(
    client: &WsClient,
    key: &Keypair,
    fee: Option<u64>,
    action: Action,
    nonce: Option<u64>,
) -> anyhow::Result<SignedTx> {
    let info = client.node_info().await.context("node_info")?;
    let fee = fee.unwrap_or(info.tx_fee_min);
    let nonce = match nonce {
        Some(n) => n,
        None => client.account_get(key.public()).await.context("account_get")?.next_nonce,
    };
    Ok(Tx { version: FORMAT_VERSION, chain_id: info.chain_id, sender: key.public(), nonce, fee, action }.sign(key))
}

/// Submits an account transaction and waits until the sender's nonce has moved past it in a
/// finalized block (or `timeout`).
pub async fn submit_tx(client: &WsClient, tx: SignedTx, timeout: Duration) -> anyhow::Result<Hash> {
    let (sender, nonce) = (tx.tx.sender, tx.tx.nonce);
    let hash = client.tx_submit(tx).await.context("tx_submit")?;
    let deadline = Instant::now() + timeout;
    loop {
        if client.account_get(sender).await.context("account_get")?.nonce > nonce {
            return Ok(hash);
        }
        if Instant::now() > deadline {
            bail!("transaction {hash} not finalized within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A submitted job being watched.
pub struct Watch {
    /// The job id.
    pub job_id: Hash,
    /// When it was submitted.
    pub submitted_at: Instant,
    sub: Subscription<JobEvent>,
}

/// Subscribes to the job's events, then submits it (so no event is missed).
pub async fn submit(client: &WsClient, offer: SignedOffer) -> anyhow::Result<Watch> {
    let job_id = offer.job_id();
    let sub = client.job_subscribe(job_id).await.context("job_subscribe")?;
    let submitted_at = Instant::now();
    let returned = client.job_submit(offer).await.context("job_submit")?;
    if returned != job_id {
        bail!("the node returned job id {returned}, expected {job_id}");
    }
    Ok(Watch { job_id, submitted_at, sub })
}

impl Watch {
    /// The next event, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<JobEvent> {
        match tokio::time::timeout(timeout, self.sub.next()).await {
            Err(_) => bail!("no event for job {} within {timeout:?}", self.job_id),
            Ok(None) => bail!("the node closed the subscription for job {}", self.job_id),
            Ok(Some(ev)) => ev.context("job event"),
        }
    }

    /// Waits until `stage` (or a later one) is reached, calling `on_event` for each event.
    pub async fn until(
        &mut self,
        stage: JobStage,
        timeout: Duration,
        mut on_event: impl FnMut(&JobEvent),
    ) -> anyhow::Result<JobEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.next(left).await?;
            on_event(&ev);
            if ev.stage == JobStage::Expired && stage != JobStage::Expired {
                bail!("job {} expired: no provider delivered a result before its deadline", self.job_id);
            }
            if ev.stage == JobStage::Dropped && stage != JobStage::Dropped {
                bail!("job {} was dropped: {}", self.job_id, ev.reason.as_deref().unwrap_or("no reason given"));
            }
            if ev.stage >= stage {
                return Ok(ev);
            }
        }
    }
}

/// A job run to finality.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The job id.
    pub job_id: Hash,
    /// The provider's result.
    pub result: ResultInfo,
    /// From submission to the result's arrival.
    pub to_result: Duration,
    /// From submission to the finalized receipt.
    pub to_finalized: Duration,
    /// The receipt proof.
    pub proof: ReceiptProof,
}

/// Submits `offer` and follows it to its finalized receipt, calling `on_stage` at each stage.
pub async fn run_to_finality(
    client: &WsClient,
    offer: SignedOffer,
    timeout: Duration,
    mut on_stage: impl FnMut(JobStage),
) -> anyhow::Result<JobRun> {
    let mut watch = submit(client, offer).await?;
    on_stage(JobStage::Accepted);
    let mut result = None;
    let mut to_result = None;
    let deadline = Instant::now() + timeout;
    loop {
        let ev = watch.next(deadline.saturating_duration_since(Instant::now())).await?;
        on_stage(ev.stage);
        if let Some(r) = ev.result {
            if to_result.is_none() {
                to_result = Some(watch.submitted_at.elapsed());
            }
            result = Some(r);
        }
        match ev.stage {
            JobStage::Expired => bail!("job {} expired before a provider delivered", watch.job_id),
            JobStage::Dropped => bail!(
                "job {} was dropped before it was included: {}",
                watch.job_id,
                ev.reason.as_deref().unwrap_or("no reason given")
            ),
            JobStage::Finalized => break,
            _ => {}
        }
    }
    let to_finalized = watch.submitted_at.elapsed();
    let result = result.context("finalized without a result")?;
    // The receipt of the result it watched (a job with k ≥ 2 providers has one per provider).
    let proof = client.job_proof(watch.job_id, Some(result.provider)).await.context("job_proof")?;
    Ok(JobRun { job_id: watch.job_id, result, to_result: to_result.unwrap_or(to_finalized), to_finalized, proof })
}
