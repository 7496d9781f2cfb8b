//! Saving and loading: model files and training checkpoints, written with
//! `crate::fs::write_atomic`.
//!
//! Both kinds of file are [safetensors](https://huggingface.co/docs/safetensors) files: an
//! 8-byte little-endian header length, a JSON header (tensor names, dtypes, shapes, offsets,
//! and a `__metadata__` map of strings), then the raw little-endian tensor data. The
//! metadata carries the format name and version, the element type, the architecture and,
//! for checkpoints, the training state. `docs/format.md` documents every key and tensor.
//!
//! Loading trusts nothing in the file: every size and shape is checked against the bytes
//! actually present and against the architecture before anything is allocated, and every
//! failure is a typed [`Error`](crate::Error).
//!
//! The files of this module, each using the ones above it:
//! - `container.rs`: the safetensors container: the list of tensors to write, the checked
//!   reader every load goes through, the offset check, element types, reading a file.
//! - `model_file.rs`: model files: `Autoencoder::save`, `to_bytes`, `load`,
//!   `load_converted`, `from_bytes`, and the architecture metadata.
//! - `checkpoint.rs`: checkpoint files: [`Checkpoint`](crate::Checkpoint), writing and
//!   decoding them, the encoding of the generator's state.

pub(crate) mod checkpoint;
mod container;
mod model_file;

/// The version of the file format this build writes, and the newest it reads.
///
/// Version 1 is described in `docs/format.md`. A file with a higher version is refused with
/// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion); older versions stay
/// readable.
pub const FORMAT_VERSION: u32 = 1;

/// Value of the metadata key `format`.
const FORMAT_NAME: &str = "autoencoder";
