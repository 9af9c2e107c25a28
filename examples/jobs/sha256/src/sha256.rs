//! SHA-256 (FIPS 180-4), written out so the job has no dependency but the SDK.
//!
//! Plain Rust with no crate attributes: the vm's benchmark compiles this same file
//! natively (`vm/benches/vm.rs`) to compare the job with native code on equal terms.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// One round: `$w` is this round's message word, `$k` its constant; the eight working
/// variables are named in rotated order instead of being shifted.
macro_rules! round {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr, $g:expr, $h:expr, $k:expr, $w:expr) => {
        let t1 = $h
            .wrapping_add($e.rotate_right(6) ^ $e.rotate_right(11) ^ $e.rotate_right(25))
            .wrapping_add($g ^ ($e & ($f ^ $g)))
            .wrapping_add($k)
            .wrapping_add($w);
        let t2 =
            ($a.rotate_right(2) ^ $a.rotate_right(13) ^ $a.rotate_right(22)).wrapping_add(($a & $b) | ($c & ($a | $b)));
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(t2);
    };
}

/// Sixteen rounds from `K[$base..]`, with the message schedule kept as a rolling window
/// of 16 words (`$w[i]` is word `$base + i`, updated in place when `$expand`).
macro_rules! sixteen_rounds {
    ($s:ident, $w:ident, $base:expr, $expand:expr) => {
        let [a, b, c, d, e, f, g, h] = &mut $s;
        macro_rules! word {
            ($i:expr) => {{
                if $expand {
                    let w15 = $w[($i + 1) & 15];
                    let w2 = $w[($i + 14) & 15];
                    let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
                    let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
                    $w[$i] = $w[$i].wrapping_add(s0).wrapping_add($w[($i + 9) & 15]).wrapping_add(s1);
                }
                $w[$i]
            }};
        }
        round!(*a, *b, *c, *d, *e, *f, *g, *h, K[$base], word!(0));
        round!(*h, *a, *b, *c, *d, *e, *f, *g, K[$base + 1], word!(1));
        round!(*g, *h, *a, *b, *c, *d, *e, *f, K[$base + 2], word!(2));
        round!(*f, *g, *h, *a, *b, *c, *d, *e, K[$base + 3], word!(3));
        round!(*e, *f, *g, *h, *a, *b, *c, *d, K[$base + 4], word!(4));
        round!(*d, *e, *f, *g, *h, *a, *b, *c, K[$base + 5], word!(5));
        round!(*c, *d, *e, *f, *g, *h, *a, *b, K[$base + 6], word!(6));
        round!(*b, *c, *d, *e, *f, *g, *h, *a, K[$base + 7], word!(7));
        round!(*a, *b, *c, *d, *e, *f, *g, *h, K[$base + 8], word!(8));
        round!(*h, *a, *b, *c, *d, *e, *f, *g, K[$base + 9], word!(9));
        round!(*g, *h, *a, *b, *c, *d, *e, *f, K[$base + 10], word!(10));
        round!(*f, *g, *h, *a, *b, *c, *d, *e, K[$base + 11], word!(11));
        round!(*e, *f, *g, *h, *a, *b, *c, *d, K[$base + 12], word!(12));
        round!(*d, *e, *f, *g, *h, *a, *b, *c, K[$base + 13], word!(13));
        round!(*c, *d, *e, *f, *g, *h, *a, *b, K[$base + 14], word!(14));
        round!(*b, *c, *d, *e, *f, *g, *h, *a, K[$base + 15], word!(15));
    };
}

/// The compression function on one 64-byte block, fully unrolled: no bounds checks, no
/// 64-word schedule in memory, every index a constant.
#[inline(always)]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let mut s = *state;
    sixteen_rounds!(s, w, 0, false);
    sixteen_rounds!(s, w, 16, true);
    sixteen_rounds!(s, w, 32, true);
    sixteen_rounds!(s, w, 48, true);
    for (total, v) in state.iter_mut().zip(s) {
        *total = total.wrapping_add(v);
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state = H0;
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        compress(&mut state, block.try_into().expect("chunks_exact yields 64-byte blocks"));
    }
    // Padding: 0x80, zeros, then the length in bits as a big-endian u64; one or two blocks.
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        compress(&mut state, block.try_into().expect("chunks_exact yields 64-byte blocks"));
    }
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}
