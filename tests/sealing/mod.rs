//! The file checksum, computed the way `docs/format.md` tells other programs to: for tests
//! that edit a file on purpose and must get past the checksum to the check they aim at.
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// The bytes in front of the 64 hexadecimal digits of the checksum, as files hold them.
pub const TOKEN: &[u8] = b"\"checksum\":\"sha256:";

/// Where the checksum's digits start, if the file has one.
pub fn digits_at(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(TOKEN.len())
        .position(|w| w == TOKEN)
        .map(|i| i + TOKEN.len())
        .filter(|&at| at + 64 <= bytes.len())
}

/// SHA-256 of the file with the checksum's digits read as ASCII `0`, in lowercase hex: the
/// documented recipe.
pub fn checksum_of(bytes: &[u8]) -> Option<String> {
    let at = digits_at(bytes)?;
    let mut zeroed = bytes.to_vec();
    zeroed[at..at + 64].fill(b'0');
    Some(
        Sha256::digest(&zeroed)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Writes the right checksum into a file edited on purpose; false if it has no checksum.
pub fn reseal(bytes: &mut [u8]) -> bool {
    match (digits_at(bytes), checksum_of(bytes)) {
        (Some(at), Some(sum)) => {
            bytes[at..at + 64].copy_from_slice(sum.as_bytes());
            true
        }
        _ => false,
    }
}
