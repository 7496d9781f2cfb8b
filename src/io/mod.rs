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
//! failure is a typed [`Error`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::Path;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::fs::write_atomic;
use crate::layers::ParamKind;
use crate::train::history::History;
use crate::train::state::{RunSettings, RunState, RunStateRef};
use crate::{Activation, Autoencoder, Dense, Error, Float, Latent, OptimizerState, Result, Tying};

/// The version of the file format this build writes, and the newest it reads.
///
/// Version 1 is described in `docs/format.md`. A file with a higher version is refused with
/// [`Error::UnsupportedVersion`]; older versions stay readable.
pub const FORMAT_VERSION: u32 = 1;

/// Value of the metadata key `format`.
const FORMAT_NAME: &str = "autoencoder";

/// The architecture, as saved in the metadata key `architecture` (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Architecture {
    /// Input (and output) width.
    n_in: usize,
    /// `layers[..n_encoder]` is the encoder.
    n_encoder: usize,
    /// What the code layer outputs (a Gaussian code layer has `2k` outputs, the decoder
    /// `k` inputs).
    latent: Latent,
    /// Whether decoder weights are the transposes of the encoder's.
    tying: Tying,
    /// Every layer, encoder first.
    layers: Vec<LayerSpec>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerSpec {
    n_out: usize,
    activation: Activation,
}

/// The training state, as saved in the metadata key `training` of a checkpoint (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct TrainingMeta {
    /// The next epoch to run.
    epoch: usize,
    rng: RngMeta,
    since_best: usize,
    best: Option<BestMeta>,
    optimizer: OptimizerMeta,
    history: History,
    /// Loss, batch size, seed and noise of the run; a resume with other settings is refused.
    /// Optional: checkpoints written before it was recorded read as `None` (not checked).
    #[serde(default)]
    settings: Option<RunSettings>,
}

/// ChaCha8 state: seed (64 hex digits), stream, and word position (decimal, < 2^68).
#[derive(Debug, Serialize, Deserialize)]
struct RngMeta {
    seed: String,
    stream: u64,
    word_pos: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct BestMeta {
    loss: f64,
    epoch: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct OptimizerMeta {
    name: String,
    steps: u64,
    buffers: Vec<String>,
}

impl<T: Float> Autoencoder<T> {
    /// Saves the model (architecture, element type, weights) to `path`, atomically: the
    /// bytes go to a temporary file in the same folder, which is flushed to disk and then
    /// renamed over `path`. If anything fails, a previous file at `path` is left intact.
    ///
    /// The file is a safetensors file; tensor `layers.{i}.weight` has shape `(n_in, n_out)`
    /// and `layers.{i}.bias` shape `(n_out)` for layer `i` (encoder first). See
    /// `docs/format.md`, which also shows how to rebuild the network in NumPy.
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("ae-doc-save-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let ae = Autoencoder::<f32>::builder(6)
    ///     .latent(2, Activation::Tanh)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3))?;
    /// let path = dir.join("ae.safetensors");
    /// ae.save(&path)?;
    /// let loaded = Autoencoder::<f32>::load(&path)?;
    /// let x = Array2::from_elem((2, 6), 0.25f32);
    /// assert_eq!(loaded.reconstruct(x.view())?, ae.reconstruct(x.view())?);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] naming the path and the step that failed (create, write, sync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path.as_ref(), |file| file.write_all(&bytes))
    }

    /// The bytes [`Autoencoder::save`] writes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the model is too large for a safetensors header (never
    /// for real models).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors = TensorList::new::<T>();
        tensors.push_model("", self);
        tensors.serialize(metadata::<T>("model", self))
    }

    /// Loads a model saved by [`Autoencoder::save`], with the element type `T` it was saved
    /// with.
    ///
    /// Policy for element types: `load` never converts. A file of `f32` weights loaded as
    /// `Autoencoder::<f64>` (or the reverse) is refused with [`Error::ElementType`]; use
    /// [`Autoencoder::load_converted`] to convert explicitly.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::UnsupportedVersion`] if a newer
    /// version of the crate wrote it; [`Error::ElementType`] as above; [`Error::Format`]
    /// for anything else wrong: not a safetensors file, truncated, not a model file (e.g. a
    /// checkpoint), an invalid architecture, a missing, extra or wrongly shaped tensor, a
    /// NaN or infinite weight.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        decode_model(&read(path)?, path, Convert::No)
    }

    /// As [`Autoencoder::load`], but converts weights saved in the other element type:
    /// `f32 -> f64` exactly, `f64 -> f32` rounding to nearest.
    ///
    /// # Errors
    /// As [`Autoencoder::load`], except [`Error::ElementType`]; [`Error::Format`] also if an
    /// `f64` weight is too large for `f32` (it would become infinite).
    pub fn load_converted(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        decode_model(&read(path)?, path, Convert::Yes)
    }

    /// As [`Autoencoder::load`], from bytes in memory (errors name the path `<bytes>`).
    ///
    /// # Errors
    /// As [`Autoencoder::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode_model(bytes, Path::new("<bytes>"), Convert::No)
    }
}

/// A training checkpoint, as [`crate::Trainer::checkpoint`] saves it: the model, the
/// optimizer's state, the generator's state, the next epoch, the row order, the history,
/// and the best weights so far. Pass it to [`crate::Trainer::resume`] to continue the run.
///
/// The file is a model file (see [`Autoencoder::save`]) with more tensors and a `training`
/// metadata entry; `docs/format.md` lists them. Element types are never converted. See
/// [`crate::Trainer::resume`] for an example.
#[derive(Debug, Clone)]
pub struct Checkpoint<T> {
    model: Autoencoder<T>,
    optimizer: OptimizerState<T>,
    progress: RunState<T>,
}

impl<T: Float> Checkpoint<T> {
    /// Loads a checkpoint.
    ///
    /// # Errors
    /// As [`Autoencoder::load`] (a model file is refused: it holds no training state); and
    /// [`Error::Format`] for an inconsistent training state (a row order that is not a
    /// permutation, optimizer buffers that do not fit the model, a bad generator state).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        decode_checkpoint(&read(path)?, path)
    }

    /// As [`Checkpoint::load`], from bytes in memory.
    ///
    /// # Errors
    /// As [`Checkpoint::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode_checkpoint(bytes, Path::new("<bytes>"))
    }

    /// The model as it was after the checkpoint's last epoch (or the restored best weights
    /// if early stopping ended the run).
    pub fn model(&self) -> &Autoencoder<T> {
        &self.model
    }

    /// The next epoch to run (the number of epochs done), from 0.
    pub fn epoch(&self) -> usize {
        self.progress.epoch
    }

    /// The history of the epochs done.
    pub fn history(&self) -> &History {
        &self.progress.history
    }

    /// The weights after the best epoch so far, if any epoch ran.
    pub fn best_model(&self) -> Option<&Autoencoder<T>> {
        self.progress.best.as_ref().map(|(_, _, m)| m)
    }

    /// The optimizer's saved state.
    pub fn optimizer_state(&self) -> &OptimizerState<T> {
        &self.optimizer
    }

    /// Takes the checkpoint apart, for the trainer.
    pub(crate) fn into_parts(self) -> (Autoencoder<T>, OptimizerState<T>, RunState<T>) {
        (self.model, self.optimizer, self.progress)
    }
}

/// Writes a checkpoint to `path` atomically.
pub(crate) fn save_checkpoint<T: Float>(
    path: &Path,
    model: &Autoencoder<T>,
    optimizer: &OptimizerState<T>,
    progress: RunStateRef<'_, T>,
) -> Result<()> {
    let bytes = checkpoint_bytes(model, optimizer, progress)?;
    write_atomic(path, |file| file.write_all(&bytes))
}

fn checkpoint_bytes<T: Float>(
    model: &Autoencoder<T>,
    optimizer: &OptimizerState<T>,
    progress: RunStateRef<'_, T>,
) -> Result<Vec<u8>> {
    let mut tensors = TensorList::new::<T>();
    tensors.push_model("", model);
    if let Some((_, _, best)) = progress.best {
        tensors.push_model("best.", best);
    }
    let names = param_names(model);
    let mut buffer_names = Vec::new();
    for (buffer, per_param) in optimizer.buffers() {
        let valid_name = !buffer.is_empty()
            && buffer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || buffer_names.contains(buffer) || per_param.len() > names.len() {
            return Err(Error::InvalidConfig(format!(
                "cannot checkpoint optimizer `{}`: buffer `{buffer}` has a duplicate or \
                 invalid name (use [A-Za-z0-9_]) or more tensors ({}) than the model ({})",
                optimizer.name(),
                per_param.len(),
                names.len()
            )));
        }
        buffer_names.push(buffer.clone());
        for (values, (name, shape)) in per_param.iter().zip(&names) {
            if values.is_empty() {
                continue; // not created yet
            }
            if values.len() != shape.iter().product::<usize>() {
                return Err(Error::InvalidConfig(format!(
                    "cannot checkpoint optimizer `{}`: buffer `{buffer}` for {name} has {} \
                     values, the parameter has shape {shape:?}",
                    optimizer.name(),
                    values.len()
                )));
            }
            tensors.push(
                format!("optimizer.{buffer}.{name}"),
                shape.clone(),
                values.iter().copied(),
            );
        }
    }
    tensors.push_indices("training.order", progress.order);
    let training = TrainingMeta {
        epoch: progress.epoch,
        rng: RngMeta {
            seed: progress
                .rng
                .get_seed()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            stream: progress.rng.get_stream(),
            word_pos: progress.rng.get_word_pos().to_string(),
        },
        since_best: progress.since_best,
        best: progress
            .best
            .map(|(loss, epoch, _)| BestMeta { loss, epoch }),
        optimizer: OptimizerMeta {
            name: optimizer.name().to_string(),
            steps: optimizer.steps(),
            buffers: buffer_names,
        },
        history: progress.history.clone(),
        settings: Some(progress.settings.clone()),
    };
    let mut meta = metadata::<T>("checkpoint", model);
    meta.insert("training".into(), to_json(&training)?);
    tensors.serialize(meta)
}

/// Names and shapes of the trainable parameter tensors, in the optimizer's order (layer by
/// layer, weight then bias; a tied decoder weight is not a parameter of its own).
fn param_names<T: Float>(model: &Autoencoder<T>) -> Vec<(String, Vec<usize>)> {
    model
        .param_layout()
        .into_iter()
        .map(|(i, kind)| {
            let layer = &model.layers()[i];
            match kind {
                ParamKind::Weight => (
                    format!("layers.{i}.weight"),
                    vec![layer.n_in(), layer.n_out()],
                ),
                ParamKind::Bias => (format!("layers.{i}.bias"), vec![layer.n_out()]),
            }
        })
        .collect()
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::InvalidConfig(format!("cannot write file metadata: {e}")))
}

/// The metadata every file has.
fn metadata<T: Float>(content: &str, model: &Autoencoder<T>) -> HashMap<String, String> {
    let architecture = Architecture {
        n_in: model.n_in(),
        n_encoder: model.encoder().len(),
        latent: model.latent(),
        tying: model.tying(),
        layers: model
            .layers()
            .iter()
            .map(|l| LayerSpec {
                n_out: l.n_out(),
                activation: l.activation(),
            })
            .collect(),
    };
    HashMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("content".to_string(), content.to_string()),
        ("dtype".to_string(), T::NAME.to_string()),
        (
            "architecture".to_string(),
            // Plain data: serializing it cannot fail.
            serde_json::to_string(&architecture).unwrap_or_default(),
        ),
    ])
}

/// Tensors to write: name, shape, little-endian bytes.
struct TensorList {
    dtype: Dtype,
    tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)>,
}

impl TensorList {
    fn new<T: Float>() -> Self {
        TensorList {
            dtype: dtype_of::<T>(),
            tensors: Vec::new(),
        }
    }

    fn push<T: Float>(&mut self, name: String, shape: Vec<usize>, values: impl Iterator<Item = T>) {
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

    fn push_model<T: Float>(&mut self, prefix: &str, model: &Autoencoder<T>) {
        for (i, layer) in model.layers().iter().enumerate() {
            let shape = vec![layer.n_in(), layer.n_out()];
            let weights = layer.weights();
            self.push(
                format!("{prefix}layers.{i}.weight"),
                shape,
                weights.iter().copied(),
            );
            let bias = layer.bias();
            self.push(
                format!("{prefix}layers.{i}.bias"),
                vec![layer.n_out()],
                bias.iter().copied(),
            );
        }
    }

    fn push_indices(&mut self, name: &str, values: &[usize]) {
        let bytes = values
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect();
        self.tensors
            .push((name.to_string(), vec![values.len()], Dtype::U64, bytes));
    }

    fn serialize(self, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
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

fn dtype_of<T: Float>() -> Dtype {
    if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

/// Whether loading may convert between `f32` and `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Convert {
    No,
    Yes,
}

/// Reads a whole file.
fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// A parsed file: tensors, metadata, and which tensors have been read.
struct Reader<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
    meta: HashMap<String, String>,
    file_dtype: Dtype,
    taken: HashSet<String>,
}

impl<'a> Reader<'a> {
    /// Checks that the file holds elements of type `T` (files are never converted silently).
    fn expect_dtype<T: Float>(&self) -> Result<()> {
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
    fn open(bytes: &'a [u8], path: &'a Path, content: &str) -> Result<Self> {
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

    fn fail(&self, reason: String) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// Metadata entry `key`, parsed as JSON.
    fn json<M: serde::de::DeserializeOwned>(&self, key: &str) -> Result<M> {
        let text = self
            .meta
            .get(key)
            .ok_or_else(|| self.fail(format!("metadata entry `{key}` is missing")))?;
        serde_json::from_str(text).map_err(|e| self.fail(format!("metadata entry `{key}`: {e}")))
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// The raw view of tensor `name`, checked to have exactly `shape` and dtype `dtype`.
    fn view(&mut self, name: &str, shape: &[usize], dtype: Dtype) -> Result<TensorView<'a>> {
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
    fn floats<T: Float>(&mut self, name: &str, shape: &[usize]) -> Result<Vec<T>> {
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
    fn finish(&self) -> Result<()> {
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

    /// The architecture, validated.
    fn architecture(&self) -> Result<Architecture> {
        let arch: Architecture = self.json("architecture")?;
        let n = arch.layers.len();
        if arch.n_in == 0 || n < 2 || arch.n_encoder == 0 || arch.n_encoder >= n {
            return Err(self.fail(format!(
                "architecture has n_in = {}, {n} layers and n_encoder = {}; expected n_in >= 1, \
                 at least 2 layers and 1 <= n_encoder < layers",
                arch.n_in, arch.n_encoder
            )));
        }
        for (i, layer) in arch.layers.iter().enumerate() {
            if layer.n_out == 0 {
                return Err(self.fail(format!("architecture: layer {i} has 0 units")));
            }
            layer
                .activation
                .validate()
                .map_err(|e| self.fail(format!("architecture: layer {i}: {e}")))?;
        }
        if arch.layers[n - 1].n_out != arch.n_in {
            return Err(self.fail(format!(
                "architecture: output width {} differs from input width {}",
                arch.layers[n - 1].n_out,
                arch.n_in
            )));
        }
        Ok(arch)
    }

    /// The model stored under tensor names `{prefix}layers.{i}.*`.
    fn model<T: Float>(&mut self, prefix: &str, arch: &Architecture) -> Result<Autoencoder<T>> {
        let mut layers = Vec::new();
        let mut n_prev = arch.n_in;
        for (i, spec) in arch.layers.iter().enumerate() {
            let shape = [n_prev, spec.n_out];
            let weights = self.floats::<T>(&format!("{prefix}layers.{i}.weight"), &shape)?;
            let bias = self.floats::<T>(&format!("{prefix}layers.{i}.bias"), &shape[1..])?;
            let weights = Array2::from_shape_vec((n_prev, spec.n_out), weights)
                .map_err(|e| self.fail(format!("layer {i}: {e}")))?;
            let layer = Dense::new(weights, Array1::from(bias), spec.activation)
                .map_err(|e| self.fail(format!("layer {i}: {e}")))?;
            layers.push(layer);
            // A Gaussian code layer outputs a mean and a log-variance; the decoder gets k.
            n_prev = if i + 1 == arch.n_encoder && arch.latent == Latent::Gaussian {
                spec.n_out / 2
            } else {
                spec.n_out
            };
        }
        let stored: Vec<Dense<T>> = layers.clone();
        let decoder = layers.split_off(arch.n_encoder);
        let model = Autoencoder::assemble(layers, decoder, arch.latent, arch.tying)
            .map_err(|e| self.fail(e.to_string()))?;
        // Tied decoder weights are stored (for readers of the file) but are the transposes
        // of the encoder's: assembling rebuilt them, and the stored ones must agree.
        for (i, (built, stored)) in model.layers().iter().zip(&stored).enumerate() {
            let same = built
                .weights()
                .iter()
                .zip(stored.weights())
                .all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits());
            if !same {
                return Err(self.fail(format!(
                    "tensor `{prefix}layers.{i}.weight` is not the transpose of the encoder \
                     weights it is tied to"
                )));
            }
        }
        Ok(model)
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

fn decode_model<T: Float>(bytes: &[u8], path: &Path, convert: Convert) -> Result<Autoencoder<T>> {
    let mut reader = Reader::open(bytes, path, "model")?;
    if convert == Convert::No {
        reader.expect_dtype::<T>()?;
    }
    let arch = reader.architecture()?;
    let model = reader.model("", &arch)?;
    reader.finish()?;
    Ok(model)
}

fn decode_checkpoint<T: Float>(bytes: &[u8], path: &Path) -> Result<Checkpoint<T>> {
    let mut reader = Reader::open(bytes, path, "checkpoint")?;
    reader.expect_dtype::<T>()?;
    let arch = reader.architecture()?;
    let model = reader.model::<T>("", &arch)?;
    let training: TrainingMeta = reader.json("training")?;

    let best = match &training.best {
        Some(b) => Some((b.loss, b.epoch, reader.model::<T>("best.", &arch)?)),
        None => None,
    };

    let mut state = OptimizerState::new(training.optimizer.name.clone(), training.optimizer.steps);
    let names = param_names(&model);
    let mut seen = HashSet::new();
    for buffer in &training.optimizer.buffers {
        if !seen.insert(buffer.as_str()) {
            return Err(reader.fail(format!("optimizer buffer `{buffer}` is listed twice")));
        }
        let mut per_param = Vec::with_capacity(names.len());
        for (name, shape) in &names {
            let tensor = format!("optimizer.{buffer}.{name}");
            per_param.push(if reader.has(&tensor) {
                reader.floats::<T>(&tensor, shape)?
            } else {
                Vec::new()
            });
        }
        state = state.with_buffer(buffer.clone(), per_param);
    }

    let order = reader.order()?;
    let rng = rng_from(&training.rng).map_err(|reason| reader.fail(reason))?;
    reader.finish()?;

    let history = training.history;
    let consistent = history.epochs.len() == training.epoch
        && training
            .best
            .as_ref()
            .is_none_or(|b| b.epoch < training.epoch)
        && history.best_epoch == training.best.as_ref().map(|b| b.epoch)
        && training.since_best <= training.epoch;
    if !consistent {
        return Err(reader.fail(format!(
            "training state: epoch {}, {} history records, best epoch {:?}, since_best {} do not agree",
            training.epoch,
            history.epochs.len(),
            training.best.as_ref().map(|b| b.epoch),
            training.since_best
        )));
    }
    Ok(Checkpoint {
        model,
        optimizer: state,
        progress: RunState {
            settings: training.settings,
            epoch: training.epoch,
            rng,
            order,
            history,
            best,
            since_best: training.since_best,
        },
    })
}

impl Reader<'_> {
    /// Tensor `training.order`, checked to be a permutation of `0..n`.
    fn order(&mut self) -> Result<Vec<usize>> {
        let name = "training.order";
        let n = match self.tensors.tensor(name) {
            Ok(view) if view.shape().len() == 1 => view.shape()[0],
            Ok(view) => {
                return Err(self.fail(format!(
                    "tensor `{name}` has shape {:?}, expected (n)",
                    view.shape()
                )))
            }
            Err(_) => return Err(self.fail(format!("tensor `{name}` is missing"))),
        };
        let view = self.view(name, &[n], Dtype::U64)?;
        let mut seen = vec![false; n]; // n u64 values are in the file: bounded by its size
        let mut order = Vec::with_capacity(n);
        for c in view.data().chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            let i = u64::from_le_bytes(b);
            match usize::try_from(i).ok().filter(|&i| i < n) {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    order.push(i);
                }
                _ => {
                    return Err(self.fail(format!(
                        "tensor `{name}` is not a permutation of 0..{n} (value {i})"
                    )))
                }
            }
        }
        Ok(order)
    }
}

/// Rebuilds the generator from its saved state.
fn rng_from(meta: &RngMeta) -> std::result::Result<ChaCha8Rng, String> {
    let hex = meta.seed.as_bytes();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err("rng seed is not 64 hexadecimal digits".into());
    }
    let mut seed = [0u8; 32];
    for (byte, pair) in seed.iter_mut().zip(hex.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        *byte = u8::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
    }
    let word_pos: u128 = meta
        .word_pos
        .parse()
        .ok()
        .filter(|&p| p < 1u128 << 68)
        .ok_or_else(|| {
            format!(
                "rng word_pos `{}` is not a number below 2^68",
                meta.word_pos
            )
        })?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(meta.stream);
    rng.set_word_pos(word_pos);
    Ok(rng)
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
        let result = Autoencoder::<f32>::from_bytes(&bytes);
        assert!(
            matches!(&result, Err(Error::Format { reason, .. }) if reason.contains("beyond")),
            "{result:?}"
        );
    }
}
