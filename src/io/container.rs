//! The safetensors container: writing a list of tensors with metadata, and the checked
//! reader every load goes through.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::checksum::{self, CHECKSUM_KEY};
use crate::io::{FORMAT_NAME, FORMAT_VERSION};

/// Tensors to write: name, shape, element type, little-endian bytes.
pub(super) struct TensorList {
    dtype: Dtype,
    tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)>,
    /// The first non-finite value pushed: tensor name, flat index, value.
    non_finite: Option<(String, usize, f64)>,
}

/// The most header bytes safetensors readers accept.
const MAX_HEADER: usize = 100_000_000;

impl TensorList {
    pub(super) fn new<T: Float>() -> Self {
        TensorList {
            dtype: dtype_of::<T>(),
            tensors: Vec::new(),
            non_finite: None,
        }
    }

    /// Adds a float tensor. A non-finite value is remembered, and [`TensorList::serialize`]
    /// then refuses to write the file (a reader would refuse it).
    pub(super) fn push<T: Float>(
        &mut self,
        name: String,
        shape: Vec<usize>,
        values: impl Iterator<Item = T>,
    ) {
        let mut bytes = Vec::new();
        for (i, v) in values.enumerate() {
            let v = v.as_f64();
            if !v.is_finite() && self.non_finite.is_none() {
                self.non_finite = Some((name.clone(), i, v));
            }
            if self.dtype == Dtype::F32 {
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.tensors.push((name, shape, self.dtype, bytes));
    }

    /// Adds an `f64` tensor whatever the list's element type (for values that must keep
    /// every bit, such as a scaler's). Non-finite values are refused as in
    /// [`TensorList::push`].
    pub(super) fn push_f64(&mut self, name: String, values: &[f64]) {
        if let Some((i, &v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            if self.non_finite.is_none() {
                self.non_finite = Some((name.clone(), i, v));
            }
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors
            .push((name, vec![values.len()], Dtype::F64, bytes));
    }

    pub(super) fn push_indices(&mut self, name: &str, values: &[usize]) {
        let bytes = values
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect();
        self.tensors
            .push((name.to_string(), vec![values.len()], Dtype::U64, bytes));
    }

    /// The file: a safetensors container holding the tensors and `metadata` plus its
    /// checksum. The same tensors and metadata always give the same bytes: metadata keys in
    /// sorted order, tensors ordered by element size (8-byte types first, so every tensor
    /// starts aligned) and then by name, compact JSON, the header padded with spaces to a
    /// multiple of 8 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a value is NaN or infinite (the file could not be
    /// loaded), or the header exceeds the 100 MB safetensors allows (never for real models).
    pub(super) fn serialize(mut self, mut metadata: BTreeMap<String, String>) -> Result<Vec<u8>> {
        if let Some((name, i, v)) = &self.non_finite {
            return Err(Error::InvalidConfig(format!(
                "cannot save: tensor `{name}` holds the non-finite value {v} at flat index {i}, \
                 and a file holding it could not be loaded; nothing was written"
            )));
        }
        metadata.insert(CHECKSUM_KEY.into(), checksum::placeholder());
        self.tensors.sort_by(|a, b| {
            let size = |d: Dtype| d.bitsize();
            size(b.2).cmp(&size(a.2)).then_with(|| a.0.cmp(&b.0))
        });
        let mut header = format!("{{\"__metadata__\":{}", to_json(&metadata)?);
        let mut offset = 0;
        for (name, shape, dtype, bytes) in &self.tensors {
            let elements: usize = shape.iter().product();
            debug_assert_eq!(elements * dtype.bitsize() / 8, bytes.len(), "{name}");
            let end = offset + bytes.len();
            header += &format!(
                ",{}:{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
                to_json(name)?,
                to_json(dtype)?,
                to_json(shape)?,
            );
            offset = end;
        }
        header.push('}');
        let padded = header.len().next_multiple_of(8);
        if padded > MAX_HEADER {
            return Err(Error::InvalidConfig(format!(
                "cannot encode the tensors: the file header would take {padded} bytes, over the \
                 {MAX_HEADER} safetensors allows"
            )));
        }
        let mut bytes = Vec::with_capacity(8 + padded + offset);
        bytes.extend_from_slice(&(padded as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(8 + padded, b' ');
        for (_, _, _, data) in &self.tensors {
            bytes.extend_from_slice(data);
        }
        checksum::seal(&mut bytes);
        Ok(bytes)
    }
}

pub(super) fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::InvalidConfig(format!("cannot write file metadata: {e}")))
}

fn dtype_of<T: Float>() -> Dtype {
    if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

/// Reads a whole file.
pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// A parsed file: tensors, metadata, and which tensors have been read.
pub(super) struct Reader<'a> {
    path: &'a Path,
    pub(super) tensors: SafeTensors<'a>,
    meta: HashMap<String, String>,
    file_dtype: Dtype,
    taken: HashSet<String>,
}

impl<'a> Reader<'a> {
    /// Checks that the file holds elements of type `T` (files are never converted silently).
    pub(super) fn expect_dtype<T: Float>(&self) -> Result<()> {
        if self.file_dtype == dtype_of::<T>() {
            return Ok(());
        }
        let found = if self.file_dtype == Dtype::F32 {
            "f32"
        } else {
            "f64"
        };
        Err(Error::ElementType {
            path: self.path.to_path_buf(),
            found: found.into(),
            expected: T::NAME,
        })
    }

    /// Checks the checksum, parses the container, and checks format, version, content and
    /// element type.
    ///
    /// The checksum comes first, before any parsing: a file that has one is refused on any
    /// change to its bytes, whatever the change would have made of it. A file without one
    /// is read only if it says it is of format version 1 (written before checksums).
    pub(super) fn open(bytes: &'a [u8], path: &'a Path, content: &str) -> Result<Self> {
        let fail = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let sealed = checksum::verify(bytes)
            .map_err(|reason| fail(format!("{reason}{}", container_problem(bytes))))?;
        check_offsets(bytes).map_err(&fail)?;
        let not_safetensors = |e: safetensors::SafeTensorError| {
            fail(format!(
                "not a readable safetensors file ({e}), and no checksum was found in it; the \
                 file may be damaged, truncated or not a model saved by this crate: save it \
                 again with Autoencoder::save"
            ))
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT_NAME) {
            return Err(fail(format!(
                "a safetensors file, but not one saved by this crate (its metadata has no \
                 `format: {FORMAT_NAME}`); build the model and copy the weights in by hand"
            )));
        }
        let version = meta.get("format_version").map(String::as_str).unwrap_or("");
        let version = match version.parse::<u64>() {
            Ok(v) if v > u64::from(FORMAT_VERSION) => {
                return Err(Error::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Ok(v) if v >= 1 => v,
            _ => {
                return Err(fail(format!(
                    "format_version `{version}` is not a version number >= 1"
                )))
            }
        };
        match (sealed, meta.get(CHECKSUM_KEY)) {
            (Some(checked), Some(stored)) if checked == *stored => {}
            (None, None) if version == 1 => {} // written before checksums
            (None, None) => {
                return Err(fail(format!(
                    "no checksum: files of format version {version} carry one in the metadata \
                     entry `{CHECKSUM_KEY}`, and this one has lost it; the file is damaged: \
                     restore it from a copy or save it again"
                )))
            }
            (_, stored) => {
                return Err(fail(format!(
                    "the metadata entry `{CHECKSUM_KEY}` ({stored:?}) is not the `sha256:` and \
                     64 lowercase hexadecimal digits the file was checked against; the file is \
                     damaged: restore it from a copy or save it again"
                )))
            }
        }
        let found = meta.get("content").map(String::as_str).unwrap_or("");
        if found != content {
            let hint = match found {
                "model" => "load it with Autoencoder::load",
                "checkpoint" => "load it with Checkpoint::load (its model is Checkpoint::model)",
                _ => "the file is damaged",
            };
            return Err(fail(format!(
                "content is `{found}`, expected `{content}`: {hint}"
            )));
        }
        let file_dtype = match meta.get("dtype").map(String::as_str) {
            Some("f32") => Dtype::F32,
            Some("f64") => Dtype::F64,
            other => {
                return Err(fail(format!(
                    "dtype is {other:?}; expected \"f32\" or \"f64\""
                )))
            }
        };
        Ok(Reader {
            path,
            tensors,
            meta,
            file_dtype,
            taken: HashSet::new(),
        })
    }

    pub(super) fn fail(&self, reason: String) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// Metadata entry `key`, parsed as JSON.
    pub(super) fn json<M: serde::de::DeserializeOwned>(&self, key: &str) -> Result<M> {
        let text = self
            .meta
            .get(key)
            .ok_or_else(|| self.fail(format!("metadata entry `{key}` is missing")))?;
        serde_json::from_str(text).map_err(|e| self.fail(format!("metadata entry `{key}`: {e}")))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// The raw view of tensor `name`, checked to have exactly `shape` and dtype `dtype`.
    pub(super) fn view(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<TensorView<'a>> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.fail(format!("tensor `{name}` is missing")))?;
        if view.dtype() != dtype {
            return Err(self.fail(format!(
                "tensor `{name}` has dtype {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        if view.shape() != shape {
            return Err(self.fail(format!(
                "tensor `{name}` has shape {:?}, the architecture needs {shape:?}",
                view.shape()
            )));
        }
        self.taken.insert(name.to_string());
        Ok(view)
    }

    /// Tensor `name` of the file's element type as `T` values, in row-major order, checked
    /// for shape and finiteness. Allocates only after the shape matched, so the size is that
    /// of bytes present in the file.
    /// The `f64` tensor `name` of `len` values, whatever the file's element type, all finite.
    pub(super) fn f64s(&mut self, name: &str, len: usize) -> Result<Vec<f64>> {
        let view = self.view(name, &[len], Dtype::F64)?;
        let values: Vec<f64> = view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(self.fail(format!(
                "tensor `{name}` holds the non-finite value {v} at flat index {i}"
            )));
        }
        Ok(values)
    }

    /// Whether the metadata has an entry `key`.
    pub(super) fn has_meta(&self, key: &str) -> bool {
        self.meta.contains_key(key)
    }

    pub(super) fn floats<T: Float>(&mut self, name: &str, shape: &[usize]) -> Result<Vec<T>> {
        let view = self.view(name, shape, self.file_dtype)?;
        let data = view.data();
        let values: Vec<T> = if self.file_dtype == Dtype::F32 {
            data.chunks_exact(4)
                .map(|c| T::cast(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
                .collect()
        } else {
            data.chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    T::cast(f64::from_le_bytes(b))
                })
                .collect()
        };
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(self.fail(format!(
                "tensor `{name}` holds the non-finite value {v} at flat index {i}{}; \
                 the model that was saved had diverged: retrain it",
                if self.file_dtype == dtype_of::<T>() {
                    ""
                } else {
                    " after conversion"
                }
            )));
        }
        Ok(values)
    }

    /// Checks that every tensor in the file has been read.
    pub(super) fn finish(&self) -> Result<()> {
        if self.tensors.len() == self.taken.len() {
            return Ok(());
        }
        let mut extra: Vec<&str> = self
            .tensors
            .names()
            .into_iter()
            .filter(|n| !self.taken.contains(*n))
            .collect();
        extra.sort_unstable();
        extra.truncate(5);
        Err(self.fail(format!("unexpected tensors {extra:?}")))
    }
}

/// What else is wrong with a file whose checksum does not match, for the message: that it
/// is truncated, not a safetensors file, or not marked as one of this crate's; empty if
/// nothing else is.
fn container_problem(bytes: &[u8]) -> String {
    if let Err(reason) = check_offsets(bytes) {
        return format!(" ({reason})");
    }
    match SafeTensors::read_metadata(bytes) {
        Err(e) => {
            format!(" (its safetensors container is broken too, {e}: the file may be truncated)")
        }
        Ok((_, header))
            if header
                .metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .map(String::as_str)
                != Some(FORMAT_NAME) =>
        {
            format!(" (and its metadata has no `format: {FORMAT_NAME}`: it may not be a file saved by this crate)")
        }
        Ok(_) => String::new(),
    }
}

/// Checks, before the safetensors parser sees them, that every tensor's `data_offsets` lie
/// within the file. safetensors 0.8 adds the largest offset to the header length unchecked,
/// so forged offsets near `usize::MAX` overflow (a panic in builds with overflow checks,
/// such as fuzzing builds).
fn check_offsets(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes, shorter than the 8-byte safetensors header length: the file is truncated",
            bytes.len()
        ));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(n);
    let Some(header) = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .and_then(|end| bytes.get(8..end))
    else {
        return Err(format!(
            "header length {n} exceeds the file's {} bytes: the file is truncated or not a \
             safetensors file",
            bytes.len()
        ));
    };
    // Unparsable headers are left to the parser, which reports them.
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(header)
    else {
        return Ok(());
    };
    for (name, info) in &map {
        let offsets = info.get("data_offsets").and_then(|o| o.as_array());
        for offset in offsets.into_iter().flatten() {
            if offset.as_u64().is_some_and(|o| o > bytes.len() as u64) {
                return Err(format!(
                    "tensor `{name}` has data offset {offset} beyond the file's {} bytes: \
                     the file is truncated or damaged",
                    bytes.len()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_never_written() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut tensors = TensorList::new::<f64>();
            tensors.push("layers.0.bias".into(), vec![3], [0.5, bad, 1.0].into_iter());
            let result = tensors.serialize(BTreeMap::new());
            assert!(
                matches!(&result, Err(Error::InvalidConfig(m)) if m.contains("layers.0.bias") && m.contains("index 1")),
                "{result:?}"
            );
        }
    }

    #[test]
    fn written_files_are_valid_safetensors_with_a_checksum() -> Result<()> {
        let mut tensors = TensorList::new::<f32>();
        tensors.push("b".into(), vec![2, 3], (0..6).map(|i| i as f32));
        tensors.push_indices("a", &[2, 0, 1]);
        tensors.push("a.f32".into(), vec![1], [7.5f32].into_iter());
        let meta = BTreeMap::from([
            ("z".to_string(), "last".to_string()),
            ("a".into(), "1".into()),
        ]);
        let bytes = tensors.serialize(meta)?;
        let parsed = SafeTensors::deserialize(&bytes).expect("safetensors reads it");
        assert_eq!(parsed.tensor("a").expect("a").dtype(), Dtype::U64);
        assert_eq!(parsed.tensor("b").expect("b").shape(), &[2, 3]);
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&bytes[8..8 + n]).expect("utf-8");
        // Sorted metadata, the U64 tensor (8-byte elements) first, then by name.
        let order = [
            "\"a\":\"1\"",
            "\"checksum\"",
            "\"z\"",
            "\"a\":{",
            "\"a.f32\"",
            "\"b\"",
        ];
        let at: Vec<usize> = order.iter().map(|k| header.find(k).expect(k)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{header}");
        assert!(checksum::verify(&bytes).expect("matches").is_some());
        Ok(())
    }

    #[test]
    fn forged_offsets_past_the_end_are_refused() {
        // Eight tensors of 2^61 - 1 bytes end at 2^64 - 8; safetensors adds the header
        // length to that unchecked (an overflow panic in debug builds).
        let big = (1usize << 61) - 1;
        let mut header = String::from("{");
        for i in 0..8 {
            header += &format!(
                "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{big}],\"data_offsets\":[{},{}]}},",
                big * i,
                big * (i + 1)
            );
        }
        header.pop();
        header.push('}');
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        let result = Reader::open(&bytes, Path::new("<bytes>"), "model").map(|_| ());
        assert!(
            matches!(&result, Err(Error::Format { reason, .. }) if reason.contains("beyond")),
            "{result:?}"
        );
    }
}
