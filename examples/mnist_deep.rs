//! Tied vs untied weights, and greedy layer-wise pretraining vs training from scratch, on
//! MNIST: the figures of the README's "Generative and deeper" section.
//!
//! ```text
//! cargo run --release --example mnist_deep                      # defaults, a couple of minutes on 2 cores
//! cargo run --release --example mnist_deep -- --epochs 2 --train-images 10000
//! cargo run --release --example mnist_deep -- --help
//! ```
//!
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, then `../shared/data/mnist`,
//! and downloaded into `./data/mnist` if missing (see `autoencoder::data::mnist`).

#[path = "support/cli.rs"]
mod cli;

use std::process::ExitCode;
use std::time::Instant;

use autoencoder::data::{mnist, Mnist};
use autoencoder::{Activation, Adam, Autoencoder, Error, Loss, Trainer, Tying};
use clap::Parser;
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

// Everything the command line sets: this struct parses the flags and writes `--help` (the
// doc comments are the help lines). To add a flag: a field here and a key in `to_json`.
/// Compare tied with untied weights (784-128-784 and 784-32-784), and greedy layer-wise
/// pretraining + fine-tuning with training from scratch (784-128-64-32-64-128-784), on MNIST.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mnist_deep",
    override_usage = "cargo run --release --example mnist_deep -- [OPTIONS]",
    after_help = "All models: ReLU hidden and code layers, sigmoid output, binary cross-entropy \
                  (mean per pixel),\nAdam lr 1e-3 eps 1e-7, batch 256, seed 0; figures on the \
                  10,000 test images.\n\
                  Tying: each model trained --epochs epochs.\n\
                  Stacking: three stages 784-128-784 (BCE), 128-64-128 and 64-32-64 (ReLU output, \
                  MSE on the\nprevious stage's codes), --epochs epochs each, stacked, then \
                  fine-tuned --epochs epochs;\nagainst the same deep model from scratch for \
                  4 x --epochs epochs (equal total epochs).",
    // A repeated flag takes its last value; `--epochs -1` is a (refused) value, not a flag.
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Config {
    /// Epochs per phase (see below)
    #[arg(long, value_name = "N", default_value_t = 5)]
    epochs: usize,
    /// Use the first N training images (all: 60000)
    #[arg(long, value_name = "N", default_value_t = 60_000)]
    train_images: usize,
    /// Print one final line: JSON with the configuration and every figure
    #[arg(long)]
    json: bool,
}

impl Config {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "epochs": self.epochs,
            "train_images": self.train_images,
            "batch_size": BATCH,
            "lr": LR,
            "seed": SEED,
        })
    }

    /// The from-scratch model's epochs, 4 x `--epochs`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] if that does not fit a `usize`.
    fn scratch_epochs(&self) -> autoencoder::Result<usize> {
        self.epochs
            .checked_mul(4)
            .ok_or_else(|| Error::InvalidHyperparameter {
                name: "epochs",
                value: self.epochs.to_string(),
                expected: "at most usize::MAX / 4 (the model from scratch trains 4 x --epochs)",
            })
    }
}

const BATCH: usize = 256;
const LR: f64 = 1e-3;
const SEED: u64 = 0;

fn main() -> ExitCode {
    cli::main_with(run)
}

/// Trains `model` on `train` for `epochs` epochs; returns the seconds spent.
fn train(
    model: &mut Autoencoder<f32>,
    train: &Array2<f32>,
    loss: Loss,
    epochs: usize,
) -> autoencoder::Result<f64> {
    let history = Trainer::new(Adam::new(LR).eps(1e-7))
        .loss(loss)
        .epochs(epochs)
        .batch_size(BATCH)
        .seed(SEED)
        .fit(model, train.view(), None)?;
    Ok(history.epochs.iter().map(|e| e.seconds).sum())
}

/// A ReLU autoencoder `n_in - hidden... - latent - mirror - n_in` with output `output`.
fn relu_model(
    n_in: usize,
    hidden: &[usize],
    latent: usize,
    output: Activation,
    tying: Tying,
) -> autoencoder::Result<Autoencoder<f32>> {
    let mut builder = Autoencoder::<f32>::builder(n_in);
    for &w in hidden {
        builder = builder.hidden(w, Activation::Relu);
    }
    builder
        .latent(latent, Activation::Relu)
        .output(output)
        .tying(tying)
        .build(&mut ChaCha8Rng::seed_from_u64(SEED))
}

fn run(c: &Config) -> autoencoder::Result<()> {
    let scratch_epochs = c.scratch_epochs()?;
    let dir = mnist::locate()?;
    let data = Mnist::<f32>::load(&dir)?;
    let n = c.train_images.min(data.train_images.nrows());
    let x = data.train_images.slice(s![..n, ..]).to_owned();
    let test = &data.test_images;
    let quiet = c.json;
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    say(format!(
        "MNIST from {}: {n} training, {} test images; {} epochs per phase",
        dir.display(),
        test.nrows(),
        c.epochs
    ));
    let bce = Loss::BinaryCrossEntropy;

    // Tied vs untied.
    let mut tying_rows = Vec::new();
    for latent in [128, 32] {
        for tying in [Tying::Untied, Tying::Tied] {
            let mut ae = relu_model(784, &[], latent, Activation::Sigmoid, tying)?;
            let seconds = train(&mut ae, &x, bce, c.epochs)?;
            let test_bce = ae.evaluate(test.view(), test.view(), bce)?;
            say(format!(
                "784-{latent}-784 {tying:?}: {} parameters, test BCE {test_bce:.5} ({seconds:.1} s)",
                ae.n_params()
            ));
            tying_rows.push(json!({
                "sizes": ae.sizes(),
                "tying": format!("{tying:?}"),
                "n_params": ae.n_params(),
                "epochs": c.epochs,
                "test_bce": test_bce,
                "seconds": seconds,
            }));
        }
    }

    // Greedy layer-wise pretraining, then fine-tuning.
    let start = Instant::now();
    let mut stages = Vec::new();
    let mut input = x.clone();
    for (i, (n_in, latent)) in [(784, 128), (128, 64), (64, 32)].into_iter().enumerate() {
        let (output, loss) = match i {
            0 => (Activation::Sigmoid, bce),
            _ => (Activation::Relu, Loss::MeanSquaredError),
        };
        let mut stage = relu_model(n_in, &[], latent, output, Tying::Untied)?;
        train(&mut stage, &input, loss, c.epochs)?;
        let stage_loss = stage.evaluate(input.view(), input.view(), loss)?;
        say(format!(
            "stage {} {n_in}-{latent}-{n_in}: training {} {stage_loss:.5}",
            i + 1,
            loss.name()
        ));
        input = stage.encode(input.view())?;
        stages.push(stage);
    }
    let mut stacked = Autoencoder::stack(&stages)?;
    let pretrained_bce = stacked.evaluate(test.view(), test.view(), bce)?;
    let pretrain_seconds = start.elapsed().as_secs_f64();
    let fine_seconds = train(&mut stacked, &x, bce, c.epochs)?;
    let stacked_bce = stacked.evaluate(test.view(), test.view(), bce)?;
    let sizes: Vec<String> = stacked.sizes().iter().map(|s| s.to_string()).collect();
    say(format!(
        "{} stacked: test BCE {pretrained_bce:.5} before fine-tuning, {stacked_bce:.5} after \
         ({pretrain_seconds:.1} s pretraining, {fine_seconds:.1} s fine-tuning)",
        sizes.join("-")
    ));

    // From scratch, same total epochs.
    let mut scratch = relu_model(784, &[128, 64], 32, Activation::Sigmoid, Tying::Untied)?;
    let scratch_seconds = train(&mut scratch, &x, bce, scratch_epochs)?;
    let scratch_bce = scratch.evaluate(test.view(), test.view(), bce)?;
    say(format!(
        "{} from scratch, {scratch_epochs} epochs: test BCE {scratch_bce:.5} ({scratch_seconds:.1} s)",
        sizes.join("-")
    ));

    if c.json {
        let figures = json!({
            "tying": tying_rows,
            "stacking": {
                "sizes": stacked.sizes(),
                "n_params": stacked.n_params(),
                "pretrain_epochs_per_stage": c.epochs,
                "fine_tune_epochs": c.epochs,
                "test_bce_before_fine_tuning": pretrained_bce,
                "test_bce_stacked": stacked_bce,
                "pretrain_seconds": pretrain_seconds,
                "fine_tune_seconds": fine_seconds,
                "scratch_epochs": scratch_epochs,
                "test_bce_scratch": scratch_bce,
                "scratch_seconds": scratch_seconds,
            },
        });
        println!("{}", json!({ "config": c.to_json(), "results": figures }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn refused(line: &str) -> ErrorKind {
        cli::refused::<Config>(line)
    }

    #[test]
    fn the_flag_definitions_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_parse() -> Result<(), String> {
        let c: Config = cli::parsed("--epochs=2 --train-images 1000 --json")?;
        assert_eq!((c.epochs, c.train_images, c.json), (2, 1000, true));
        let d: Config = cli::parsed("")?;
        assert_eq!((d.epochs, d.train_images, d.json), (5, 60_000, false));
        assert_eq!(refused("--bogus 1"), ErrorKind::UnknownArgument);
        assert_eq!(refused("--epochs"), ErrorKind::InvalidValue);
        assert_eq!(refused("--epochs -1"), ErrorKind::ValueValidation);
        assert_eq!(refused("--help"), ErrorKind::DisplayHelp);
        Ok(())
    }

    #[test]
    fn epochs_too_large_for_the_scratch_run_are_an_error() -> Result<(), String> {
        let c: Config = cli::parsed(&format!("--epochs {}", usize::MAX))?;
        assert!(matches!(
            c.scratch_epochs(),
            Err(Error::InvalidHyperparameter { .. })
        ));
        let c: Config = cli::parsed("--epochs 3")?;
        assert_eq!(c.scratch_epochs().map_err(|e| e.to_string())?, 12);
        Ok(())
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let mentions = cli::readme::mentions("mnist_deep");
        let flags: Vec<&str> = mentions
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| a.starts_with("--"))
            .map(String::as_str)
            .collect();
        for flag in ["--epochs", "--train-images", "--json"] {
            assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
        }
        let failures = cli::readme::check::<Config>("mnist_deep");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }
}
