//! Autoencoders trained from scratch on [`ndarray`], with hand-derived, batched,
//! gradient-checked backprop and no tensor or autograd engine.
//!
//! An autoencoder learns an encoder `z = f(x) = s(W x + b)` and a decoder
//! `x^ = g(z) = s'(W' z + b')` (each one or more dense layers) by minimising
//! `L_total = L_recon(x, x^) + sum of penalties` over mini-batches. Data are row-major
//! `(batch, features)` arrays.
//!
//! - [`Autoencoder`] and its builder: layers, [`Activation`]s, [`Init`]ializers;
//!   `encode`, `decode`, `reconstruct`, `evaluate`.
//! - [`Loss`]: MSE (mean or sum of squares), binary cross-entropy from logits, MAE, Huber.
//! - [`Penalty`]: L1 / KL sparsity, L2 activity, L2 / L1 weight decay, contractive; and
//!   [`Noise`] for denoising. All compose on any model.
//! - [`Trainer`]: mini-batches, shuffling, [`Sgd`] / [`Adam`] (any [`Optimizer`]),
//!   [`Schedule`]s, gradient clipping, validation, [`EarlyStopping`], [`History`],
//!   callbacks, divergence detection.
//! - [`gradcheck`]: the finite-difference checker every gradient in this crate passes.
//! - [`data`]: `.npy` files ([`data::npy`], memory-mapped with [`data::npy::NpyMap`]), CSV
//!   ([`data::csv`]), the IDX reader ([`data::idx`]), MNIST ([`data::Mnist`],
//!   [`data::mnist`]: locate or download), and dataset helpers: seeded [`data::Split`],
//!   shuffling, [`data::Scaler`] with its inverse (saved with a model by
//!   [`Autoencoder::save_with_scaler`]), [`data::batches`].
//! - [`Pca`]: the linear baseline.
//! - [`metrics`]: ROC-AUC, average precision, precision and recall at a threshold,
//!   thresholds from a quantile or a contamination fraction, per-sample MSE and BCE, PSNR;
//!   with [`Autoencoder::reconstruction_errors`] for anomaly scores.
//! - Versions: [`ndarray`], [`rand`] and [`rand_chacha`] are re-exported (use
//!   `autoencoder::ndarray` and so on to get the versions the API takes), and
//!   [`seeded_rng`] makes the generator [`AutoencoderBuilder::build`] takes.
//! - Files: [`Autoencoder::save`] / [`Autoencoder::load`] (safetensors, versioned, atomic
//!   writes) and training [`Checkpoint`]s that [`Trainer::resume`] continues bit for bit.
//! - [`Progress`]: a progress bar per epoch for the trainer's callbacks (feature
//!   `progress`), plain lines when the output is not a terminal.
//! - `viz` (feature `viz`): reconstruction grids, learned features, loss curves, latent
//!   maps and decoded grids as PNG files.
//!
//! Every fallible call returns [`Result`] with the one [`Error`] type; nothing panics on
//! bad input. The same seed gives the same weights, bit for bit.
//!
//! # Quickstart
//!
//! ```
//! use autoencoder::{Activation, Adam, Autoencoder, Loss, Trainer};
//! use ndarray::Array2;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//!
//! # fn main() -> autoencoder::Result<()> {
//! // 200 samples of 16 features in [0, 1] (use your data here).
//! let data = Array2::from_shape_fn((200, 16), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 10.0);
//! let (train, valid) = (data.slice(ndarray::s![..160, ..]), data.slice(ndarray::s![160.., ..]));
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(7); // a named, portable generator
//! let mut ae = Autoencoder::<f32>::builder(16)
//!     .hidden(12, Activation::Relu)
//!     .latent(4, Activation::Relu)
//!     .output(Activation::Sigmoid) // the decoder mirrors the encoder
//!     .build(&mut rng)?;
//! let history = Trainer::new(Adam::new(1e-2))
//!     .loss(Loss::BinaryCrossEntropy)
//!     .epochs(20)
//!     .batch_size(32)
//!     .seed(42)
//!     .fit(&mut ae, train, Some(valid))?;
//! let first = history.epochs[0].train_loss;
//! let last = history.last().unwrap().train_loss;
//! assert!(last < first);
//!
//! let codes = ae.encode(valid)?; // (40, 4)
//! let recon = ae.decode(codes.view())?; // (40, 16)
//! assert_eq!(recon, ae.reconstruct(valid)?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The Rust examples in `docs/format.md`, compiled and run as doctests.
#[doc = include_str!("../docs/format.md")]
#[cfg(doctest)]
pub struct FormatDoctests;

/// How the crate is built: its layout, which way imports run, the path of one batch
/// through [`Trainer::fit`], and a worked example of adding a layer kind.
#[doc = include_str!("../docs/architecture.md")]
pub mod internals {}

mod activation;
mod architecture;
mod budget;
pub mod compute;
pub mod data;
pub mod distributed;
mod error;
mod float;
mod fs;
pub mod gradcheck;
mod init;
mod io;
mod layers;
pub mod metrics;
mod model;
mod objective;
pub mod optim;
mod pca;
mod progress;
mod rng;
pub mod spec;
mod train;
#[cfg(feature = "viz")]
pub mod viz;

pub use activation::{sigmoid, Activation, DerivativeFrom};
pub use architecture::{
    Architecture, Latent, LayerKindName, LayerSpec, Padding, Rounding, Tying, Window,
};
pub use budget::{memory_limit, set_memory_limit, DEFAULT_MEMORY_LIMIT};
pub use compute::{set_threads, threads, MAX_THREADS};
pub use data::{corrupt, Noise};
pub use error::{Error, Result};
pub use float::Float;
pub use init::Init;
pub use io::checkpoint::Checkpoint;
pub use io::FORMAT_VERSION;
pub use layers::{
    Conv2d, ConvTranspose2d, Dense, Layer, LayerKind, MaxPool2d, ParamKind, ParamVisitor,
    Upsample2d,
};
pub use model::latent::GaussianKl;
pub use model::{Autoencoder, AutoencoderBuilder, SequenceBuilder};
pub use objective::activity::{Activity, ActivityPenalty, KL_EPSILON};
pub use objective::loss::{bce_of_probabilities, Loss};
pub use objective::weight::{Biases, Norm, WeightPenalty};
pub use objective::{LossTerms, Penalty};
pub use optim::{Adam, Optimizer, OptimizerState, Schedule, Sgd, WeightDecay};
pub use pca::Pca;
pub use progress::{Progress, ProgressOutput};
pub use rng::seeded_rng;
pub use train::history::{BatchProgress, EarlyStopping, EpochRecord, History, Restore, StopReason};
pub use train::shuffle::Shuffle;
pub use train::Trainer;

// The crates whose types the public API uses, re-exported so that a user's `Cargo.toml`
// needs no matching versions (see the README's "Versions"): arrays in and out, and the
// generator `build` takes.
pub use ndarray;
pub use rand;
pub use rand_chacha;
