//! The checksum every file carries: SHA-256 of the whole file, stored in the metadata.
//!
//! The metadata entry `checksum` holds `sha256:` and 64 lowercase hexadecimal digits: the
//! SHA-256 of the file's bytes (length, header with the tensor table and metadata, padding,
//! tensor data) as they are with those 64 digits replaced by ASCII `0`. A writer puts the
//! zeros in, hashes the file and writes the digits over them (same length, so nothing
//! moves); a reader finds the entry, puts the zeros back and compares. The entry is always
//! written as the exact bytes [`TOKEN`] followed by the digits and `"`: compact JSON, and the
//! quote-colon-quote of a key cannot occur inside another (escaped) string of the header.

use sha2::{Digest, Sha256};

/// The metadata key.
pub(super) const CHECKSUM_KEY: &str = "checksum";

/// The bytes in front of the digits, as written in the header.
const TOKEN: &[u8] = b"\"checksum\":\"sha256:";

/// Hexadecimal digits of a SHA-256.
const DIGITS: usize = 64;

/// The value written before the digest is known.
pub(super) fn placeholder() -> String {
    format!("sha256:{}", "0".repeat(DIGITS))
}

/// Where the digits of the first checksum entry in `bytes` begin, if there is one.
fn digits_at(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(TOKEN.len())
        .position(|w| w == TOKEN)
        .map(|i| i + TOKEN.len())
}

/// SHA-256 of `bytes` with the 64 bytes at `at` read as ASCII `0`, in lowercase hex.
fn digest(bytes: &[u8], at: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..at]);
    hasher.update([b'0'; DIGITS]);
    hasher.update(&bytes[at + DIGITS..]);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the checksum of a file whose metadata holds [`placeholder`] over it.
///
/// # Panics
/// If `bytes` holds no placeholder (the writer always puts one in).
pub(super) fn seal(bytes: &mut [u8]) {
    let at = digits_at(bytes)
        .filter(|&at| bytes.get(at..at + DIGITS).is_some())
        .expect("the writer puts the checksum placeholder in the header");
    let sum = digest(bytes, at);
    bytes[at..at + DIGITS].copy_from_slice(sum.as_bytes());
}

/// Checks the checksum of a file, before anything in it is parsed. Returns the stored
/// value (`sha256:` and the digits) if the file has one and it matches, `None` if the file
/// has none (which the caller accepts only from files of format version 1).
///
/// # Errors
/// The reason, naming the checksum, if the entry is malformed or the bytes do not match.
pub(super) fn verify(bytes: &[u8]) -> Result<Option<String>, String> {
    let Some(at) = digits_at(bytes) else {
        return Ok(None);
    };
    let stored = bytes
        .get(at..at + DIGITS + 1)
        .filter(|d| {
            d[..DIGITS]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
                && d[DIGITS] == b'"'
        })
        .ok_or("the checksum is not `sha256:` and 64 lowercase hexadecimal digits: the file is damaged")?;
    let stored = String::from_utf8_lossy(&stored[..DIGITS]).into_owned();
    let actual = digest(bytes, at);
    if actual != stored {
        return Err(format!(
            "checksum mismatch: the file's SHA-256 is {actual}, its metadata records {stored}; \
             the file was damaged or changed after it was saved (a flipped, lost or added byte): \
             restore it from a copy or save it again"
        ));
    }
    Ok(Some(format!("sha256:{stored}")))
}
