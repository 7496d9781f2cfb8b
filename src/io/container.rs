//! The safetensors container: writing a list of tensors with metadata, and the checked
//! reader every load goes through.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{FORMAT_NAME, FORMAT_VERSION};

/// Tensors to write: name, shape, little-endian bytes.
pub(super) struct TensorList {
    dtype: Dtype,
    tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)>,
}

impl TensorList {
    pub(super) fn new<T: Float>() -> Self {
        TensorList {
            dtype: dtype_of::<T>(),
            tensors: Vec::new(),
        }
    }

    pub(super) fn push<T: Float>(
        &mut self,
        name: String,
        shape: Vec<usize>,
        values: impl Iterator<Item = T>,
    ) {
        let mut bytes = Vec::new();
        for v in values {
            if self.dtype == Dtype::F32 {
                bytes.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.as_f64().to_le_bytes());
            }
        }
        self.tensors.push((name, shape, self.dtype, bytes));
    }

    pub(super) fn push_indices(&mut self, name: &str, values: &[usize]) {
        let bytes = values
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect();
        self.tensors
            .push((name.to_string(), vec![values.len()], Dtype::U64, bytes));
    }

    pub(super) fn serialize(self, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
        let views = self
            .tensors
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|views| safetensors::serialize(views, Some(metadata)));
        views.map_err(|e| Error::InvalidConfig(format!("cannot encode the tensors: {e}")))
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

    /// Parses the container and checks format, version, content and element type.
    pub(super) fn open(bytes: &'a [u8], path: &'a Path, content: &str) -> Result<Self> {
        let fail = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        check_offsets(bytes).map_err(&fail)?;
        let not_safetensors = |e: safetensors::SafeTensorError| {
            fail(format!(
                "not a readable safetensors file ({e}); the file may be truncated or not a model \
                 saved by this crate: save it again with Autoencoder::save"
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
        match version.parse::<u64>() {
            Ok(v) if v > u64::from(FORMAT_VERSION) => {
                return Err(Error::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Ok(v) if v >= 1 => {}
            _ => {
                return Err(fail(format!(
                    "format_version `{version}` is not a version number >= 1"
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
