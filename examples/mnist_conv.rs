//! Convolutional autoencoders on MNIST: the classic 16-8-8 model with a 4x4x8 code
//! (`--model small`) and a 32-32 denoiser (`--model denoise`), the two models of
//! `../shared/bench/torch_conv_reference.py`, with the same settings.
//!
//! ```text
//! cargo run --release --example mnist_conv                                  # small, 10 epochs
//! cargo run --release --example mnist_conv -- --model denoise --epochs 2 --json
//! cargo run --release --features viz --example mnist_conv -- --out pictures # reconstructions, filters
//! cargo run --release --example mnist_conv -- --help
//! ```
//!
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, then `../shared/data/mnist`,
//! and downloaded into `./data/mnist` if missing (see `autoencoder::data::mnist`).

#[path = "../src/bin/autoencoder/args.rs"]
mod args;
#[path = "support/cli.rs"]
mod cli;

use std::process::ExitCode;

use autoencoder::data::{mnist, Mnist};
use autoencoder::Activation::{Relu, Sigmoid};
use autoencoder::Padding::{Same, Valid};
use autoencoder::{corrupt, Adam, Autoencoder, History, Loss, Noise, Rounding, Trainer};
use clap::{Parser, ValueEnum};
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

// Everything the command line sets: this struct parses the flags and writes `--help` (the
// doc comments are the help lines). To add a flag: a field here and a key in `to_json`.
/// Train a convolutional autoencoder on MNIST and report test BCE, MSE and (denoise) PSNR.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mnist_conv",
    override_usage = "cargo run --release --example mnist_conv -- [OPTIONS]",
    after_help = "Models (3x3 convolutions, ReLU hidden, sigmoid output, 'same' padding unless noted):\n  \
                  small:   conv 16, pool 2, conv 8, pool 2, conv 8, pool 2 (ceil) = 4x4x8 code;\n           \
                  conv 8, up 2, conv 8, up 2, conv 16 'valid' (16x16 -> 14x14), up 2, conv 1 (4,385 parameters)\n  \
                  denoise: conv 32, pool 2, conv 32, pool 2 = 7x7x32 code; conv 32, up 2, conv 32, up 2, conv 1;\n           \
                  trained on x + 0.5 N(0, 1) clipped to [0, 1] against the clean x (28,353 parameters)\n\
                  Both: Adam lr 1e-3 eps 1e-7, batch 128, binary cross-entropy (mean per pixel), seed 0 (--seed).",
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Config {
    /// The model (see below)
    #[arg(long, value_name = "M", value_enum, default_value_t = Model::Small)]
    model: Model,
    /// Training epochs
    #[arg(long, value_name = "N", default_value_t = 10)]
    epochs: usize,
    /// Use the first N training images (all: 60000)
    #[arg(long, value_name = "N", default_value_t = 60_000)]
    train_images: usize,
    /// Seed of the initial weights and of the trainer (shuffles, noise); one seed says
    /// little about a difference of a few parts in a thousand
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Print one final line: JSON with the configuration and every figure
    #[arg(long)]
    json: bool,
    /// Write reconstructions.png and filters.png (the first layer's filters) into DIR
    /// (needs `--features viz`)
    #[arg(long, value_name = "DIR", value_parser = cli::out_dir("mnist_conv"))]
    out: Option<std::path::PathBuf>,
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The 16-8-8 autoencoder with a 4x4x8 code
    Small,
    /// The 32-32 denoising autoencoder with a 7x7x32 code
    Denoise,
}

const BATCH: usize = 128;
const LR: f64 = 1e-3;
/// The denoiser's corruption: `x + 0.5 N(0, 1)` clipped to `[0, 1]`.
const NOISE: Noise = Noise::Gaussian {
    std: 0.5,
    clip: Some((0.0, 1.0)),
};

impl Config {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "model": format!("{:?}", self.model).to_lowercase(),
            "epochs": self.epochs,
            "train_images": self.train_images,
            "batch_size": BATCH,
            "lr": LR,
            "seed": self.seed,
            "threads": autoencoder::threads(),
        })
    }
}

/// The model `--model` names, with its weights drawn from `seed`.
fn build(model: Model, seed: u64) -> autoencoder::Result<Autoencoder<f32>> {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let layers = Autoencoder::<f32>::sequence([1, 28, 28]);
    match model {
        Model::Small => layers
            .conv(16, 3, Same, Relu)
            .max_pool(2, Rounding::Floor) // 16x14x14
            .conv(8, 3, Same, Relu)
            .max_pool(2, Rounding::Floor) // 8x7x7
            .conv(8, 3, Same, Relu)
            .max_pool(2, Rounding::Ceil) // 8x4x4: the code
            .code()
            .conv(8, 3, Same, Relu)
            .upsample(2) // 8x8x8
            .conv(8, 3, Same, Relu)
            .upsample(2) // 8x16x16
            .conv(16, 3, Valid, Relu) // 16x14x14
            .upsample(2) // 16x28x28
            .conv(1, 3, Same, Sigmoid)
            .build(rng),
        Model::Denoise => layers
            .conv(32, 3, Same, Relu)
            .max_pool(2, Rounding::Floor) // 32x14x14
            .conv(32, 3, Same, Relu)
            .max_pool(2, Rounding::Floor) // 32x7x7: the code
            .code()
            .conv(32, 3, Same, Relu)
            .upsample(2)
            .conv(32, 3, Same, Relu)
            .upsample(2)
            .conv(1, 3, Same, Sigmoid)
            .build(rng),
    }
}

/// PSNR of images in `[0, 1]`: `10 log10(1 / MSE)`, in dB.
fn psnr(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// The median of the epochs' seconds, leaving out the first (as the PyTorch reference does).
fn seconds_per_epoch(history: &History) -> f64 {
    let mut s: Vec<f64> = history.epochs.iter().map(|e| e.seconds).collect();
    if s.len() > 1 {
        s.remove(0);
    }
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(c: &Config) -> autoencoder::Result<()> {
    let mut ae = build(c.model, c.seed)?; // a bad size fails at once, not after loading
    let dir = mnist::locate()?;
    let data = Mnist::<f32>::load(&dir)?;
    let n = c.train_images.min(data.train_images.nrows());
    let train = data.train_images.slice(s![..n, ..]);
    let test = &data.test_images;
    let noisy = c.model == Model::Denoise;
    if !c.json {
        println!(
            "MNIST from {}: {n} training, {} test images; {:?} model, {} parameters, {} epochs, {} threads",
            dir.display(),
            test.nrows(),
            c.model,
            ae.n_params(),
            c.epochs,
            autoencoder::threads()
        );
    }
    let bce = Loss::BinaryCrossEntropy;
    let mut trainer = Trainer::new(Adam::new(LR).eps(1e-7))
        .loss(bce)
        .epochs(c.epochs)
        .batch_size(BATCH)
        .seed(c.seed);
    if noisy {
        trainer = trainer.noise(NOISE);
    }
    if !c.json {
        trainer = trainer.on_epoch(|e| {
            println!(
                "epoch {:>2}: train BCE {:.5}, {:.1} s, {:.0} samples/s",
                e.epoch, e.train_loss, e.seconds, e.samples_per_second
            );
            std::ops::ControlFlow::Continue(())
        });
    }
    let history = trainer.fit(&mut ae, train, None)?;
    let sec = seconds_per_epoch(&history);

    let mut figures = json!({
        "params": ae.n_params(),
        "sec_per_epoch": sec,
        "samples_per_second": n as f64 / sec,
        "test_bce": ae.evaluate(test.view(), test.view(), bce)?,
        "test_mse": ae.evaluate(test.view(), test.view(), Loss::MeanSquaredError)?,
    });
    let mut shown = vec![test.slice(s![..16, ..]).to_owned()];
    if noisy {
        // Test images with the same noise, from their own seed.
        let corrupted = corrupt(test.view(), NOISE, &mut ChaCha8Rng::seed_from_u64(2))?;
        let denoised = ae.reconstruct(corrupted.view())?;
        let (before, after) = (psnr(&corrupted, test), psnr(&denoised, test));
        figures["psnr_noisy_db"] = json!(before);
        figures["psnr_denoised_db"] = json!(after);
        figures["psnr_gain_db"] = json!(after - before);
        figures["test_bce_noisy_input"] = json!(ae.evaluate(corrupted.view(), test.view(), bce)?);
        shown.push(corrupted.slice(s![..16, ..]).to_owned());
    }
    let input = shown
        .last()
        .cloned()
        .unwrap_or_else(|| test.slice(s![..16, ..]).to_owned());
    shown.push(ae.reconstruct(input.view())?);
    if c.json {
        println!("{}", json!({ "config": c.to_json(), "results": figures }));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&figures).unwrap_or_default()
        );
    }
    if let Some(dir) = &c.out {
        pictures(dir, &ae, &shown, c)?;
    }
    Ok(())
}

/// Writes `reconstructions.png` (16 test digits, for the denoiser their noisy copies, and
/// the reconstructions) and `filters.png` (the first layer's 3x3 filters).
#[cfg(feature = "viz")]
fn pictures(
    dir: &std::path::Path,
    ae: &Autoencoder<f32>,
    shown: &[Array2<f32>],
    c: &Config,
) -> autoencoder::Result<()> {
    use autoencoder::viz::{self, Tiles};
    std::fs::create_dir_all(dir).map_err(|source| autoencoder::Error::Io {
        action: "cannot create the picture folder",
        path: dir.to_path_buf(),
        source,
    })?;
    let rows: Vec<_> = shown.iter().map(|x| x.view()).collect();
    let tiles = Tiles::grey(28, 28).scale(2).range(0.0, 1.0);
    let written = [
        (
            "reconstructions.png",
            viz::save_reconstructions(dir.join("reconstructions.png"), &rows, &tiles)?,
        ),
        (
            "filters.png",
            viz::save_features(dir.join("filters.png"), ae, &Tiles::grey(3, 3).scale(12))?,
        ),
    ];
    if !c.json {
        for (name, (w, h)) in written {
            println!("wrote {} ({w} x {h})", dir.join(name).display());
        }
    }
    Ok(())
}

#[cfg(not(feature = "viz"))]
fn pictures(
    _: &std::path::Path,
    _: &Autoencoder<f32>,
    _: &[Array2<f32>],
    _: &Config,
) -> autoencoder::Result<()> {
    Ok(()) // `--out` is refused while parsing without the feature
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flag_definitions_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_and_flags_parse() -> Result<(), clap::Error> {
        let c: Config = cli::parse("")?;
        assert_eq!(
            (c.model, c.epochs, c.train_images, c.seed, c.json),
            (Model::Small, 10, 60_000, 0, false)
        );
        let c: Config = cli::parse("--model denoise --epochs 2 --seed 3 --json")?;
        assert_eq!(
            (c.model, c.epochs, c.seed, c.json),
            (Model::Denoise, 2, 3, true)
        );
        assert!(cli::parse::<Config>("--model large").is_err());
        assert!(cli::parse::<Config>("--epochs -1").is_err());
        Ok(())
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let mentions = cli::readme::mentions("mnist_conv");
        let flags: Vec<&str> = mentions
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| a.starts_with("--"))
            .map(String::as_str)
            .collect();
        for flag in ["--model", "--epochs", "--json", "--out"] {
            assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
        }
        let failures = cli::readme::check::<Config>("mnist_conv");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }

    /// The models of the issue, to the parameter: 4,385 and 28,353 (PyTorch's counts).
    #[test]
    fn the_models_have_the_reference_sizes() -> autoencoder::Result<()> {
        let small = build(Model::Small, 0)?;
        assert_eq!((small.n_params(), small.n_latent()), (4_385, 128));
        let denoise = build(Model::Denoise, 0)?;
        assert_eq!(
            (denoise.n_params(), denoise.n_latent()),
            (28_353, 32 * 7 * 7)
        );
        Ok(())
    }
}
