//! Trains an autoencoder on MNIST and compares it with PCA of the same code size.
//!
//! ```text
//! cargo run --release --example mnist_ae                        # defaults, about a minute on 2 cores
//! cargo run --release --example mnist_ae -- --hidden none --epochs 10   # 784-32-784
//! cargo run --release --example mnist_ae -- --variant denoising       # or sparse-l1, sparse-kl, contractive
//! cargo run --release --example mnist_ae -- --help
//! ```
//!
//! MNIST is looked for in `$MNIST_DIR`, then `./data/mnist`, and downloaded into
//! `./data/mnist` if missing (see `autoencoder::data::mnist`).
//!
//! Progress shows as a bar per epoch on a terminal (with `--features progress`) and as
//! plain lines otherwise. With `--features viz`, `--out DIR` writes pictures:
//!
//! ```text
//! cargo run --release --features viz,progress --example mnist_ae -- --out pictures
//! cargo run --release --features viz --example mnist_ae -- --hidden 256,64 --latent 2 --out pictures
//! ```

#[path = "support/cli.rs"]
mod cli;
use cli::parse_num;

use std::path::PathBuf;
use std::time::Instant;

use autoencoder::data::{mnist, Mnist, Split};
use autoencoder::{
    bce_of_probabilities, corrupt, Activation, Adam, Autoencoder, History, Init, Loss, Noise,
    Optimizer, Pca, Penalty, Progress, Sgd, Trainer,
};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const USAGE: &str = "\
Train an autoencoder on MNIST and compare it with PCA of the same code size.

Usage: cargo run --release --example mnist_ae -- [FLAGS]

Architecture
  --hidden LIST        encoder hidden widths, comma-separated, or `none`   [128,64]
                       (the decoder mirrors them: 784-128-64-32-64-128-784)
  --latent N           code width                                          [32]
  --activation S       hidden and code activation                          [relu]
  --code-activation S  code activation, if different from --activation
  --output S           output activation                                   [sigmoid]
                       S: relu, sigmoid, tanh, identity, softplus, gelu, leaky-relu[:ALPHA], elu[:ALPHA]
  --init I             default (He for ReLU-like, else Glorot), glorot, he,
                       glorot-normal, he-normal                            [default]
Variant (penalties compose with every architecture and loss)
  --variant V          plain, sparse-l1, sparse-kl, denoising, contractive [plain]
  --lambda X           sparse-l1: L1 weight on the code [1e-4]; contractive: weight [0.1]
  --rho X              sparse-kl: target mean code activation, in (0, 1)   [0.05]
  --beta X             sparse-kl: weight of the KL term                    [0.1]
                       (sparse-kl and contractive need a sigmoid code; it is the default there)
Training
  --loss L             bce, mse, sse, mae, huber[:DELTA]                   [bce]
  --noise N            corrupt the input (any variant; denoising's default gaussian:0.5):
                       masking:F, gaussian:STD (clipped to [0, 1]), salt-and-pepper:F
  --penalty P          add a penalty to the variant's (repeatable): kl:RHO:BETA, l1-activity:L,
                       l2-activity:L, l2-weights:L, l1-weights:L, contractive:L   [none]
  --optimizer O        adam (eps 1e-7, as Keras), sgd, momentum (0.9)      [adam]
  --lr X               learning rate                        [1e-3 for adam, 0.1 for sgd]
  --epochs N                                                               [10]
  --batch-size N                                                           [256]
  --seed N             seeds the weights, the split and the shuffling      [0]
  --train-images N     use the first N training images (all: 60000)        [60000]
  --valid-fraction F   share of those held out for validation, [0, 1)      [0.0833] (5000 of 60000)
Output
  --json               print one final line: a JSON object with the configuration and every final figure
  --out DIR            write pictures into DIR (needs --features viz): reconstructions.png,
                       features.png, loss.png; with --latent 2 also latent_map.png, latent_grid.png
  -h, --help           this text
";

/// Everything the command line sets. To add a flag: a field here, its default in
/// `Default`, one arm in `parse_args`, a line in `USAGE`, and a key in `to_json`.
#[derive(Debug, Clone)]
struct Config {
    hidden: Vec<usize>,
    latent: usize,
    activation: Activation,
    code_activation: Option<Activation>,
    output: Activation,
    init: Option<Init>,
    loss: Loss,
    noise: Option<Noise>,
    penalties: Vec<Penalty>,
    optimizer: OptimizerKind,
    lr: Option<f64>,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    train_images: usize,
    valid_fraction: f64,
    json: bool,
    variant: Variant,
    out: Option<PathBuf>,
    lambda: Option<f64>,
    rho: f64,
    beta: f64,
}

/// The kind of autoencoder (`--variant`): which penalty or corruption training adds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    SparseL1,
    SparseKl,
    Denoising,
    Contractive,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OptimizerKind {
    Adam,
    Sgd,
    Momentum,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hidden: vec![128, 64],
            latent: 32,
            activation: Activation::Relu,
            code_activation: None,
            output: Activation::Sigmoid,
            init: None,
            loss: Loss::BinaryCrossEntropy,
            noise: None,
            penalties: Vec::new(),
            optimizer: OptimizerKind::Adam,
            lr: None,
            epochs: 10,
            batch_size: 256,
            seed: 0,
            train_images: 60_000,
            valid_fraction: 5_000.0 / 60_000.0,
            json: false,
            variant: Variant::Plain,
            lambda: None,
            rho: 0.05,
            beta: 0.1,
            out: None,
        }
    }
}

impl Config {
    fn lr(&self) -> f64 {
        self.lr.unwrap_or(match self.optimizer {
            OptimizerKind::Adam => 1e-3,
            OptimizerKind::Sgd | OptimizerKind::Momentum => 0.1,
        })
    }

    fn code_activation(&self) -> Activation {
        let default = match self.variant {
            Variant::SparseKl | Variant::Contractive => Activation::Sigmoid,
            _ => self.activation,
        };
        self.code_activation.unwrap_or(default)
    }

    /// The penalties: the `--variant`'s, then each `--penalty`, checked.
    fn penalties(&self) -> autoencoder::Result<Vec<Penalty>> {
        let mut penalties = match self.variant {
            Variant::SparseL1 => vec![Penalty::l1_activity(self.lambda.unwrap_or(1e-4))?.into()],
            Variant::SparseKl => vec![Penalty::kl_sparsity(self.rho, self.beta)?.into()],
            Variant::Contractive => vec![Penalty::contractive(self.lambda.unwrap_or(0.1))?.into()],
            Variant::Plain | Variant::Denoising => vec![],
        };
        penalties.extend(self.penalties.iter().copied());
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

    fn to_json(&self) -> serde_json::Value {
        json!({
            "hidden": self.hidden,
            "latent": self.latent,
            "activation": format!("{:?}", self.activation),
            "code_activation": format!("{:?}", self.code_activation()),
            "output": format!("{:?}", self.output),
            "init": self.init.map_or("default".to_string(), |i| format!("{i:?}")),
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

/// Parses the flags (`--flag value` or `--flag=value`). `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    cli::parse_flags(args, Config::default(), |c, flag, value| {
        match flag {
            "--hidden" => c.hidden = parse_widths(&value()?)?,
            "--latent" => c.latent = parse_num(flag, &value()?)?,
            "--activation" => c.activation = parse_activation(&value()?)?,
            "--code-activation" => c.code_activation = Some(parse_activation(&value()?)?),
            "--output" => c.output = parse_activation(&value()?)?,
            "--init" => c.init = parse_init(&value()?)?,
            "--loss" => c.loss = parse_loss(&value()?)?,
            "--noise" => c.noise = Some(parse_noise(&value()?)?),
            "--penalty" => c.penalties.push(parse_penalty(&value()?)?),
            "--optimizer" => c.optimizer = parse_optimizer(&value()?)?,
            "--lr" => c.lr = Some(parse_num(flag, &value()?)?),
            "--epochs" => c.epochs = parse_num(flag, &value()?)?,
            "--batch-size" => c.batch_size = parse_num(flag, &value()?)?,
            "--seed" => c.seed = parse_num(flag, &value()?)?,
            "--train-images" => c.train_images = parse_num(flag, &value()?)?,
            "--valid-fraction" => c.valid_fraction = parse_num(flag, &value()?)?,
            "--json" => c.json = true,
            "--variant" => c.variant = parse_variant(&value()?)?,
            "--lambda" => c.lambda = Some(parse_num(flag, &value()?)?),
            "--rho" => c.rho = parse_num(flag, &value()?)?,
            "--beta" => c.beta = parse_num(flag, &value()?)?,
            "--out" if cfg!(feature = "viz") => c.out = Some(PathBuf::from(value()?)),
            "--out" => {
                return Err("--out needs the `viz` feature: cargo run --release \
                            --features viz --example mnist_ae -- --out DIR"
                    .into())
            }
            "-h" | "--help" => return Ok(false),
            _ => return Err(format!("unknown flag `{flag}`")),
        }
        Ok(true)
    })
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    Ok(match s {
        "plain" => Variant::Plain,
        "sparse-l1" => Variant::SparseL1,
        "sparse-kl" => Variant::SparseKl,
        "denoising" => Variant::Denoising,
        "contractive" => Variant::Contractive,
        _ => {
            return Err(format!(
                "unknown variant `{s}` (plain, sparse-l1, sparse-kl, denoising, contractive)"
            ))
        }
    })
}

fn parse_widths(s: &str) -> Result<Vec<usize>, String> {
    if s == "none" || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|w| parse_num("--hidden", w.trim()))
        .collect()
}

/// `name` or `name:param`.
fn split_param(s: &str) -> Result<(&str, Option<f64>), String> {
    match s.split_once(':') {
        Some((name, p)) => Ok((name, Some(parse_num(name, p)?))),
        None => Ok((s, None)),
    }
}

fn parse_activation(s: &str) -> Result<Activation, String> {
    Ok(match split_param(s)? {
        ("relu", None) => Activation::Relu,
        ("sigmoid", None) => Activation::Sigmoid,
        ("tanh", None) => Activation::Tanh,
        ("identity" | "linear", None) => Activation::Identity,
        ("softplus", None) => Activation::Softplus,
        ("gelu", None) => Activation::Gelu,
        ("leaky-relu", a) => Activation::LeakyRelu(a.unwrap_or(0.01)),
        ("elu", a) => Activation::Elu(a.unwrap_or(1.0)),
        _ => return Err(format!("unknown activation `{s}`")),
    })
}

fn parse_init(s: &str) -> Result<Option<Init>, String> {
    Ok(match s {
        "default" => None,
        "glorot" | "glorot-uniform" => Some(Init::GlorotUniform),
        "he" | "he-uniform" => Some(Init::HeUniform),
        "glorot-normal" => Some(Init::GlorotNormal),
        "he-normal" => Some(Init::HeNormal),
        _ => return Err(format!("unknown initializer `{s}`")),
    })
}

fn parse_noise(s: &str) -> Result<Noise, String> {
    Ok(match split_param(s)? {
        ("masking", Some(fraction)) => Noise::Masking { fraction },
        ("gaussian", Some(std)) => Noise::Gaussian {
            std,
            clip: Some((0.0, 1.0)),
        },
        ("salt-and-pepper", Some(fraction)) => Noise::SaltAndPepper { fraction },
        _ => {
            return Err(format!(
                "unknown noise `{s}` (masking:F, gaussian:STD, salt-and-pepper:F)"
            ))
        }
    })
}

fn parse_penalty(s: &str) -> Result<Penalty, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f64, String> {
        parts
            .get(i)
            .ok_or_else(|| format!("penalty `{s}` needs a value"))
            .and_then(|v| parse_num("--penalty", v))
    };
    let penalty = match parts[0] {
        "kl" => Penalty::kl_sparsity(num(1)?, num(2)?).map(Penalty::from),
        "l1-activity" => Penalty::l1_activity(num(1)?).map(Penalty::from),
        "l2-activity" => Penalty::l2_activity(num(1)?).map(Penalty::from),
        "l2-weights" => Penalty::l2_weights(num(1)?).map(Penalty::from),
        "l1-weights" => Penalty::l1_weights(num(1)?).map(Penalty::from),
        "contractive" => Penalty::contractive(num(1)?).map(Penalty::from),
        _ => return Err(format!("unknown penalty `{s}`")),
    };
    penalty.map_err(|e| e.to_string())
}

fn parse_loss(s: &str) -> Result<Loss, String> {
    Ok(match split_param(s)? {
        ("bce", None) => Loss::BinaryCrossEntropy,
        ("mse", None) => Loss::MeanSquaredError,
        ("sse", None) => Loss::SumSquaredError,
        ("mae", None) => Loss::MeanAbsoluteError,
        ("huber", d) => Loss::Huber(d.unwrap_or(1.0)),
        _ => return Err(format!("unknown loss `{s}`")),
    })
}

fn parse_optimizer(s: &str) -> Result<OptimizerKind, String> {
    Ok(match s {
        "adam" => OptimizerKind::Adam,
        "sgd" => OptimizerKind::Sgd,
        "momentum" => OptimizerKind::Momentum,
        _ => return Err(format!("unknown optimizer `{s}`")),
    })
}

fn main() {
    cli::main_with(USAGE, parse_args, run);
}

fn run(c: &Config) -> autoencoder::Result<()> {
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

    let mut builder = Autoencoder::<f32>::builder(784);
    for &w in &c.hidden {
        builder = builder.hidden(w, c.activation);
    }
    builder = builder
        .latent(c.latent, c.code_activation())
        .output(c.output);
    if let Some(init) = c.init {
        builder = builder.init(init);
    }
    let mut ae = builder.build(&mut ChaCha8Rng::seed_from_u64(c.seed))?;
    if !c.json {
        let sizes: Vec<String> = ae.sizes().iter().map(|s| s.to_string()).collect();
        println!(
            "autoencoder {} ({} parameters), {:?} / {:?} code / {:?} output, {} loss, {:?} lr {}, batch {}, {} epochs",
            sizes.join("-"),
            ae.n_params(),
            c.activation,
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
    let pca = Pca::fit(train.view(), c.latent)?;
    let pca_recon = pca.reconstruct(test.view())?;
    let pca_seconds = pca_start.elapsed().as_secs_f64();
    let test64 = test.mapv(f64::from);
    let pca_mse = mse(pca_recon.view(), test64.view());
    let pca_bce = bce_of_probabilities(pca_recon.view(), test64.view());
    let ratio = 784.0 / c.latent as f64;

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
            "pca_components": c.latent,
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
            c.latent
        );
        for (name, value) in variant.as_object().into_iter().flatten() {
            println!("  {name}: {value}");
        }
        println!(
            "compression 784 : {} = {ratio:.1} : 1; trained in {train_seconds:.1} s",
            c.latent
        );
        println!(
            "the autoencoder {} PCA-{} on MSE and {} it on BCE",
            if test_mse < pca_mse {
                "beats"
            } else {
                "does not beat"
            },
            c.latent,
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
                &mut ChaCha8Rng::seed_from_u64(c.seed + 1),
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
mod tests {
    use super::*;
    use cli::args;

    #[test]
    fn flags_parse() -> Result<(), String> {
        let c = parse_args(args(
            "--hidden none --latent=16 --loss mse --optimizer sgd --json",
        ))?
        .ok_or("not help")?;
        assert!(c.hidden.is_empty());
        assert_eq!(
            (c.latent, c.loss, c.optimizer, c.json),
            (16, Loss::MeanSquaredError, OptimizerKind::Sgd, true)
        );
        assert_eq!(c.lr(), 0.1);
        assert_eq!(
            parse_args(args("--hidden 128,64"))?.ok_or("")?.hidden,
            vec![128, 64]
        );
        assert!(parse_args(args("--bogus 1")).is_err());
        assert!(parse_args(args("--epochs")).is_err());
        assert!(parse_args(args("--help"))?.is_none());
        let kl = parse_args(args("--variant sparse-kl --rho 0.1 --beta 3"))?.ok_or("")?;
        assert_eq!((kl.variant, kl.rho, kl.beta), (Variant::SparseKl, 0.1, 3.0));
        assert_eq!(kl.code_activation(), Activation::Sigmoid);
        let d = parse_args(args("--variant denoising --noise masking:0.3"))?.ok_or("")?;
        assert_eq!(d.noise(), Some(Noise::Masking { fraction: 0.3 }));
        let d = parse_args(args("--variant denoising"))?.ok_or("")?;
        assert!(matches!(d.noise(), Some(Noise::Gaussian { std: 0.5, .. })));
        assert!(parse_args(args("--variant bogus")).is_err());
        assert!(parse_args(args("--noise gaussian")).is_err());
        let bad = parse_args(args("--variant sparse-kl --rho 1.5"))?.ok_or("")?;
        assert!(bad.penalties().is_err());
        Ok(())
    }

    #[test]
    fn noise_and_penalties_parse() -> Result<(), String> {
        let c = parse_args(args(
            "--noise masking:0.3 --penalty kl:0.05:3 --penalty l2-weights:1e-4",
        ))?
        .ok_or("not help")?;
        assert_eq!(c.noise, Some(Noise::Masking { fraction: 0.3 }));
        let expected: Vec<Penalty> = vec![
            Penalty::kl_sparsity(0.05, 3.0)
                .map_err(|e| e.to_string())?
                .into(),
            Penalty::l2_weights(1e-4).map_err(|e| e.to_string())?.into(),
        ];
        assert_eq!(c.penalties, expected);
        assert!(parse_args(args("--noise masking")).is_err());
        assert!(parse_args(args("--penalty kl:2:1")).is_err()); // rho outside (0, 1)
        assert!(parse_args(args("--penalty kl:0.05")).is_err());
        assert!(parse_args(args("--penalty bogus:1")).is_err());
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
