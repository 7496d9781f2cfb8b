//! Trains an autoencoder on MNIST and compares it with PCA of the same code size.
//!
//! ```text
//! cargo run --release --example mnist_ae                        # defaults, about a minute on 2 cores
//! cargo run --release --example mnist_ae -- --hidden none --epochs 10   # 784-32-784
//! cargo run --release --example mnist_ae -- --variant denoising       # or sparse-l1, sparse-kl, contractive
//! cargo run --release --example mnist_ae -- --help
//! ```
//!
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, then `../shared/data/mnist`,
//! and downloaded into `./data/mnist` if missing (see `autoencoder::data::mnist`).
//!
//! Progress shows as a bar per epoch on a terminal (with `--features progress`) and as
//! plain lines otherwise. With `--features viz`, `--out DIR` writes pictures:
//!
//! ```text
//! cargo run --release --features viz,progress --example mnist_ae -- --out pictures
//! cargo run --release --features viz --example mnist_ae -- --hidden 256,64 --latent 2 --out pictures
//! ```

#[path = "../src/bin/autoencoder/args.rs"]
mod args;
#[path = "support/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use args::OptimizerKind;
use autoencoder::data::{mnist, Mnist, Split};
use autoencoder::{
    bce_of_probabilities, corrupt, Activation, Adam, Autoencoder, History, Loss, Noise, Optimizer,
    Pca, Penalty, Progress, Sgd, Trainer,
};
use clap::{Parser, ValueEnum};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

// Everything the command line sets: this struct parses the flags and writes `--help` (the
// doc comments are the help lines). To add a flag: a field here and a key in `to_json`.
/// Train an autoencoder on MNIST and compare it with PCA of the same code size.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mnist_ae",
    override_usage = "cargo run --release --example mnist_ae -- [OPTIONS]",
    after_help = "Activations (S): relu, sigmoid, tanh, identity, softplus, gelu, \
                  leaky-relu[:ALPHA], elu[:ALPHA].\n\
                  sparse-kl and contractive need a sigmoid code; it is their default.\n\
                  Penalties and noise compose with every architecture, loss and variant.",
    // A repeated flag takes its last value; `--lr -1` is a (refused) value, not a flag.
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Config {
    #[command(flatten)]
    arch: args::ArchitectureArgs,
    /// Output activation
    #[arg(long, value_name = "S", default_value = "sigmoid", value_parser = args::spec::<Activation>,
          help_heading = "Architecture")]
    output: Activation,

    /// The kind of autoencoder: the penalty or input corruption training adds
    #[arg(long, value_name = "V", value_enum, default_value_t = Variant::Plain,
          help_heading = "Variant")]
    variant: Variant,
    /// Weight of sparse-l1's L1 penalty on the code [default: 1e-4] or of contractive's
    /// [default: 0.1]
    #[arg(long, value_name = "X", help_heading = "Variant")]
    lambda: Option<f64>,
    /// sparse-kl: target mean code activation, in (0, 1)
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.05,
        help_heading = "Variant"
    )]
    rho: f64,
    /// sparse-kl: weight of the KL term
    #[arg(
        long,
        value_name = "X",
        default_value_t = 0.1,
        help_heading = "Variant"
    )]
    beta: f64,

    /// Loss: bce, mse, sse, mae, huber[:DELTA]
    #[arg(long, value_name = "L", default_value = "bce", value_parser = args::spec::<Loss>,
          help_heading = "Training")]
    loss: Loss,
    /// Corrupt the input: masking:F, gaussian:STD (clipped to [0, 1]), gaussian:STD:LO:HI,
    /// salt-pepper:F
    /// [default: gaussian:0.5 for denoising, else none]
    #[arg(long, value_name = "NOISE", value_parser = unit_noise, help_heading = "Training")]
    noise: Option<Noise>,
    /// Add a penalty (repeatable): kl:RHO:BETA, l1-activity:L, l2-activity:L, l2-weights:L,
    /// l1-weights:L, contractive:L
    #[arg(long = "penalty", value_name = "P", value_parser = args::spec::<Penalty>,
          help_heading = "Training")]
    penalties: Vec<Penalty>,
    /// L2 weight decay: L sum W^2 over every layer's weights (as --penalty l2-weights:L)
    #[arg(long, value_name = "L", help_heading = "Training")]
    weight_decay: Option<f64>,
    /// Optimizer: adam (eps 1e-7, as Keras), sgd, or sgd with momentum 0.9
    #[arg(long, value_name = "O", value_enum, default_value_t = OptimizerKind::Adam,
          help_heading = "Training")]
    optimizer: OptimizerKind,
    /// Learning rate [default: 1e-3 for adam, 0.1 for sgd and momentum]
    #[arg(long, value_name = "X", help_heading = "Training")]
    lr: Option<f64>,
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
        default_value_t = 256,
        help_heading = "Training"
    )]
    batch_size: usize,
    /// Seeds the weights, the split and the shuffling
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Training")]
    seed: u64,
    /// Use the first N training images (all: 60000)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 60_000,
        help_heading = "Training"
    )]
    train_images: usize,
    /// Share of those held out for validation, in [0, 1) [default: 5000 of 60000]
    #[arg(long, value_name = "F", default_value_t = 5_000.0 / 60_000.0,
          hide_default_value = true, help_heading = "Training")]
    valid_fraction: f64,

    /// Print one final line: JSON with the configuration and every final figure
    #[arg(long, help_heading = "Output")]
    json: bool,
    /// Write reconstructions.png, features.png, loss.png (with --latent 2 also
    /// latent_map.png, latent_grid.png) into DIR; needs --features viz
    #[arg(long, value_name = "DIR", value_parser = cli::out_dir("mnist_ae"),
          help_heading = "Output")]
    out: Option<PathBuf>,
}

/// The kind of autoencoder (`--variant`): which penalty or corruption training adds.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Variant {
    Plain,
    SparseL1,
    SparseKl,
    Denoising,
    Contractive,
}

impl Config {
    fn lr(&self) -> f64 {
        self.lr.unwrap_or(self.optimizer.default_lr())
    }

    fn code_activation(&self) -> Activation {
        let default = match self.variant {
            Variant::SparseKl | Variant::Contractive => Activation::Sigmoid,
            _ => self.arch.activation,
        };
        self.arch.code_activation.unwrap_or(default)
    }

    /// The penalties: the `--variant`'s, then each `--penalty`, then `--weight-decay`,
    /// checked.
    fn penalties(&self) -> autoencoder::Result<Vec<Penalty>> {
        let mut penalties = match self.variant {
            Variant::SparseL1 => vec![Penalty::l1_activity(self.lambda.unwrap_or(1e-4))?.into()],
            Variant::SparseKl => vec![Penalty::kl_sparsity(self.rho, self.beta)?.into()],
            Variant::Contractive => vec![Penalty::contractive(self.lambda.unwrap_or(0.1))?.into()],
            Variant::Plain | Variant::Denoising => vec![],
        };
        penalties.extend(self.penalties.iter().copied());
        if let Some(lambda) = self.weight_decay {
            penalties.push(Penalty::l2_weights(lambda)?.into());
        }
        Ok(penalties)
    }

    /// The input corruption: `--noise`, or for `--variant denoising` by default Gaussian
    /// noise of std 0.5 clipped to [0, 1].
    fn noise(&self) -> Option<Noise> {
        let default = Noise::Gaussian {
            std: 0.5,
            clip: Some((0.0, 1.0)),
        };
        self.noise
            .or((self.variant == Variant::Denoising).then_some(default))
    }

    /// The untrained model, seeded by `--seed`.
    ///
    /// # Errors
    /// From the builder, e.g. [`autoencoder::Error::TooLarge`] for a width too large.
    fn model(&self) -> autoencoder::Result<Autoencoder<f32>> {
        let mut builder = Autoencoder::<f32>::builder(784);
        for &w in &self.arch.hidden {
            builder = builder.hidden(w, self.arch.activation);
        }
        builder = builder
            .latent(self.arch.latent, self.code_activation())
            .output(self.output);
        if let Some(init) = self.arch.init {
            builder = builder.init(init);
        }
        builder.build(&mut ChaCha8Rng::seed_from_u64(self.seed))
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "hidden": self.arch.hidden,
            "latent": self.arch.latent,
            "activation": format!("{:?}", self.arch.activation),
            "code_activation": format!("{:?}", self.code_activation()),
            "output": format!("{:?}", self.output),
            "init": self.arch.init.map_or("default".to_string(), |i| format!("{i:?}")),
            "loss": self.loss.name(),
            "optimizer": format!("{:?}", self.optimizer).to_lowercase(),
            "lr": self.lr(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "train_images": self.train_images,
            "valid_fraction": self.valid_fraction,
            "variant": format!("{:?}", self.variant).to_lowercase(),
            "all_penalties": self.penalties().map(|ps| ps.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>()).ok(),
            "training_noise": self.noise().map(|n| format!("{n:?}")),
            "out": self.out.as_ref().map(|p| p.display().to_string()),
        })
    }
}

/// `--noise`: the crate's noise forms, with Gaussian noise clipped to MNIST's [0, 1] unless
/// a range is given.
fn unit_noise(s: &str) -> Result<Noise, String> {
    Ok(match args::spec(s)? {
        Noise::Gaussian { std, clip: None } => Noise::Gaussian {
            std,
            clip: Some((0.0, 1.0)),
        },
        noise => noise,
    })
}

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(c: &Config) -> autoencoder::Result<()> {
    // The model and the penalties first: a bad size or value fails at once, not after loading.
    let mut ae = c.model()?;
    c.penalties()?;
    if c.arch.latent > 784 {
        // PCA of the same code size would refuse it, but only after training.
        return Err(autoencoder::Error::InvalidHyperparameter {
            name: "latent",
            value: c.arch.latent.to_string(),
            expected: "at most 784 (PCA with as many components is the baseline)",
        });
    }
    let dir = mnist::locate()?;
    let start = Instant::now();
    let data = Mnist::<f32>::load(&dir)?;
    let n = c.train_images.min(data.train_images.nrows());
    let split = Split::new(n, c.valid_fraction, c.seed)?;
    let (train, valid) = split.apply(data.train_images.slice(ndarray::s![..n, ..]))?;
    let test = &data.test_images;
    let valid = (valid.nrows() > 0).then_some(valid);
    if !c.json {
        println!(
            "MNIST from {}: {} training, {} validation, {} test images ({:.1} s to load)",
            dir.display(),
            train.nrows(),
            valid.as_ref().map_or(0, |v| v.nrows()),
            test.nrows(),
            start.elapsed().as_secs_f64()
        );
    }

    if !c.json {
        let sizes: Vec<String> = ae.sizes().iter().map(|s| s.to_string()).collect();
        println!(
            "autoencoder {} ({} parameters), {:?} / {:?} code / {:?} output, {} loss, {:?} lr {}, batch {}, {} epochs",
            sizes.join("-"),
            ae.n_params(),
            c.arch.activation,
            c.code_activation(),
            c.output,
            c.loss.name(),
            c.optimizer,
            c.lr(),
            c.batch_size,
            c.epochs
        );
    }

    let history = match c.optimizer {
        OptimizerKind::Adam => fit(c, Adam::new(c.lr()).eps(1e-7), &mut ae, &train, &valid)?,
        OptimizerKind::Sgd => fit(c, Sgd::new(c.lr()), &mut ae, &train, &valid)?,
        OptimizerKind::Momentum => fit(c, Sgd::new(c.lr()).momentum(0.9), &mut ae, &train, &valid)?,
    };
    let train_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();

    // Test-set figures, per pixel. BCE exactly from the logits when the output is a
    // sigmoid; otherwise from the reconstruction clipped to [1e-7, 1 - 1e-7], as for PCA.
    let test_mse = ae.evaluate(test.view(), test.view(), Loss::MeanSquaredError)?;
    let test_bce = if c.output == Activation::Sigmoid {
        ae.evaluate(test.view(), test.view(), Loss::BinaryCrossEntropy)?
    } else {
        bce_of_probabilities(ae.reconstruct(test.view())?.view(), test.view())
    };

    let variant = variant_figures(c, &ae, test)?;

    let pca_start = Instant::now();
    let pca = Pca::fit(train.view(), c.arch.latent)?;
    let pca_recon = pca.reconstruct(test.view())?.mapv(f64::from);
    let pca_seconds = pca_start.elapsed().as_secs_f64();
    let test64 = test.mapv(f64::from);
    let pca_mse = mse(pca_recon.view(), test64.view());
    let pca_bce = bce_of_probabilities(pca_recon.view(), test64.view());
    let ratio = 784.0 / c.arch.latent as f64;

    if c.json {
        let last = history.last();
        let figures = json!({
            "epochs_run": history.epochs.len(),
            "n_params": ae.n_params(),
            "sizes": ae.sizes(),
            "train_loss": last.map(|e| e.train_loss),
            "valid_loss": last.and_then(|e| e.valid_loss),
            "train_seconds": train_seconds,
            "samples_per_second": history.epochs.iter().map(|e| e.samples_per_second).sum::<f64>()
                / history.epochs.len().max(1) as f64,
            "test_bce": test_bce,
            "test_mse": test_mse,
            "compression_ratio": ratio,
            "pca_components": c.arch.latent,
            "pca_test_bce": pca_bce,
            "pca_test_mse": pca_mse,
            "pca_seconds": pca_seconds,
            "beats_pca_mse": test_mse < pca_mse,
            "beats_pca_bce": test_bce < pca_bce,
            "variant_figures": variant,
            "history": history.epochs.iter().map(|e| json!({
                "epoch": e.epoch + 1,
                "train_loss": e.train_loss,
                "valid_loss": e.valid_loss,
                "seconds": e.seconds,
                "samples_per_second": e.samples_per_second,
            })).collect::<Vec<_>>(),
        });
        println!("{}", json!({ "config": c.to_json(), "results": figures }));
    } else {
        println!(
            "\ntest set ({} images), per pixel     BCE       MSE",
            test.nrows()
        );
        println!("  autoencoder                   {test_bce:.5}   {test_mse:.5}");
        println!(
            "  PCA, {:>3} components          {pca_bce:.5}   {pca_mse:.5}   (fitted in {pca_seconds:.1} s)",
            c.arch.latent
        );
        for (name, value) in variant.as_object().into_iter().flatten() {
            println!("  {name}: {value}");
        }
        println!(
            "compression 784 : {} = {ratio:.1} : 1; trained in {train_seconds:.1} s",
            c.arch.latent
        );
        println!(
            "the autoencoder {} PCA-{} on MSE and {} it on BCE",
            if test_mse < pca_mse {
                "beats"
            } else {
                "does not beat"
            },
            c.arch.latent,
            if test_bce < pca_bce {
                "beats"
            } else {
                "does not beat"
            },
        );
    }
    #[cfg(feature = "viz")]
    if let Some(out) = &c.out {
        pictures(out, &ae, &history, &data, c)?;
    }
    Ok(())
}

/// Fits `ae`, showing progress unless `--json`: a bar per epoch on a terminal (feature
/// `progress`), plain lines otherwise.
fn fit<O: Optimizer<f32>>(
    c: &Config,
    optimizer: O,
    ae: &mut Autoencoder<f32>,
    train: &Array2<f32>,
    valid: &Option<Array2<f32>>,
) -> autoencoder::Result<History> {
    let mut trainer = Trainer::new(optimizer)
        .loss(c.loss)
        .epochs(c.epochs)
        .batch_size(c.batch_size)
        .seed(c.seed);
    if let Some(noise) = c.noise() {
        trainer = trainer.noise(noise);
    }
    for penalty in c.penalties()? {
        trainer = trainer.penalty(penalty);
    }
    let mut trainer = if c.json {
        trainer
    } else {
        Progress::new(c.epochs).install(trainer)
    };
    trainer.fit(ae, train.view(), valid.as_ref().map(|v| v.view()))
}

/// Writes the `--out DIR` pictures: 16 test digits over their reconstructions (with
/// `--noise`, over their corrupted copies and the reconstructions of those), the first
/// layer's units as tiles, the loss curves, and for a 2-unit code the test set's codes by
/// digit and the decoder's images over the 1st-99th percentile box of those codes.
#[cfg(feature = "viz")]
fn pictures(
    dir: &std::path::Path,
    ae: &Autoencoder<f32>,
    history: &History,
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
    let shown = data.test_images.slice(ndarray::s![..16, ..]);
    // With --noise: originals, corrupted copies, reconstructions of the corrupted copies.
    let input = match c.noise() {
        Some(noise) => autoencoder::corrupt(shown, noise, &mut ChaCha8Rng::seed_from_u64(c.seed))?,
        None => shown.to_owned(),
    };
    let recon = ae.reconstruct(input.view())?;
    let rows = match c.noise() {
        Some(_) => vec![shown, input.view(), recon.view()],
        None => vec![shown, recon.view()],
    };
    let mut written = vec![
        (
            "reconstructions.png",
            viz::save_reconstructions(dir.join("reconstructions.png"), &rows, &tiles)?,
        ),
        (
            "features.png",
            viz::save_features(dir.join("features.png"), ae, &tiles.scale(1))?,
        ),
        (
            "loss.png",
            viz::save_loss_curves(dir.join("loss.png"), history, (720, 440))?,
        ),
    ];
    if ae.n_latent() == 2 {
        let codes = ae.encode(data.test_images.view())?;
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
        let box_of = |d: usize| {
            let mut v: Vec<f64> = codes.column(d).iter().map(|&z| z as f64).collect();
            v.sort_by(f64::total_cmp);
            let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
            at(0.01)..=at(0.99)
        };
        written.push((
            "latent_grid.png",
            viz::save_latent_grid(
                dir.join("latent_grid.png"),
                ae,
                &tiles.scale(1),
                15,
                box_of(0),
                box_of(1),
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

/// The variant's own figures on the test set: mean code activation (and the share of
/// near-zero codes), PSNR of noisy and denoised images, or the encoder's Jacobian norm.
fn variant_figures(
    c: &Config,
    ae: &Autoencoder<f32>,
    test: &Array2<f32>,
) -> autoencoder::Result<serde_json::Value> {
    let codes = ae.encode(test.view())?;
    let mean_code = codes.iter().map(|&v| f64::from(v)).sum::<f64>() / codes.len() as f64;
    let near_zero = codes.iter().filter(|v| v.abs() < 1e-3).count() as f64 / codes.len() as f64;
    let mut figures = json!({
        "mean_code_activation": mean_code,
        "near_zero_code_fraction": near_zero,
    });
    match c.variant {
        Variant::SparseKl => figures["rho"] = json!(c.rho),
        Variant::Denoising => {
            let noise = c.noise().unwrap_or(Noise::Masking { fraction: 0.0 });
            // PSNR for pixels in [0, 1]: 10 log10(1 / MSE).
            let psnr = |a: &Array2<f32>| {
                10.0 * (1.0 / mse(a.mapv(f64::from).view(), test.mapv(f64::from).view())).log10()
            };
            let noisy = corrupt(
                test.view(),
                noise,
                &mut ChaCha8Rng::seed_from_u64(c.seed.wrapping_add(1)),
            )?;
            let denoised = ae.reconstruct(noisy.view())?;
            let (before, after) = (psnr(&noisy), psnr(&denoised));
            figures["psnr_noisy_db"] = json!(before);
            figures["psnr_denoised_db"] = json!(after);
            figures["psnr_gain_db"] = json!(after - before);
        }
        Variant::Contractive | Variant::Plain | Variant::SparseL1 => {
            // Mean ||J_f(x)||_F^2 over the first 1000 test images (exact, costly per row).
            let rows = test.nrows().min(1000);
            figures["jacobian_norm_sq"] =
                json!(ae.jacobian_norm(test.slice(ndarray::s![..rows, ..]))?);
        }
    }
    Ok(figures)
}

fn mse(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let d = &a - &b;
    d.iter().map(|v| v * v).sum::<f64>() / d.len().max(1) as f64
}

#[cfg(test)]
#[path = "support/mnist_ae_tests.rs"]
mod tests;
