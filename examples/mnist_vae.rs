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
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, and downloaded into
//! `./data/mnist` if missing (see `autoencoder::data::mnist`).

#[path = "support/cli.rs"]
mod cli;
use cli::parse_num;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use autoencoder::data::{mnist, Mnist, Split};
use autoencoder::{Activation, Adam, Autoencoder, Loss, Penalty, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const USAGE: &str = "\
Train a variational autoencoder on MNIST; report the test negative ELBO per image in nats.

Usage: cargo run --release --example mnist_vae -- [FLAGS]

Architecture (ReLU hidden layers, Gaussian code, sigmoid output)
  --hidden N           encoder (and mirrored decoder) hidden width       [400]
  --latent K           latent units (the code layer outputs mean and log-variance) [20]
Training (binary cross-entropy summed over pixels + beta * KL(q(z|x) || N(0, I)), Adam eps 1e-7)
  --beta X             KL weight (1: the ELBO; > 1: beta-VAE)             [1]
  --warmup N           epochs over which beta rises linearly from beta/N  [0]
  --lr X               learning rate                                      [1e-3]
  --epochs N                                                              [10]
  --batch-size N                                                          [128]
  --seed N             seeds the weights, the split, the shuffling and eps [0]
  --train-images N     use the first N training images (at most 55000)   [55000]
                       (the first N + 5000 images are split at random: N train, 5000 validate)
Output
  --out DIR            write pictures into DIR (needs --features viz): samples.png,
                       reconstructions.png; with --latent 2 also latent_map.png and
                       latent_grid.png (decoded codes over [-2, 2] x [-2, 2])
  --json               print one final line: a JSON object with the configuration and every final figure
  -h, --help           this text

The test figure is always the plain negative ELBO (beta 1), whatever --beta and --warmup.
";

/// Everything the command line sets. To add a flag: a field here, its default in
/// `Default`, one arm in `parse_args`, a line in `USAGE`, and a key in `to_json`.
#[derive(Debug, Clone)]
struct Config {
    hidden: usize,
    latent: usize,
    beta: f64,
    warmup: usize,
    lr: f64,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    train_images: usize,
    out: Option<PathBuf>,
    json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hidden: 400,
            latent: 20,
            beta: 1.0,
            warmup: 0,
            lr: 1e-3,
            epochs: 10,
            batch_size: 128,
            seed: 0,
            train_images: 55_000,
            out: None,
            json: false,
        }
    }
}

impl Config {
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

/// Parses the flags (`--flag value` or `--flag=value`). `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    cli::parse_flags(args, Config::default(), |c, flag, value| {
        match flag {
            "--hidden" => c.hidden = parse_num(flag, &value()?)?,
            "--latent" => c.latent = parse_num(flag, &value()?)?,
            "--beta" => c.beta = parse_num(flag, &value()?)?,
            "--warmup" => c.warmup = parse_num(flag, &value()?)?,
            "--lr" => c.lr = parse_num(flag, &value()?)?,
            "--epochs" => c.epochs = parse_num(flag, &value()?)?,
            "--batch-size" => c.batch_size = parse_num(flag, &value()?)?,
            "--seed" => c.seed = parse_num(flag, &value()?)?,
            "--train-images" => c.train_images = parse_num(flag, &value()?)?,
            "--json" => c.json = true,
            "--out" if cfg!(feature = "viz") => c.out = Some(PathBuf::from(value()?)),
            "--out" => {
                return Err("--out needs the `viz` feature: cargo run --release \
                            --features viz --example mnist_vae -- --out DIR"
                    .into())
            }
            "-h" | "--help" => return Ok(false),
            _ => return Err(format!("unknown flag `{flag}`")),
        }
        Ok(true)
    })
}

fn main() {
    cli::main_with(USAGE, parse_args, run);
}

fn run(c: &Config) -> autoencoder::Result<()> {
    let dir = mnist::locate()?;
    let start = Instant::now();
    let data = Mnist::<f32>::load(&dir)?;
    // The first `train_images` + 5,000 images (at most 60,000), split at random.
    let n_valid = 5_000;
    let n = c.train_images.min(data.train_images.nrows() - n_valid) + n_valid;
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

    let mut vae = Autoencoder::<f32>::builder(784)
        .hidden(c.hidden, Activation::Relu)
        .gaussian_latent(c.latent)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(c.seed))?;
    let kl = Penalty::gaussian_kl(c.beta)?.warmup(c.warmup);
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
    use cli::args;

    #[test]
    fn flags_parse() -> Result<(), String> {
        let c = parse_args(args(
            "--latent=2 --beta 4 --warmup 3 --lr 0.002 --batch-size 64 --json",
        ))?
        .ok_or("not help")?;
        assert_eq!(
            (c.latent, c.beta, c.warmup, c.lr, c.batch_size, c.json),
            (2, 4.0, 3, 0.002, 64, true)
        );
        assert_eq!((c.hidden, c.epochs), (400, 10));
        assert!(parse_args(args("--bogus 1")).is_err());
        assert!(parse_args(args("--epochs")).is_err());
        assert!(parse_args(args("--beta x")).is_err());
        assert!(parse_args(args("--help"))?.is_none());
        Ok(())
    }

    #[test]
    fn out_needs_the_viz_feature() -> Result<(), String> {
        let parsed = parse_args(args("--out pics"));
        if cfg!(feature = "viz") {
            assert_eq!(parsed?.ok_or("not help")?.out, Some(PathBuf::from("pics")));
        } else {
            let err = parsed.expect_err("--out without viz");
            assert!(err.contains("--features viz"), "{err}");
        }
        Ok(())
    }
}
