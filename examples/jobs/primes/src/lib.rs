//! Cairn example job: counts the primes up to N.
//!
//! Input: N in decimal ASCII (surrounding whitespace ignored), 0 ≤ N ≤ 4 294 967 295.
//! Output: the count, in decimal ASCII. Compute-heavy on purpose (a segmented sieve of
//! Eratosthenes over odd numbers: about N·ln ln N / 2 steps, memory O(√N)); the fuel
//! limit bounds the run. A malformed N aborts the job (status Trap).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

/// Odd numbers sieved per segment: 32 KiB of flags.
const SEGMENT_ODDS: u64 = 32 * 1024;

fn parse_n(input: &[u8]) -> Option<u32> {
    let digits = input.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

/// The odd primes up to `limit`, by a plain sieve (`limit` is at most 65 535 here).
fn odd_primes_up_to(limit: u64) -> Vec<u64> {
    let mut composite = vec![false; limit as usize + 1];
    let mut primes = Vec::new();
    for p in (3..=limit).step_by(2) {
        if composite[p as usize] {
            continue;
        }
        primes.push(p);
        for multiple in (p * p..=limit).step_by(2 * p as usize) {
            composite[multiple as usize] = true;
        }
    }
    primes
}

/// π(n): the number of primes ≤ n.
fn count_primes(n: u32) -> u64 {
    let n = u64::from(n);
    if n < 2 {
        return 0;
    }
    let root = n.isqrt();
    let base = odd_primes_up_to(root);
    let mut count = 1; // the prime 2
    // Odd number 2i + 1 has index i; indexes 1..=last cover 3..=n.
    let last = (n - 1) / 2;
    let mut is_prime = vec![true; SEGMENT_ODDS as usize];
    let mut low = 1;
    while low <= last {
        let high = (low + SEGMENT_ODDS).min(last + 1);
        let flags = &mut is_prime[..(high - low) as usize];
        flags.fill(true);
        for &p in &base {
            // The first odd multiple of p that is ≥ p² and ≥ the segment's first number.
            let first_number = 2 * low + 1;
            let mut m = (p * p).max(first_number.div_ceil(p) * p);
            if m % 2 == 0 {
                m += p;
            }
            let mut index = (m - 1) / 2;
            while index < high {
                flags[(index - low) as usize] = false;
                index += p;
            }
        }
        count += flags.iter().filter(|&&prime| prime).count() as u64;
        low = high;
    }
    count
}

fn primes(input: &[u8]) -> Vec<u8> {
    let Some(n) = parse_n(input) else {
        cairn_sdk::abort("input must be a decimal number from 0 to 4294967295");
    };
    // Decimal digits of the count, most significant first.
    let mut count = count_primes(n);
    let mut digits = Vec::new();
    loop {
        digits.push(b'0' + (count % 10) as u8);
        count /= 10;
        if count == 0 {
            break;
        }
    }
    digits.reverse();
    digits
}

cairn_sdk::job!(primes);

#[cfg(test)]
mod tests {
    use super::{count_primes, parse_n, primes};

    #[test]
    fn counts_match_known_values() {
        let known = [(0, 0), (1, 0), (2, 1), (3, 2), (10, 4), (100, 25), (65_537, 6543)];
        for (n, pi) in known {
            assert_eq!(count_primes(n), pi, "pi({n})");
        }
        assert_eq!(count_primes(1_000_000), 78_498);
        assert_eq!(primes(b" 1000000\n"), b"78498");
    }

    #[test]
    fn rejects_malformed_numbers() {
        assert_eq!(parse_n(b""), None);
        assert_eq!(parse_n(b"-1"), None);
        assert_eq!(parse_n(b"12a"), None);
        assert_eq!(parse_n(b"4294967296"), None);
        assert_eq!(parse_n(b"4294967295"), Some(u32::MAX));
    }
}
