//! Checkpoint files: [`Checkpoint`], writing and decoding one, and the encoding of the
//! generator's state.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::fs::write_atomic;
use crate::io::container::{read, to_json, Reader, TensorList};
use crate::io::model_file::metadata;
use crate::layers::ParamKind;
use crate::model::Autoencoder;
use crate::optim::OptimizerState;
use crate::train::history::{EpochRecord, History};
use crate::train::state::{RunSettings, RunState};

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
    state: RunState<T>,
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
        self.state.epoch
    }

    /// The history of the epochs done.
    pub fn history(&self) -> &History {
        &self.state.history
    }

    /// The weights after the best epoch so far, if any epoch ran.
    pub fn best_model(&self) -> Option<&Autoencoder<T>> {
        self.state.best.as_ref().map(|(_, _, m)| m)
    }

    /// The optimizer's saved state.
    pub fn optimizer_state(&self) -> &OptimizerState<T> {
        &self.optimizer
    }

    /// Saves the checkpoint to `path`, atomically (as [`Autoencoder::save`]): the same
    /// bytes as [`Checkpoint::to_bytes`].
    ///
    /// # Errors
    /// [`Error::Io`] naming the path and the step that failed; as [`Checkpoint::to_bytes`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path.as_ref(), |file| file.write_all(&bytes))
    }

    /// The bytes of the checkpoint file, as the trainer writes them: the same for the same
    /// checkpoint, so a loaded checkpoint gives back the bytes of its file. (Two checkpoints
    /// of one run differ only in the wall-clock timings of their history, and so in their
    /// checksum.)
    ///
    /// ```
    /// use autoencoder::{Activation, Adam, Autoencoder, Checkpoint, Trainer};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("ae-doc-ckpt-bytes-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("run.ckpt");
    /// let x = Array2::from_shape_fn((32, 6), |(i, j)| ((i + j) % 4) as f32 / 4.0);
    /// let mut ae = Autoencoder::<f32>::builder(6)
    ///     .latent(2, Activation::Tanh)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    /// Trainer::new(Adam::new(1e-2))
    ///     .epochs(2)
    ///     .checkpoint(&path, 1)
    ///     .fit(&mut ae, x.view(), None)?;
    /// let checkpoint = Checkpoint::<f32>::load(&path)?;
    /// assert_eq!(checkpoint.to_bytes()?, std::fs::read(&path).unwrap());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a value is NaN or infinite (weights, optimizer state,
    /// a loss, rate or timing in the history): the file could not be loaded, so none is
    /// made.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        checkpoint_bytes(&self.model, &self.optimizer, &self.state)
    }

    /// Takes the checkpoint apart, for the trainer.
    pub(crate) fn into_parts(self) -> (Autoencoder<T>, OptimizerState<T>, RunState<T>) {
        (self.model, self.optimizer, self.state)
    }
}

/// Writes a checkpoint to `path` atomically.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written; [`Error::InvalidConfig`] if a value is NaN
/// or infinite (nothing is written then: the file could not be loaded).
pub(crate) fn save_checkpoint<T: Float>(
    path: &Path,
    model: &Autoencoder<T>,
    optimizer: &OptimizerState<T>,
    state: &RunState<T>,
) -> Result<()> {
    let bytes = checkpoint_bytes(model, optimizer, state)?;
    write_atomic(path, |file| file.write_all(&bytes))
}

fn checkpoint_bytes<T: Float>(
    model: &Autoencoder<T>,
    optimizer: &OptimizerState<T>,
    state: &RunState<T>,
) -> Result<Vec<u8>> {
    check_finite_state(&state.history, state.best.as_ref().map(|b| b.0))?;
    let mut tensors = TensorList::new::<T>();
    tensors.push_model("", model);
    if let Some((_, _, best)) = &state.best {
        tensors.push_model("best.", best);
    }
    let buffer_names = push_optimizer(&mut tensors, optimizer, &param_names(model))?;
    tensors.push_indices("training.order", &state.order);
    let training = TrainingMeta {
        epoch: state.epoch,
        rng: rng_meta(&state.rng),
        since_best: state.since_best,
        best: state
            .best
            .as_ref()
            .map(|&(loss, epoch, _)| BestMeta { loss, epoch }),
        optimizer: OptimizerMeta {
            name: optimizer.name().to_string(),
            steps: optimizer.steps(),
            buffers: buffer_names,
        },
        history: state.history.clone(),
        settings: state.settings.clone(),
    };
    let mut meta = metadata::<T>("checkpoint", model);
    meta.insert("training".into(), to_json(&training)?);
    tensors.serialize(meta)
}

/// Refuses a training state that JSON cannot hold: a NaN or infinite loss, rate or timing
/// would be written as `null`, and the checkpoint would not load (or, for the optional
/// validation loss, load as another history).
///
/// # Errors
/// [`Error::InvalidConfig`] naming the value.
fn check_finite_state(history: &History, best_loss: Option<f64>) -> Result<()> {
    let refuse = |what: String, value: f64| {
        Err(Error::InvalidConfig(format!(
            "cannot write the checkpoint: {what} is {value}, which a checkpoint cannot hold \
             (its JSON has no NaN or infinity, and the file would not load); nothing was written"
        )))
    };
    if let Some(loss) = best_loss.filter(|l| !l.is_finite()) {
        return refuse("the best loss".into(), loss);
    }
    for record in &history.epochs {
        // Every field, so that a new one cannot be forgotten here.
        let EpochRecord {
            epoch,
            train_loss,
            train_reconstruction,
            train_penalties,
            valid_loss,
            lr,
            seconds,
            samples_per_second,
            read_wait_seconds,
        } = record;
        let values = [
            ("train_loss", *train_loss),
            ("train_reconstruction", *train_reconstruction),
            ("lr", *lr),
            ("seconds", *seconds),
            ("samples_per_second", *samples_per_second),
            ("read_wait_seconds", *read_wait_seconds),
        ]
        .into_iter()
        .chain(valid_loss.map(|v| ("valid_loss", v)))
        .chain(
            train_penalties
                .iter()
                .map(|&p| ("a train_penalties entry", p)),
        );
        for (name, value) in values {
            if !value.is_finite() {
                return refuse(format!("`{name}` of epoch {epoch}"), value);
            }
        }
    }
    Ok(())
}

/// Adds the optimizer's buffers as tensors `optimizer.{buffer}.{parameter}` (buffers not
/// created yet are left out); returns the buffer names, in order.
fn push_optimizer<T: Float>(
    tensors: &mut TensorList,
    optimizer: &OptimizerState<T>,
    names: &[(String, Vec<usize>)],
) -> Result<Vec<String>> {
    let mut buffer_names = Vec::new();
    for (buffer, per_param) in optimizer.buffers() {
        if !valid_buffer_name(buffer)
            || buffer_names.contains(buffer)
            || per_param.len() > names.len()
        {
            return Err(Error::InvalidConfig(format!(
                "cannot checkpoint optimizer `{}`: buffer `{buffer}` has a duplicate or \
                 invalid name (use [A-Za-z0-9_]) or more tensors ({}) than the model ({})",
                optimizer.name(),
                per_param.len(),
                names.len()
            )));
        }
        buffer_names.push(buffer.clone());
        for (values, (name, shape)) in per_param.iter().zip(names) {
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
    Ok(buffer_names)
}

/// An optimizer buffer's name can be part of tensor names: `[A-Za-z0-9_]+`.
fn valid_buffer_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
                    layer.weights().shape().to_vec(),
                ),
                ParamKind::Bias => (format!("layers.{i}.bias"), vec![layer.bias().len()]),
            }
        })
        .collect()
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

    let optimizer = read_optimizer(&mut reader, &training.optimizer, &param_names(&model))?;
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
        optimizer,
        state: RunState {
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

/// The optimizer's state from the buffers `meta` lists (a buffer's tensor that is absent
/// was not created yet).
fn read_optimizer<T: Float>(
    reader: &mut Reader<'_>,
    meta: &OptimizerMeta,
    names: &[(String, Vec<usize>)],
) -> Result<OptimizerState<T>> {
    let mut state = OptimizerState::new(meta.name.clone(), meta.steps);
    let mut seen = HashSet::new();
    for buffer in &meta.buffers {
        if !seen.insert(buffer.as_str()) {
            return Err(reader.fail(format!("optimizer buffer `{buffer}` is listed twice")));
        }
        if !valid_buffer_name(buffer) {
            // The writer refuses such names: a checkpoint that loads also saves.
            return Err(reader.fail(format!(
                "optimizer buffer name `{buffer}` is not made of [A-Za-z0-9_]"
            )));
        }
        let mut per_param = Vec::with_capacity(names.len());
        for (name, shape) in names {
            let tensor = format!("optimizer.{buffer}.{name}");
            per_param.push(if reader.has(&tensor) {
                reader.floats::<T>(&tensor, shape)?
            } else {
                Vec::new()
            });
        }
        state = state.with_buffer(buffer.clone(), per_param);
    }
    Ok(state)
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

/// The generator's state, as saved.
fn rng_meta(rng: &ChaCha8Rng) -> RngMeta {
    RngMeta {
        seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
        stream: rng.get_stream(),
        word_pos: rng.get_word_pos().to_string(),
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
    use crate::activation::Activation;
    use crate::optim::{Adam, Optimizer};
    use crate::train::history::StopReason;

    fn record(epoch: usize, valid_loss: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.5,
            train_reconstruction: 0.5,
            train_penalties: vec![],
            valid_loss,
            lr: 1e-3,
            seconds: 0.1,
            samples_per_second: 100.0,
            read_wait_seconds: 0.0,
        }
    }

    /// A state after one epoch with validation loss `valid` and best loss `best`.
    fn state(valid: f64, best: f64) -> Result<(Autoencoder<f64>, RunState<f64>)> {
        let model = Autoencoder::<f64>::builder(3)
            .latent(2, Activation::Tanh)
            .build(&mut ChaCha8Rng::seed_from_u64(0))?;
        let state = RunState {
            settings: None,
            epoch: 1,
            rng: ChaCha8Rng::seed_from_u64(1),
            order: vec![1, 0],
            history: History {
                epochs: vec![record(0, Some(valid))],
                penalty_names: vec![],
                best_epoch: Some(0),
                stop: StopReason::Completed,
            },
            best: Some((best, 0, model.clone())),
            since_best: 0,
        };
        Ok((model, state))
    }

    #[test]
    fn non_finite_training_state_is_never_written() -> Result<()> {
        let optimizer = Adam::<f64>::new(1e-3).state();
        let (model, good) = state(0.25, 0.25)?;
        checkpoint_bytes(&model, &optimizer, &good)?;
        for (valid, best, what) in [
            (f64::NAN, 0.25, "valid_loss"),
            (0.25, f64::NAN, "best loss"),
            (0.25, f64::INFINITY, "best loss"),
            (f64::NEG_INFINITY, 0.25, "valid_loss"),
        ] {
            let (model, bad) = state(valid, best)?;
            let result = checkpoint_bytes(&model, &optimizer, &bad);
            assert!(
                matches!(&result, Err(Error::InvalidConfig(m)) if m.contains(what)),
                "{valid} {best}: {result:?}"
            );
        }
        Ok(())
    }
}
