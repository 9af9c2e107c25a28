//! The worked examples of `docs/PROOFS.md` ("Record layouts") and `docs/STATE.md` ("State
//! proofs"), recomputed from the documents' own text: the bytes they quote decode, hash and
//! verify as they say, their tables give the indexes and field orders the code encodes, and the
//! state proof algorithm of STATE.md — implemented below from its description alone, with
//! SHA-256 as its only dependency — agrees with the tree the nodes keep.

use sha2::Sha256;

use crate::*;

const PROOFS_MD: &str = include_str!("../../../docs/PROOFS.md");
const STATE_MD: &str = include_str!("../../../docs/STATE.md");
const GENESIS_JSON: &str = include_str!("../../../docs/fixtures/genesis.json");

/// STATE.md's state proof verification, written from the document (no `jmt`, no Cairn type).
mod by_the_doc {
    use sha2::{Digest, Sha256};

    pub type H32 = [u8; 32];

    pub const PLACEHOLDER: &H32 = b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

    pub fn sha256(parts: &[&[u8]]) -> H32 {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    pub fn leaf(key_hash: &H32, value_hash: &H32) -> H32 {
        sha256(&[b"JMT::LeafNode", key_hash, value_hash])
    }

    pub fn internal(left: &H32, right: &H32) -> H32 {
        sha256(&[b"JMT::IntrnalNode", left, right])
    }

    pub enum Sibling {
        Empty,
        Internal(H32, H32),
        Leaf(H32, H32),
    }

    impl Sibling {
        fn hash(&self) -> H32 {
            match self {
                Sibling::Empty => *PLACEHOLDER,
                Sibling::Internal(l, r) => internal(l, r),
                Sibling::Leaf(k, v) => leaf(k, v),
            }
        }
    }

    pub struct Proof {
        pub leaf: Option<(H32, H32)>,
        pub siblings: Vec<Sibling>,
    }

    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8], String> {
            if self.0.len() < n {
                return Err("truncated".into());
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Ok(a)
        }
        fn h32(&mut self) -> Result<H32, String> {
            Ok(self.take(32)?.try_into().expect("32 bytes"))
        }
        fn byte(&mut self) -> Result<u8, String> {
            Ok(self.take(1)?[0])
        }
    }

    /// The proof bytes: leaf `Option<(key hash, value hash)>`, then a `u32` LE count of
    /// siblings, each a tag (0 empty, 1 internal + left + right, 2 leaf + key hash + value hash).
    pub fn decode(bytes: &[u8]) -> Result<Proof, String> {
        let mut r = Reader(bytes);
        let leaf = match r.byte()? {
            0 => None,
            1 => Some((r.h32()?, r.h32()?)),
            t => return Err(format!("leaf tag {t}")),
        };
        let n = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        let mut siblings = Vec::new();
        for _ in 0..n {
            siblings.push(match r.byte()? {
                0 => Sibling::Empty,
                1 => Sibling::Internal(r.h32()?, r.h32()?),
                2 => Sibling::Leaf(r.h32()?, r.h32()?),
                t => return Err(format!("sibling tag {t}")),
            });
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(Proof { leaf, siblings })
    }

    /// Bit `d` of a key hash, the most significant bit of byte 0 first.
    pub fn bit(key_hash: &H32, d: usize) -> bool {
        (key_hash[d / 8] >> (7 - d % 8)) & 1 == 1
    }

    fn common_prefix_bits(a: &H32, b: &H32) -> usize {
        (0..256).take_while(|&d| bit(a, d) == bit(b, d)).count()
    }

    /// Checks the proof; returns the running hash after the leaf step and after each sibling.
    pub fn verify(root: &H32, key: &[u8], value: Option<&[u8]>, proof_bytes: &[u8]) -> Result<Vec<H32>, String> {
        let proof = decode(proof_bytes)?;
        let n = proof.siblings.len();
        if n > 256 {
            return Err("more than 256 siblings".into());
        }
        let key_hash = sha256(&[key]);
        match (value, &proof.leaf) {
            (Some(v), Some((k, vh))) => {
                if *k != key_hash || *vh != sha256(&[v]) {
                    return Err("the leaf is not this key and value".into());
                }
            }
            (Some(_), None) => return Err("a value needs a leaf".into()),
            (None, Some((k, _))) => {
                if *k == key_hash || common_prefix_bits(k, &key_hash) < n {
                    return Err("the leaf does not prove this key absent".into());
                }
            }
            (None, None) => {}
        }
        let mut h = proof.leaf.map_or(*PLACEHOLDER, |(k, v)| leaf(&k, &v));
        let mut steps = vec![h];
        for (i, s) in proof.siblings.iter().enumerate() {
            let d = n - 1 - i;
            h = if bit(&key_hash, d) { internal(&s.hash(), &h) } else { internal(&h, &s.hash()) };
            steps.push(h);
        }
        if h != *root {
            return Err("the root differs".into());
        }
        Ok(steps)
    }

    /// The state root of a set of entries `(key hash, value hash)`, by the recursive rule.
    pub fn root_of(entries: &[(H32, H32)]) -> H32 {
        fn sub(entries: &[&(H32, H32)], depth: usize) -> H32 {
            match entries {
                [] => *PLACEHOLDER,
                [(k, v)] => leaf(k, v),
                _ => {
                    type Side<'a> = Vec<&'a (H32, H32)>;
                    let (right, left): (Side, Side) = entries.iter().partition(|(k, _)| bit(k, depth));
                    internal(&sub(&left, depth + 1), &sub(&right, depth + 1))
                }
            }
        }
        sub(&entries.iter().collect::<Vec<_>>(), 0)
    }
}

// ---- reading the documents ----

/// The text of the section that starts with the line `heading`, up to the next heading of the
/// same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}")) + 1;
    let level = heading.chars().take_while(|&c| c == '#').count();
    let body = &doc[start + heading.len()..];
    let mut end = body.len();
    let mut offset = 0;
    let mut in_code = false;
    for line in body.split_inclusive('\n') {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !in_code && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            end = offset;
            break;
        }
        offset += line.len();
    }
    &doc[start..start + heading.len() + end]
}

/// The fenced code blocks of `text`, in order.
fn code_blocks(text: &str) -> Vec<&str> {
    let mut blocks = vec![];
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').expect("fence line") + 1;
        let close = after[body_start..].find("```").expect("closing fence");
        blocks.push(&after[body_start..body_start + close]);
        rest = &after[body_start + close + 3..];
    }
    blocks
}

/// The bytes of an annotated block: the first word of each line is hex, the rest is comment.
fn annotated_bytes(block: &str) -> Vec<u8> {
    block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .flat_map(|w| hex::decode(w).unwrap_or_else(|e| panic!("{w:?} is not hex: {e}")))
        .collect()
}

/// The first 64-hex-digit word after `label` in `text`.
fn hash_after(text: &str, label: &str) -> [u8; 32] {
    let at = text.find(label).unwrap_or_else(|| panic!("{label:?} not in the document")) + label.len();
    let word = text[at..]
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 64)
        .unwrap_or_else(|| panic!("no hash after {label:?}"));
    hex::decode(word).expect("hex").try_into().expect("32 bytes")
}

/// The lines `label hex` of a block, in order.
fn labelled(block: &str, label: &str) -> Vec<Vec<u8>> {
    block
        .lines()
        .filter_map(|l| l.strip_prefix(label))
        .filter(|rest| rest.starts_with(' '))
        .map(|rest| hex::decode(rest.split_whitespace().next().expect("a value")).expect("hex"))
        .collect()
}

/// The first column of the `| field | type |` table after `intro`.
fn table_fields(doc: &str, intro: &str) -> Vec<String> {
    let at = doc.find(intro).unwrap_or_else(|| panic!("{intro:?} not in the document"));
    doc[at..]
        .lines()
        .skip_while(|l| !l.starts_with("| field |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).expect("a cell").trim().to_owned())
        .collect()
}

/// The keys of a JSON object in the order serde wrote them (serde writes a struct's fields in
/// declaration order, the order borsh encodes them in).
fn json_field_order<T: serde::Serialize>(value: &T) -> Vec<String> {
    let text = serde_json::to_string(value).expect("json");
    let (mut depth, mut keys, mut chars) = (0, vec![], text.char_indices().peekable());
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let start = i + 1;
                let mut end = start;
                while let Some((j, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        end = j;
                        break;
                    }
                }
                if depth == 1 && chars.peek().map(|&(_, c)| c) == Some(':') {
                    keys.push(text[start..end].to_owned());
                }
            }
            _ => {}
        }
    }
    keys
}

// ---- PROOFS.md ----

fn fixture_genesis() -> Genesis {
    serde_json::from_str(GENESIS_JSON).expect("fixtures/genesis.json parses")
}

fn record_layouts() -> &'static str {
    section(PROOFS_MD, "## Record layouts")
}

/// The worked transaction: its annotated bytes decode to the transaction the JSON form shows,
/// its signature verifies over the documented message with the documented key, and its hashes
/// are the documented ones.
#[test]
fn the_worked_transaction_of_proofs_md_decodes_hashes_and_verifies_as_documented() {
    let example = section(PROOFS_MD, "### Worked example: an account transaction");
    let bytes = annotated_bytes(code_blocks(example)[0]);

    // The layout, read off the bytes by the offsets the document gives.
    assert_eq!(bytes[0], 2, "Transaction index 2: Account");
    let (tx_bytes, signature) = bytes[1..].split_at(bytes.len() - 1 - 64);
    assert_eq!(tx_bytes.len(), 1 + 32 + 32 + 8 + 8 + 1 + 32 + 8);
    assert_eq!(&tx_bytes[1..33], &fixture_genesis().chain_id().0, "the fixture chain's id");
    let sender: [u8; 32] = tx_bytes[33..65].try_into().expect("32 bytes");
    let tag = example.split("The signature is over `").nth(1).and_then(|r| r.split('`').next()).expect("the tag");
    let mut message = hex::decode(tag).expect("hex");
    assert_eq!(message, b"cairn/v1/tx");
    message.push(0);
    message.extend_from_slice(tx_bytes);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&sender).expect("a key");
    let signature = ed25519_dalek::Signature::from_bytes(&<[u8; 64]>::try_from(signature).expect("64 bytes"));
    ed25519_dalek::Verifier::verify(&key, &message, &signature).expect("the documented signature verifies");

    assert_eq!(by_the_doc::sha256(&[&bytes]), hash_after(example, "transaction hash"));
    assert_eq!(by_the_doc::sha256(&[&[0], &bytes]), hash_after(example, "leaf hash is"));

    // The code agrees: same record, same hashes, same signature from the documented key file.
    let tx: Transaction = borsh::from_slice(&bytes).expect("decodes");
    assert_eq!(borsh::to_vec(&tx).expect("encodes"), bytes);
    assert_eq!(tx.hash().0, hash_after(example, "transaction hash"));
    assert_eq!(tx.leaf_hash().0, hash_after(example, "leaf hash is"));
    let Transaction::Account(signed) = &tx else { panic!("an account transaction") };
    signed.verify().expect("valid");
    assert_eq!(Domain::Tx.message(&signed.tx), message);
    let key_file = code_blocks(section(record_layouts(), "### Key files"))[0];
    let keypair = Keypair::from_json(key_file).expect("the documented key file is valid");
    assert_eq!(keypair.public().0, sender, "the documented key signed it");
    assert_eq!(signed.tx.clone().sign(&keypair), *signed);
    assert_eq!(keypair.to_json(), key_file.trim_end(), "the key file is written exactly so");

    // Its JSON form.
    let json = code_blocks(section(PROOFS_MD, "## JSON form"))[0];
    let from_json: Transaction = serde_json::from_str(json).expect("the documented JSON parses");
    assert_eq!(from_json, tx);
    assert_eq!(serde_json::to_string_pretty(&tx).expect("json"), json.trim_end());
}

/// Variant indexes, domains, identifiers and field orders in "Record layouts" are the code's.
#[test]
fn the_record_layout_tables_of_proofs_md_are_the_encodings() {
    let doc = record_layouts();
    let h = Hash([7; 32]);
    let pk = Keypair::from_seed([1; 32]).public();
    let offer = super::sample_signed_offer();
    let claim = ResultClaim {
        version: FORMAT_VERSION,
        job_id: h,
        module_id: h,
        input_hash: h,
        output_hash: Hash::of(b""),
        fuel_used: 1,
        status: JobStatus::Ok,
        provider: pk,
    };
    let result =
        JobResult { claim: claim.clone(), signature: Signature([0; 64]), output: vec![], output_in_blob: false };
    let tx = |action: Action| Tx { version: FORMAT_VERSION, chain_id: h, sender: pk, nonce: 0, fee: 1, action };
    let signed_tx = SignedTx { tx: tx(Action::Unbond { amount: 1 }), signature: Signature([0; 64]) };
    let transactions = [
        ("Offer", Transaction::Offer(offer.clone())),
        ("Result", Transaction::Result(result)),
        ("Account", Transaction::Account(signed_tx.clone())),
        ("Resolve", Transaction::Resolve { job_id: h }),
    ];
    for (name, t) in &transactions {
        let index = borsh::to_vec(t).expect("encodes")[0];
        let kind = serde_json::to_value(t).expect("json")["kind"].as_str().expect("a kind").to_owned();
        let row = format!("| {index} | `{name}` | `{kind}` |");
        assert!(doc.contains(&row), "PROOFS.md lacks the row {row}");
    }
    assert_eq!(borsh::to_vec(&transactions[3].1).expect("encodes").len(), 33, "a Resolve is 33 bytes");
    let actions = [
        ("Transfer", Action::Transfer { to: pk, amount: 1 }),
        (
            "RegisterProvider",
            Action::RegisterProvider { stake: 1, price_per_fuel: 1, capacity: 1, region: String::new() },
        ),
        ("UpdatePrice", Action::UpdatePrice { price_per_fuel: 1 }),
        ("Unbond", Action::Unbond { amount: 1 }),
        ("Challenge", Action::Challenge { job_id: h, bond: 1 }),
        ("UpdateRegion", Action::UpdateRegion { region: String::new() }),
    ];
    for (name, a) in &actions {
        let index = borsh::to_vec(a).expect("encodes")[0];
        let kind = serde_json::to_value(a).expect("json")["kind"].as_str().expect("a kind").to_owned();
        let row = format!("| {index} | `{name}` | `{kind}` |");
        assert!(doc.contains(&row), "PROOFS.md lacks the row {row}");
        // The fields follow in the documented order: the JSON (declaration) order.
        let fields: Vec<String> = json_field_order(a).into_iter().filter(|f| f != "kind").collect();
        let cells = doc.lines().find(|l| l.starts_with(&row)).expect("the row");
        let documented: Vec<&str> = cells.split('`').skip(5).step_by(2).collect();
        assert_eq!(documented, fields, "the fields of {name}");
    }
    for status in JobStatus::ALL {
        let item = format!("`{}` {}", borsh::to_vec(&status).expect("encodes")[0], status.as_str());
        assert!(PROOFS_MD.contains(&item), "PROOFS.md lacks the status {item}");
    }

    // Field order of the tabled records.
    let header = super::sample_proof().0.header;
    for (intro, order) in [
        ("`ResultClaim` — signed", json_field_order(&claim)),
        ("`JobOffer` — signed", json_field_order(&offer.offer)),
        ("`Tx` — an account's", json_field_order(&signed_tx.tx)),
        ("`BlockHeader`:", json_field_order(&header)),
    ] {
        assert_eq!(table_fields(doc, intro), order, "the fields of {intro}");
    }

    // Signing domains: every tag is in the table, with the record it signs.
    for (domain, record) in [
        (Domain::JobOffer, "JobOffer"),
        (Domain::JobResult, "ResultClaim"),
        (Domain::Tx, "Tx"),
        (Domain::Vote, "Vote"),
        (Domain::Proposal, "Proposal"),
    ] {
        let row = format!("| `{}` | `{record}` |", std::str::from_utf8(domain.tag()).expect("ASCII"));
        assert!(doc.contains(&row), "PROOFS.md lacks the domain row {row}");
    }

    // Identifiers.
    assert_eq!(Hash::of_borsh(&None::<Commit>).0, hash_after(doc, "`H(0x00)` ="));
    let commit = super::sample_proof().0.commit;
    let mut some = vec![1];
    some.extend(borsh::to_vec(&commit).expect("encodes"));
    assert_eq!(Hash::of_borsh(&Some(commit)), Hash::of(&some), "`H(0x01 || borsh(commit))`");
    assert_eq!(offer.job_id(), Hash::of_borsh(&offer), "job id: the signed offer alone");
    let mut offer_tx = vec![0];
    offer_tx.extend(borsh::to_vec(&offer).expect("encodes"));
    assert_eq!(transactions[0].1.hash(), Hash::of(&offer_tx), "an offer's transaction hash");
    assert_eq!(
        hex::encode(Hash::of_borsh(&offer).0),
        hex::encode(hash_after(PROOFS_MD, "whose job id is")),
        "the job id of the offer test vector"
    );
}

// ---- STATE.md ----

fn state_example() -> &'static str {
    section(STATE_MD, "### Worked example")
}

/// The documented entries: `(key, value)` lines of the first block of the worked example.
fn documented_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    code_blocks(state_example())[0]
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let key = hex::decode(w.next().expect("a key")).expect("hex");
            let value = hex::decode(w.next().expect("a value")).expect("hex");
            (key, value)
        })
        .collect()
}

fn documented_proof() -> StateProof {
    let json =
        code_blocks(state_example()).into_iter().find(|b| b.trim_start().starts_with('{')).expect("a JSON state proof");
    serde_json::from_str(json).expect("the documented state proof parses")
}

/// The worked example verifies by the documented algorithm (with the documented intermediate
/// hashes), by the code, and is what a node's tree gives for these entries today.
#[test]
fn the_worked_state_proof_of_state_md_verifies_by_the_documented_algorithm() {
    let genesis = fixture_genesis();
    let entries = documented_entries();
    let proof = documented_proof();
    let root = proof.header.state_root.0;

    // The constants the document spells out are the ones implemented above.
    for constant in [&b"JMT::LeafNode"[..], b"JMT::IntrnalNode", by_the_doc::PLACEHOLDER] {
        let ascii = std::str::from_utf8(constant).expect("ASCII");
        assert!(STATE_MD.contains(&format!("`{ascii}`")), "STATE.md spells out {ascii}");
        assert!(STATE_MD.contains(&format!("`{}`", hex::encode(constant))), "STATE.md gives {ascii} in hex");
    }

    // The root, from the entries, by the document's recursive rule and by the code.
    let hashed: Vec<_> = entries.iter().map(|(k, v)| (by_the_doc::sha256(&[k]), by_the_doc::sha256(&[v]))).collect();
    assert_eq!(by_the_doc::root_of(&hashed), root);
    assert_eq!(state_tree::MemoryTree::root_of(&entries).expect("root").0, root);
    assert_eq!(hash_after(state_example(), "state root"), root);

    // The proof by the document, step by step.
    let blocks = code_blocks(state_example());
    let value = proof.value.as_ref().map(|v| v.0.as_slice());
    assert_eq!(entries.iter().find(|(k, _)| *k == proof.key).map(|(_, v)| v.as_slice()), value);
    let steps = by_the_doc::verify(&root, &proof.key, value, &proof.proof).expect("verifies by the document");
    let walk = blocks.iter().find(|b| b.contains("h0 ")).expect("the walk");
    let documented: Vec<Vec<u8>> = (0..steps.len()).flat_map(|i| labelled(walk, &format!("h{i}"))).collect();
    assert_eq!(documented, steps.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
    let breakdown = blocks.iter().find(|b| b.contains("leaf: present")).expect("the annotated proof bytes");
    assert_eq!(annotated_bytes(breakdown), proof.proof, "the annotated bytes are the JSON's proof");
    assert_eq!(hash_after(walk, "key hash"), by_the_doc::sha256(&[&proof.key]));
    assert!(by_the_doc::verify(&root, &proof.key, Some(b"other"), &proof.proof).is_err());
    assert!(by_the_doc::verify(&root, &proof.key, None, &proof.proof).is_err());

    // By the code, against the fixture genesis.
    let (proven, height) = proof.verify(&genesis).expect("the documented state proof verifies");
    assert_eq!((proven.as_deref(), height), (value, proof.header.height));

    // The absence proofs.
    let absent = blocks.iter().find(|b| b.contains("absent ")).expect("the absence proofs");
    let keys = labelled(absent, "absent");
    let proofs = labelled(absent, "proof");
    assert_eq!((keys.len(), proofs.len()), (2, 2));
    let (tree, _) = state_tree::MemoryTree::with_genesis(&entries).expect("tree");
    let tree = jmt::JellyfishMerkleTree::<_, Sha256>::new(&tree);
    let mut kinds = vec![];
    for (key, bytes) in keys.iter().zip(&proofs) {
        by_the_doc::verify(&root, key, None, bytes).expect("absent by the document");
        assert!(by_the_doc::verify(&root, key, Some(b""), bytes).is_err());
        kinds.push(by_the_doc::decode(bytes).expect("decodes").leaf.is_some());
        let sp = StateProof { key: key.clone(), value: None, proof: bytes.clone(), ..proof.clone() };
        assert_eq!(sp.verify(&genesis).expect("absent by the code"), (None, proof.header.height));
        let (v, p) = tree.get_with_proof(state_tree::key_hash(key), 0).expect("proof");
        assert_eq!((v, borsh::to_vec(&p).expect("encodes")), (None, bytes.clone()), "a node proves it so today");
    }
    kinds.sort();
    assert_eq!(kinds, [false, true], "one proof ends at an empty position, one at another key's leaf");
    let (v, p) = tree.get_with_proof(state_tree::key_hash(&proof.key), 0).expect("proof");
    assert_eq!(v.as_deref(), value);
    assert_eq!(borsh::to_vec(&p).expect("encodes"), proof.proof, "a node proves it so today");

    // The JSON is exactly what serde writes, field for field.
    let json = code_blocks(state_example()).into_iter().find(|b| b.trim_start().starts_with('{')).expect("json");
    assert_eq!(serde_json::to_string_pretty(&proof).expect("json"), json.trim_end());
    let mut without_value = serde_json::to_value(&proof).expect("json");
    without_value.as_object_mut().expect("object").remove("value");
    let read: StateProof = serde_json::from_value(without_value).expect("`value` may be left out");
    assert_eq!(read.value, None);
}

/// Beyond the example: on a tree of a few hundred entries with deletions, the documented root
/// rule gives the tree's root and the documented algorithm accepts exactly the tree's proofs.
#[test]
fn the_documented_state_proof_algorithm_agrees_with_the_tree() {
    let entry = |i: u32| (i.to_be_bytes().to_vec(), u64::from(i).wrapping_mul(0x9e37_79b9).to_le_bytes().to_vec());
    let mut tree = state_tree::MemoryTree::default();
    let first: Vec<StateChange> = (0..300).map(|i| (entry(i).0, Some(entry(i).1))).collect();
    state_tree::StateCommitment::root_after(&mut tree, &first, 0).expect("v0");
    let second: Vec<StateChange> = (0..300)
        .filter(|i| i % 3 == 0)
        .map(|i| (entry(i).0, None))
        .chain((300..340).map(|i| (entry(i).0, Some(entry(i).1))))
        .collect();
    let root = state_tree::StateCommitment::root_after(&mut tree, &second, 1).expect("v1").0;
    let live: Vec<u32> = (0..340).filter(|i| *i >= 300 || i % 3 != 0).collect();
    let hashed: Vec<_> =
        live.iter().map(|&i| (by_the_doc::sha256(&[&entry(i).0]), by_the_doc::sha256(&[&entry(i).1]))).collect();
    assert_eq!(by_the_doc::root_of(&hashed), root, "the root is the documented rule's");

    let jmt = jmt::JellyfishMerkleTree::<_, Sha256>::new(&tree);
    let (mut with_leaf, mut empty) = (0, 0);
    for i in 0..400 {
        let (key, value) = entry(i);
        let (found, proof) = jmt.get_with_proof(state_tree::key_hash(&key), 1).expect("proof");
        let bytes = borsh::to_vec(&proof).expect("encodes");
        if live.contains(&i) {
            assert_eq!(found.as_ref(), Some(&value));
            by_the_doc::verify(&root, &key, Some(&value), &bytes).expect("present");
            assert!(by_the_doc::verify(&root, &key, None, &bytes).is_err());
            assert!(by_the_doc::verify(&root, &key, Some(b"x"), &bytes).is_err());
        } else {
            assert_eq!(found, None);
            by_the_doc::verify(&root, &key, None, &bytes).expect("absent");
            assert!(by_the_doc::verify(&root, &key, Some(&value), &bytes).is_err());
            if by_the_doc::decode(&bytes).expect("decodes").leaf.is_some() { with_leaf += 1 } else { empty += 1 }
        }
    }
    assert!(with_leaf > 0 && empty > 0, "both kinds of absence proof were checked ({with_leaf}, {empty})");
}

/// Prints the worked examples' values from their definitions (run by hand, then paste into the
/// documents, when a format changes on purpose): the transfer of PROOFS.md and the state proofs
/// of STATE.md.
#[test]
#[ignore = "prints the documents' worked examples"]
fn print_worked_examples() {
    let key = |seed: u8| Keypair::from_seed([seed; 32]);
    let genesis = fixture_genesis();
    let chain_id = genesis.chain_id();

    let tx = Tx {
        version: FORMAT_VERSION,
        chain_id,
        sender: key(1).public(),
        nonce: 1,
        fee: 1,
        action: Action::Transfer { to: key(2).public(), amount: 5 },
    };
    let tx = Transaction::Account(tx.sign(&key(1)));
    println!("transfer {}", hex::encode(borsh::to_vec(&tx).expect("encodes")));
    println!("transaction hash {}\nleaf hash {}", tx.hash(), tx.leaf_hash());
    println!("{}\n{}", serde_json::to_string_pretty(&tx).expect("json"), key(1).to_json());

    let account = |seed: u8| {
        let mut k = vec![1];
        k.extend_from_slice(&key(seed).public().0);
        k
    };
    let value = |balance: u64, nonce: u64| [balance.to_le_bytes(), nonce.to_le_bytes()].concat();
    let entries = vec![
        (vec![0], 7u64.to_le_bytes().to_vec()),
        (account(1), value(1000, 2)),
        (account(2), value(5, 0)),
        (account(3), value(70, 1)),
        (account(4), value(0, 9)),
    ];
    for (k, v) in &entries {
        println!("{} {}", hex::encode(k), hex::encode(v));
    }
    let (tree, root) = state_tree::MemoryTree::with_genesis(&entries).expect("tree");
    let validators: Vec<Keypair> = (10..14).map(key).collect();
    let header = BlockHeader {
        version: FORMAT_VERSION,
        chain_id,
        height: 7,
        parent_hash: Hash::of(b"parent"),
        time_ms: 1_700_000_000_000,
        proposer: validators[0].public(),
        tx_root: Hash::ZERO,
        receipt_root: Hash::ZERO,
        state_root: root,
        last_commit_hash: Hash::of(b"last"),
        tx_count: 0,
        receipt_count: 0,
    };
    let commit = super::signed_commit(chain_id, &header, &validators[..3]);
    let jmt = jmt::JellyfishMerkleTree::<_, Sha256>::new(&tree);
    for seed in [2, 6, 5] {
        let (v, p) = jmt.get_with_proof(state_tree::key_hash(&account(seed)), 0).expect("proof");
        let proof = StateProof {
            version: FORMAT_VERSION,
            key: account(seed),
            value: v.map(StateValue),
            proof: borsh::to_vec(&p).expect("encodes"),
            header: header.clone(),
            commit: commit.clone(),
        };
        proof.verify(&genesis).expect("verifies");
        let steps = by_the_doc::verify(&root.0, &proof.key, proof.value.as_ref().map(|v| v.0.as_slice()), &proof.proof);
        println!("{}", serde_json::to_string_pretty(&proof).expect("json"));
        println!("key hash {}", hex::encode(by_the_doc::sha256(&[&proof.key])));
        for (i, s) in steps.expect("verifies by the document").iter().enumerate() {
            println!("h{i} {}", hex::encode(s));
        }
    }
}
