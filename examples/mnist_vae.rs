//! Trains a variational autoencoder on MNIST (Kingma & Welling's 784-400-20 configuration)
//! and reports the test negative ELBO per image, in nats.
//!
//! ```text
//! cargo run --release --example mnist_vae                       # defaults, a minute or two on 2 cores
//! cargo run --release --example mnist_vae -- --epochs 20 --train-images 60000
//! cargo run --release --example mnist_vae -- --help
//! ```
//!
//! With `--features viz`, `--out DIR` writes pictures: samples from the prior, test digits
//! over their reconstructions, and for `--latent 2` the test codes by digit and the decoded
//! grid over the latent plane:
//!
//! ```text
//! cargo run --release --features viz --example mnist_vae -- --latent 2 --out pictures
//! ```
//!
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, then `../shared/data/mnist`,
//! and downloaded into `./data/mnist` if missing (see `autoencoder::data::mnist`).

#[path = "support/cli.rs"]
mod cli;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use autoencoder::data::{mnist, Mnist, Split};
use autoencoder::{Activation, Adam, Autoencoder, Loss, Penalty, Trainer};
use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

// Everything the command line sets: this struct parses the flags and writes `--help` (the
// doc comments are the help lines). To add a flag: a field here and a key in `to_json`.
/// Train a variational autoencoder on MNIST; report the test negative ELBO per image in nats.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mnist_vae",
    override_usage = "cargo run --release --example mnist_vae -- [OPTIONS]",
    after_help = "Architecture: ReLU hidden layers, Gaussian code, sigmoid output.\n\
                  Training: binary cross-entropy summed over pixels + beta * KL(q(z|x) || N(0, I)), \
                  Adam eps 1e-7.\n\
                  The test figure is always the plain negative ELBO (beta 1), whatever --beta \
                  and --warmup.",
    // A repeated flag takes its last value; `--lr -1` is a (refused) value, not a flag.
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Config {
    /// Encoder (and mirrored decoder) hidden width
    #[arg(
        long,
        value_name = "N",
        default_value_t = 400,
        help_heading = "Architecture"
    )]
    hidden: usize,
    /// Latent units (the code layer outputs their mean and log-variance)
    #[arg(
        long,
        value_name = "K",
        default_value_t = 20,
        help_heading = "Architecture"
    )]
    latent: usize,
    /// KL weight (1: the ELBO; > 1: beta-VAE)
    #[arg(
        long,
        value_name = "X",
        default_value_t = 1.0,
        help_heading = "Training"
    )]
    beta: f64,
    /// Epochs over which beta rises linearly from beta/N
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Training")]
    warmup: usize,
    /// Learning rate
    #[arg(
        long,
        value_name = "X",
        default_value_t = 1e-3,
        help_heading = "Training"
    )]
    lr: f64,
    /// Epochs
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "Training"
    )]
    epochs: usize,
    /// Examples per batch
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        help_heading = "Training"
    )]
    batch_size: usize,
    /// Seeds the weights, the split, the shuffling and eps
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Training")]
    seed: u64,
    /// Train on N images, at most 55000 (the first N + 5000 are split at random: N train,
    /// 5000 validate)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 55_000,
        help_heading = "Training"
    )]
    train_images: usize,
    /// Write samples.png, reconstructions.png (with --latent 2 also latent_map.png,
    /// latent_grid.png over [-2, 2] x [-2, 2]) into DIR; needs --features viz
    #[arg(long, value_name = "DIR", value_parser = cli::out_dir("mnist_vae"),
          help_heading = "Output")]
    out: Option<PathBuf>,
    /// Print one final line: JSON with the configuration and every final figure
    #[arg(long, help_heading = "Output")]
    json: bool,
}

impl Config {
    /// The untrained VAE, seeded by `--seed`.
    ///
    /// # Errors
    /// From the builder, e.g. [`autoencoder::Error::TooLarge`] for a width too large.
    fn model(&self) -> autoencoder::Result<Autoencoder<f32>> {
        Autoencoder::<f32>::builder(784)
            .hidden(self.hidden, Activation::Relu)
            .gaussian_latent(self.latent)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(self.seed))
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "hidden": self.hidden,
            "latent": self.latent,
            "beta": self.beta,
            "warmup": self.warmup,
            "lr": self.lr,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "train_images": self.train_images,
            "out": self.out,
        })
    }
}

fn main() -> ExitCode {
    cli::main_with(run)
}

fn run(c: &Config) -> autoencoder::Result<()> {
    // The model and the KL term first: a bad size or value fails at once, not after loading.
    let mut vae = c.model()?;
    let kl = Penalty::gaussian_kl(c.beta)?.warmup(c.warmup);
    let dir = mnist::locate()?;
    let start = Instant::now();
    let data = Mnist::<f32>::load(&dir)?;
    // The first `train_images` + 5,000 images (at most 60,000), split at random.
    let n_valid = 5_000;
    let n = c
        .train_images
        .saturating_add(n_valid)
        .min(data.train_images.nrows());
    let split = Split::new(n, n_valid as f64 / n as f64, c.seed)?;
    let (train, valid) = split.apply(data.train_images.slice(ndarray::s![..n, ..]))?;
    let test = &data.test_images;
    if !c.json {
        println!(
            "MNIST from {}: {} training, {} validation, {} test images ({:.1} s to load)",
            dir.display(),
            train.nrows(),
            valid.nrows(),
            test.nrows(),
            start.elapsed().as_secs_f64()
        );
    }

    if !c.json {
        let sizes: Vec<String> = vae.sizes().iter().map(|s| s.to_string()).collect();
        println!(
            "VAE {} (code layer: mean and log-variance of {} latent units; {} parameters), \
             BCE summed over pixels + {} KL{}, Adam lr {}, batch {}, {} epochs",
            sizes.join("-"),
            c.latent,
            vae.n_params(),
            c.beta,
            if c.warmup > 0 {
                format!(" warmed up over {} epochs", c.warmup)
            } else {
                String::new()
            },
            c.lr,
            c.batch_size,
            c.epochs
        );
        println!("per image, in nats; train: the epoch's running objective (beta as warmed up),");
        println!("valid: reconstruction from the mean code (z = mu), after the epoch");
    }

    let quiet = c.json;
    let epochs = c.epochs;
    let history = Trainer::new(Adam::new(c.lr).eps(1e-7))
        .loss(Loss::BinaryCrossEntropySum)
        .penalty(kl)
        .epochs(c.epochs)
        .batch_size(c.batch_size)
        .seed(c.seed)
        .on_epoch(move |e| {
            if !quiet {
                let kl = e.train_penalties.first().copied().unwrap_or(0.0);
                let valid = e.valid_loss.map_or("-".to_string(), |v| format!("{v:.2}"));
                println!(
                    "epoch {:>3}/{epochs}  train {:.2} (recon {:.2} + KL {kl:.2})  valid recon {valid}  {:.1} s",
                    e.epoch + 1,
                    e.train_loss,
                    e.train_reconstruction,
                    e.seconds,
                );
            }
            ControlFlow::Continue(())
        })
        .fit(&mut vae, train.view(), Some(valid.view()))?;
    let train_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();

    // One-sample estimate of -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)) per image.
    let elbo = [Penalty::gaussian_kl(1.0)?.into()];
    let test_terms = vae.objective(
        test.view(),
        test.view(),
        Loss::BinaryCrossEntropySum,
        &elbo,
        c.seed,
    )?;
    let valid_terms = vae.objective(
        valid.view(),
        valid.view(),
        Loss::BinaryCrossEntropySum,
        &elbo,
        c.seed,
    )?;
    let test_kl = test_terms.penalties[0];
    let test_mean_recon = vae.evaluate(test.view(), test.view(), Loss::BinaryCrossEntropySum)?;

    if c.json {
        let figures = json!({
            "epochs_run": history.epochs.len(),
            "n_params": vae.n_params(),
            "sizes": vae.sizes(),
            "train_seconds": train_seconds,
            "test_negative_elbo": test_terms.total(),
            "test_reconstruction": test_terms.reconstruction,
            "test_kl": test_kl,
            "test_reconstruction_from_mean": test_mean_recon,
            "valid_negative_elbo": valid_terms.total(),
            "history": history.epochs.iter().map(|e| json!({
                "epoch": e.epoch + 1,
                "train_loss": e.train_loss,
                "train_reconstruction": e.train_reconstruction,
                "train_kl": e.train_penalties.first(),
                "valid_reconstruction_from_mean": e.valid_loss,
                "seconds": e.seconds,
            })).collect::<Vec<_>>(),
        });
        println!("{}", json!({ "config": c.to_json(), "results": figures }));
    } else {
        println!(
            "\nvalid set ({} images): negative ELBO {:.2} nats per image",
            valid.nrows(),
            valid_terms.total()
        );
        println!(
            "test set ({} images): negative ELBO {:.2} nats per image \
             (reconstruction {:.2} + KL {test_kl:.2}; one draw of eps per image, seed {})",
            test.nrows(),
            test_terms.total(),
            test_terms.reconstruction,
            c.seed
        );
        println!("  reconstruction from the mean code alone: {test_mean_recon:.2} nats per image");
        println!(
            "  ELBO {:.2} nats; trained in {train_seconds:.1} s",
            -test_terms.total()
        );
    }
    #[cfg(feature = "viz")]
    if let Some(out) = &c.out {
        pictures(out, &vae, &data, c)?;
    }
    Ok(())
}

/// Writes the `--out DIR` pictures: 64 samples decoded from `z ~ N(0, I)`, 16 test digits
/// over their reconstructions (from the mean code), and for a 2-unit code the test set's
/// mean codes by digit and the decoder's images over `[-2, 2] x [-2, 2]`.
#[cfg(feature = "viz")]
fn pictures(
    dir: &std::path::Path,
    vae: &Autoencoder<f32>,
    data: &Mnist<f32>,
    c: &Config,
) -> autoencoder::Result<()> {
    use autoencoder::viz::{self, Tiles};
    std::fs::create_dir_all(dir).map_err(|source| autoencoder::Error::Io {
        action: "cannot create the picture folder",
        path: dir.to_path_buf(),
        source,
    })?;
    let tiles = Tiles::grey(28, 28).scale(2).range(0.0, 1.0);
    let samples = vae.sample(64, &mut ChaCha8Rng::seed_from_u64(c.seed))?;
    let sample_rows: Vec<_> = (0..4)
        .map(|r| samples.slice(ndarray::s![r * 16..(r + 1) * 16, ..]))
        .collect();
    let shown = data.test_images.slice(ndarray::s![..16, ..]);
    let recon = vae.reconstruct(shown)?;
    let mut written = vec![
        (
            "samples.png",
            viz::save_reconstructions(dir.join("samples.png"), &sample_rows, &tiles)?,
        ),
        (
            "reconstructions.png",
            viz::save_reconstructions(
                dir.join("reconstructions.png"),
                &[shown, recon.view()],
                &tiles,
            )?,
        ),
    ];
    if vae.n_latent() == 2 {
        let codes = vae.encode(data.test_images.view())?;
        let labels: Vec<usize> = data.test_labels.iter().map(|&l| l as usize).collect();
        written.push((
            "latent_map.png",
            viz::save_latent_map(
                dir.join("latent_map.png"),
                codes.view(),
                &labels,
                (640, 600),
            )?,
        ));
        written.push((
            "latent_grid.png",
            viz::save_latent_grid(
                dir.join("latent_grid.png"),
                vae,
                &tiles.scale(1),
                15,
                -2.0..=2.0,
                -2.0..=2.0,
            )?,
        ));
    }
    if !c.json {
        for (name, (w, h)) in written {
            println!("wrote {} ({w} x {h})", dir.join(name).display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoencoder::Error;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(line: &str) -> Result<Config, String> {
        cli::parsed(line)
    }

    fn refused(line: &str) -> ErrorKind {
        cli::refused::<Config>(line)
    }

    #[test]
    fn the_flag_definitions_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_parse() -> Result<(), String> {
        let c = parse("--latent=2 --beta 4 --warmup 3 --lr 0.002 --batch-size 64 --json")?;
        assert_eq!(
            (c.latent, c.beta, c.warmup, c.lr, c.batch_size, c.json),
            (2, 4.0, 3, 0.002, 64, true)
        );
        assert_eq!((c.hidden, c.epochs), (400, 10));
        let d = parse("")?;
        assert_eq!(
            (
                d.hidden,
                d.latent,
                d.beta,
                d.warmup,
                d.lr,
                d.epochs,
                d.batch_size,
                d.seed,
                d.train_images
            ),
            (400, 20, 1.0, 0, 1e-3, 10, 128, 0, 55_000)
        );
        assert_eq!(refused("--bogus 1"), ErrorKind::UnknownArgument);
        assert_eq!(refused("--epochs"), ErrorKind::InvalidValue);
        assert_eq!(refused("--beta x"), ErrorKind::ValueValidation);
        assert_eq!(refused("--epochs -1"), ErrorKind::ValueValidation);
        assert_eq!(refused("--help"), ErrorKind::DisplayHelp);
        Ok(())
    }

    #[test]
    fn absurd_values_are_errors_not_panics() -> Result<(), String> {
        for line in ["--latent 99999999999", "--hidden 18446744073709551615"] {
            let result = parse(line)?.model();
            assert!(
                matches!(result, Err(Error::TooLarge { .. })),
                "{line}: {result:?}"
            );
        }
        for beta in ["-1", "NaN"] {
            let c = parse(&format!("--beta {beta}"))?;
            assert!(Penalty::gaussian_kl(c.beta).is_err(), "{beta}");
        }
        Ok(())
    }

    #[test]
    fn out_needs_the_viz_feature() -> Result<(), String> {
        let parsed = parse("--out pics");
        if cfg!(feature = "viz") {
            assert_eq!(parsed?.out, Some(PathBuf::from("pics")));
        } else {
            let err = parsed.expect_err("--out without viz");
            assert!(err.contains("--features viz"), "{err}");
        }
        Ok(())
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let mentions = cli::readme::mentions("mnist_vae");
        let flags: Vec<&str> = mentions
            .iter()
            .flat_map(|m| &m.args)
            .filter(|a| a.starts_with("--"))
            .map(String::as_str)
            .collect();
        for flag in ["--warmup", "--beta", "--latent", "--out", "--train-images"] {
            assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
        }
        let failures = cli::readme::check::<Config>("mnist_vae");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }
}
