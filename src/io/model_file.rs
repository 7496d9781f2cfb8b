//! Model files: `Autoencoder::save` / `load` and their in-memory forms, and the
//! architecture the metadata records.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ndarray::{Array1, Array2};

use crate::architecture::Architecture;
use crate::data::{Scaler, Scaling};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::fs::write_atomic;
use crate::io::container::{read, to_json, Reader, TensorList};
use crate::io::{FORMAT_NAME, FORMAT_VERSION};
use crate::layers::Layer;
use crate::model::Autoencoder;

impl<T: Float> Autoencoder<T> {
    /// Saves the model (architecture, element type, weights) to `path`, atomically: the
    /// bytes go to a temporary file in the same folder, which is flushed to disk and then
    /// renamed over `path`. If anything fails, a previous file at `path` is left intact.
    ///
    /// The file is a safetensors file; tensor `layers.{i}.weight` has shape `(n_in, n_out)`
    /// and `layers.{i}.bias` shape `(n_out)` for layer `i` (encoder first). Its metadata
    /// holds a checksum of the whole file, which loading checks. The same model always
    /// saves to the same bytes. See `docs/format.md`, which also shows how to rebuild the
    /// network and check the checksum in NumPy.
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
    /// [`Error::Io`] naming the path and the step that failed (create, write, sync, rename);
    /// as [`Autoencoder::to_bytes`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path.as_ref(), |file| file.write_all(&bytes))
    }

    /// The bytes [`Autoencoder::save`] writes: the same for the same model, in any process.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a weight is NaN or infinite (the file could not be
    /// loaded), or the model is too large for a safetensors header (never for real models).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.encode_file(None)
    }

    /// As [`Autoencoder::save`], with the [`Scaler`] the training data went through, so
    /// that [`Autoencoder::load_with_scaler`] gives back both and raw data can be encoded
    /// after loading. The scaler is stored as `f64` tensors `scaler.scale`, `scaler.shift`
    /// and `scaler.gain` (each `(n_in)`) and the metadata entry `scaler` (its [`Scaling`]),
    /// exactly, whatever the model's element type; see `docs/format.md`. [`Autoencoder::load`]
    /// reads such a file too and leaves the scaler out.
    ///
    /// ```
    /// use autoencoder::data::{Scaler, Scaling};
    /// use autoencoder::{seeded_rng, Activation, Autoencoder};
    /// use ndarray::array;
    /// # fn main() -> autoencoder::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("ae-doc-scaler-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let raw = array![[120.0f32, 0.5], [80.0, 0.25], [100.0, 0.75]];
    /// let scaler = Scaler::fit(raw.view(), Scaling::Standard)?;
    /// let ae = Autoencoder::<f32>::builder(2).latent(1, Activation::Tanh).build(&mut seeded_rng(0))?;
    /// let path = dir.join("ae.safetensors");
    /// ae.save_with_scaler(&path, &scaler)?;
    ///
    /// let (loaded, scaler) = Autoencoder::<f32>::load_with_scaler(&path)?;
    /// let scaler = scaler.expect("saved with one");
    /// let codes = loaded.encode(scaler.transform(raw.view())?.view())?; // raw data in
    /// assert_eq!(codes, ae.encode(scaler.transform(raw.view())?.view())?);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the scaler was not fitted on `n_in` columns; as
    /// [`Autoencoder::save`].
    pub fn save_with_scaler(&self, path: impl AsRef<Path>, scaler: &Scaler) -> Result<()> {
        if scaler.n_features() != self.n_in() {
            return Err(Error::ShapeMismatch {
                context: "save_with_scaler scaler",
                expected: format!("a scaler of {} columns, the model's n_in", self.n_in()),
                found: format!("{} columns", scaler.n_features()),
            });
        }
        let bytes = self.encode_file(Some(scaler))?;
        write_atomic(path.as_ref(), |file| file.write_all(&bytes))
    }

    /// Loads a model and, if the file has one, the scaler saved with it by
    /// [`Autoencoder::save_with_scaler`].
    ///
    /// # Errors
    /// As [`Autoencoder::load`]; [`Error::Format`] if the scaler's tensors or metadata are
    /// malformed (missing, of another length than `n_in`, non-finite, or not what
    /// [`Scaler::fit`] can produce).
    pub fn load_with_scaler(path: impl AsRef<Path>) -> Result<(Self, Option<Scaler>)> {
        let path = path.as_ref();
        decode_model(&read(path)?, path, Convert::No)
    }

    /// The file's bytes, with the scaler's tensors if given.
    fn encode_file(&self, scaler: Option<&Scaler>) -> Result<Vec<u8>> {
        let mut tensors = TensorList::new::<T>();
        tensors.push_model("", self);
        let mut meta = metadata::<T>("model", self);
        if let Some(scaler) = scaler {
            let (scale, shift, gain) = scaler.parts();
            for (name, values) in [("scale", scale), ("shift", shift), ("gain", gain)] {
                tensors.push_f64(format!("scaler.{name}"), &values.to_vec());
            }
            meta.insert(SCALER_KEY.into(), to_json(&scaler.scaling())?);
        }
        tensors.serialize(meta)
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
    /// for anything else wrong: a checksum that does not match the bytes (any byte changed
    /// since the save), not a safetensors file, truncated, not a model file (e.g. a
    /// checkpoint), an invalid architecture, a missing, extra or wrongly shaped tensor, a
    /// NaN or infinite weight.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Ok(decode_model(&read(path)?, path, Convert::No)?.0)
    }

    /// As [`Autoencoder::load`], but converts weights saved in the other element type:
    /// `f32 -> f64` exactly, `f64 -> f32` rounding to nearest.
    ///
    /// # Errors
    /// As [`Autoencoder::load`], except [`Error::ElementType`]; [`Error::Format`] also if an
    /// `f64` weight is too large for `f32` (it would become infinite).
    pub fn load_converted(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Ok(decode_model(&read(path)?, path, Convert::Yes)?.0)
    }

    /// As [`Autoencoder::load`], from bytes in memory (errors name the path `<bytes>`).
    ///
    /// # Errors
    /// As [`Autoencoder::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(decode_model(bytes, Path::new("<bytes>"), Convert::No)?.0)
    }
}

/// The metadata every file has (the checksum is added when the file is written).
pub(super) fn metadata<T: Float>(
    content: &str,
    model: &Autoencoder<T>,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("content".to_string(), content.to_string()),
        ("dtype".to_string(), T::NAME.to_string()),
        (
            "architecture".to_string(),
            // Plain data: serializing it cannot fail.
            serde_json::to_string(model.architecture()).unwrap_or_default(),
        ),
    ])
}

impl TensorList {
    /// Adds the model's parameters: `{prefix}layers.{i}.weight` (for a dense layer
    /// `(n_in, n_out)`) and `{prefix}layers.{i}.bias` `(n_out)` for each layer `i`, encoder
    /// first.
    pub(super) fn push_model<T: Float>(&mut self, prefix: &str, model: &Autoencoder<T>) {
        for (i, layer) in model.layers().iter().enumerate() {
            let Some(shape) = layer.weight_file_shape() else {
                continue; // no parameters (pooling, upsampling)
            };
            let weights = layer.weights();
            self.push(
                format!("{prefix}layers.{i}.weight"),
                shape,
                weights.iter().copied(),
            );
            let bias = layer.bias();
            self.push(
                format!("{prefix}layers.{i}.bias"),
                vec![bias.len()],
                bias.iter().copied(),
            );
        }
    }
}

/// Whether loading may convert between `f32` and `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Convert {
    No,
    Yes,
}

fn decode_model<T: Float>(
    bytes: &[u8],
    path: &Path,
    convert: Convert,
) -> Result<(Autoencoder<T>, Option<Scaler>)> {
    let mut reader = Reader::open(bytes, path, "model")?;
    if convert == Convert::No {
        reader.expect_dtype::<T>()?;
    }
    let arch = reader.architecture()?;
    let model = reader.model("", &arch)?;
    let scaler = reader.scaler(arch.n_in)?;
    reader.finish()?;
    Ok((model, scaler))
}

/// The metadata entry holding a saved scaler's [`Scaling`].
const SCALER_KEY: &str = "scaler";

impl Reader<'_> {
    /// The scaler saved with the model, if any: metadata `scaler` and tensors
    /// `scaler.{scale,shift,gain}` of `n_in` `f64` values each, checked as
    /// [`Scaler::fit`] would have made them.
    fn scaler(&mut self, n_in: usize) -> Result<Option<Scaler>> {
        let tensors = ["scaler.scale", "scaler.shift", "scaler.gain"];
        if !self.has_meta(SCALER_KEY) && !tensors.iter().any(|t| self.has(t)) {
            return Ok(None);
        }
        let scaling: Scaling = self.json(SCALER_KEY)?;
        let [scale, shift, gain] = tensors.map(|t| self.f64s(t, n_in).map(Array1::from));
        Scaler::from_parts(scaling, scale?, shift?, gain?)
            .map(Some)
            .map_err(|e| self.fail(e.to_string()))
    }
}

impl Reader<'_> {
    /// The architecture, validated.
    pub(super) fn architecture(&self) -> Result<Architecture> {
        let arch: Architecture = self.json("architecture")?;
        arch.validate()
            .map_err(|e| self.fail(format!("architecture: {e}")))?;
        Ok(arch)
    }

    /// The model stored under tensor names `{prefix}layers.{i}.*`.
    pub(super) fn model<T: Float>(
        &mut self,
        prefix: &str,
        arch: &Architecture,
    ) -> Result<Autoencoder<T>> {
        let mut layers = Vec::new();
        for (i, spec) in arch.layers.iter().enumerate() {
            let n_prev = arch.input_width(i);
            let (shape, n_bias) = match Layer::<T>::param_shapes(spec, n_prev) {
                Some(shapes) => shapes,
                None => (vec![0, 0], 0), // no tensors stored
            };
            let (weights, bias) = if n_bias == 0 {
                (Vec::new(), Vec::new())
            } else {
                let weights = self.floats::<T>(&format!("{prefix}layers.{i}.weight"), &shape)?;
                (
                    weights,
                    self.floats::<T>(&format!("{prefix}layers.{i}.bias"), &[n_bias])?,
                )
            };
            // Dense (n_in, n_out); a convolution's 4-D tensor as (shape[0], the rest).
            let (rows, cols) = (shape[0], shape[1..].iter().product());
            let weights = Array2::from_shape_vec((rows, cols), weights)
                .map_err(|e| self.fail(format!("layer {i}: {e}")))?;
            let layer = Layer::from_parts(spec, n_prev, weights, Array1::from(bias))
                .map_err(|e| self.fail(format!("layer {i}: {e}")))?;
            layers.push(layer);
        }
        let stored: Vec<Layer<T>> = layers.clone();
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
