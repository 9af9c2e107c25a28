//! Cairn example job: the output is the input with ASCII `a`..=`z` uppercased; every
//! other byte is unchanged.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;

fn uppercase(input: &[u8]) -> Vec<u8> {
    input.to_ascii_uppercase()
}

cairn_sdk::job!(uppercase);

#[cfg(test)]
mod tests {
    #[test]
    fn uppercases_ascii_only() {
        assert_eq!(super::uppercase("hello, Cairn! é".as_bytes()), "HELLO, CAIRN! é".as_bytes());
    }
}
