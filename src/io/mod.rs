//! Saving and loading: model files and training checkpoints, written with
//! `crate::fs::write_atomic`.
//!
//! Both kinds of file are [safetensors](https://huggingface.co/docs/safetensors) files: an
//! 8-byte little-endian header length, a JSON header (tensor names, dtypes, shapes, offsets,
//! and a `__metadata__` map of strings), then the raw little-endian tensor data. The
//! metadata carries the format name and version, the element type, the architecture and,
//! for checkpoints, the training state. `docs/format.md` documents every key and tensor.
//!
//! Every file carries a checksum of all its bytes, checked before anything else is read,
//! and the same content always gives the same bytes (sorted metadata keys, tensors in a
//! fixed order).
//!
//! Loading trusts nothing in the file: every size and shape is checked against the bytes
//! actually present and against the architecture before anything is allocated, and every
//! failure is a typed [`Error`](crate::Error).
//!
//! The files of this module, each using the ones above it:
//! - `checksum.rs`: the SHA-256 of the whole file every file carries in its metadata:
//!   sealing a file, and checking one before anything in it is parsed.
//! - `container.rs`: the safetensors container: the list of tensors to write, the checked
//!   reader every load goes through, the offset check, element types, reading a file.
//! - `model_file.rs`: model files: `Autoencoder::save`, `to_bytes`, `load`,
//!   `load_converted`, `from_bytes`, and the architecture metadata.
//! - `checkpoint.rs`: checkpoint files: [`Checkpoint`](crate::Checkpoint), writing and
//!   decoding them, the encoding of the generator's state.

pub(crate) mod checkpoint;
mod checksum;
mod container;
mod model_file;

/// The version of the file format this build writes, and the newest it reads.
///
/// Version 2 is described in `docs/format.md`: version 1 with a checksum (SHA-256 of the
/// whole file) in the metadata, required from version 2 on. A file with a higher version
/// is refused with [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion); older
/// versions stay readable (version 1 files, which have no checksum, unchecked).
pub const FORMAT_VERSION: u32 = 2;

/// Value of the metadata key `format`.
const FORMAT_NAME: &str = "autoencoder";
