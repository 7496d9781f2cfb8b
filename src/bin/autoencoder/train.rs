//! `autoencoder train DATA -o MODEL`: fit a model to a data file and save it.

use std::path::PathBuf;
use std::time::Instant;

use autoencoder::data::{Scaler, Scaling, Split};
use autoencoder::{
    Activation, Autoencoder, Checkpoint, EarlyStopping, Error, Float, History, Loss, Noise,
    Optimizer, Penalty, Progress, Result, Trainer, Tying,
};
use clap::{Args, ValueEnum};
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::args::{self, spec, ArchitectureArgs, OptimizerKind, WithOptimizer};
use crate::files;

/// Train an autoencoder on a data file (one sample per row) and save it
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    autoencoder train digits.csv --label-column label -o digits.model\n  \
    autoencoder train cells.csv --label-column diagnosis --normal benign -o cells.model\n  \
    autoencoder train train-images-idx3-ubyte.gz --hidden 256 --latent 32 --epochs 20 -o mnist.model\n  \
    autoencoder train x.npy --scale standard --penalty l2-weights:1e-4 --noise gaussian:0.1 -o x.model\n\n\
    Defaults chosen from the data (printed at the start): data all in [0, 1] get a sigmoid \
    output, binary cross-entropy and no scaling; other data get an identity output, mean \
    squared error and standard scaling (the scaler is saved in MODEL).")]
pub struct Train {
    /// Training data: .npy, .csv or IDX images (one sample per row)
    pub data: PathBuf,
    /// Where to save the model (written atomically)
    #[arg(short = 'o', long = "out", value_name = "MODEL")]
    pub out: PathBuf,
    /// CSV: the column holding labels (a header name or a 0-based index), left out of the features
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// Train on the rows whose label is VALUE only (the normal ones, for anomaly scores)
    #[arg(long, value_name = "VALUE", requires = "label_column")]
    pub normal: Option<String>,

    #[command(flatten)]
    pub arch: ArchitectureArgs,
    /// Output activation [default: sigmoid for data in [0, 1], else identity]
    #[arg(long, value_name = "S", value_parser = spec::<Activation>, help_heading = "Architecture")]
    pub output: Option<Activation>,
    /// Decoder weights tied to the encoder's (transposed)
    #[arg(long, help_heading = "Architecture")]
    pub tied: bool,
    /// A variational autoencoder: a Gaussian code of --latent units (adds gaussian-kl:1
    /// unless a gaussian-kl penalty is given)
    #[arg(long, help_heading = "Architecture")]
    pub vae: bool,

    /// Loss: mse, sse, bce, bce-sum, mae, huber[:DELTA] [default: bce for data in [0, 1], else mse]
    #[arg(long, value_name = "L", value_parser = spec::<Loss>, help_heading = "Objective")]
    pub loss: Option<Loss>,
    /// Add a penalty (repeatable): kl:RHO:BETA, l1-activity:L, l2-activity:L, contractive:L,
    /// l2-weights:L, l1-weights:L, gaussian-kl:BETA[:WARMUP]
    #[arg(long = "penalty", value_name = "P", value_parser = spec::<Penalty>,
          help_heading = "Objective")]
    pub penalties: Vec<Penalty>,
    /// Corrupt the input (denoising): masking:F, salt-pepper:F, gaussian:STD[:LO:HI]
    #[arg(long, value_name = "NOISE", value_parser = spec::<Noise>, help_heading = "Objective")]
    pub noise: Option<Noise>,

    /// Epochs
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "Training"
    )]
    pub epochs: usize,
    /// Mini-batch size
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        help_heading = "Training"
    )]
    pub batch_size: usize,
    /// Optimizer
    #[arg(long, value_name = "O", value_enum, default_value_t = OptimizerKind::Adam,
          help_heading = "Training")]
    pub optimizer: OptimizerKind,
    /// Learning rate [default: 1e-3 for adam, 0.1 for sgd and momentum]
    #[arg(long, value_name = "X", help_heading = "Training")]
    pub lr: Option<f64>,
    /// Seed of the initial weights, the split, the shuffling and the noise
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Training")]
    pub seed: u64,
    /// Fraction of the rows held out for validation (0 for none)
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.1,
        help_heading = "Training"
    )]
    pub valid_fraction: f64,
    /// Stop after N epochs without improvement of the validation loss, keeping the best weights
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub early_stopping: Option<usize>,
    /// Threads for the matrix products [default: all cores, at most 4]
    #[arg(long, value_name = "N", help_heading = "Training")]
    pub threads: Option<usize>,
    /// Element type of the model
    #[arg(long, value_enum, default_value_t = Precision::F32, help_heading = "Training")]
    pub precision: Precision,

    /// Input scaling, fitted on the training rows and saved in MODEL
    /// [default: none for data in [0, 1], else standard]
    #[arg(long, value_name = "S", value_enum, help_heading = "Data")]
    pub scale: Option<ScaleKind>,
    /// Save a checkpoint here after every epoch (atomically), to resume from
    #[arg(long, value_name = "PATH", help_heading = "Runs")]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (give the first run's flags)
    #[arg(long, value_name = "PATH", help_heading = "Runs")]
    pub resume: Option<PathBuf>,
    /// Print one JSON line with the results on standard output
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// The element types a model can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    F32,
    F64,
}

/// The input scalings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleKind {
    /// Each column to [0, 1]
    Minmax,
    /// Each column to mean 0, standard deviation 1
    Standard,
    /// The data as they are
    None,
}

/// What the data decided where the flags did not.
struct Defaults {
    unit_range: bool,
    output: Activation,
    loss: Loss,
    scale: ScaleKind,
}

impl Train {
    fn defaults(&self, x: ArrayView2<f64>) -> Defaults {
        let unit_range = x.iter().all(|&v| (0.0..=1.0).contains(&v));
        let scale = self.scale.unwrap_or(if unit_range {
            ScaleKind::None
        } else {
            ScaleKind::Standard
        });
        // Data that stay in [0, 1] after scaling suit a sigmoid output and cross-entropy.
        let unit_after = unit_range && scale != ScaleKind::Standard || scale == ScaleKind::Minmax;
        let output = self.output.unwrap_or(if unit_after {
            Activation::Sigmoid
        } else {
            Activation::Identity
        });
        let loss = self
            .loss
            .unwrap_or(if output == Activation::Sigmoid && unit_after {
                Loss::BinaryCrossEntropy
            } else {
                Loss::MeanSquaredError
            });
        Defaults {
            unit_range,
            output,
            loss,
            scale,
        }
    }
}

/// Runs `autoencoder train`.
pub fn run(t: &Train) -> Result<()> {
    let table = files::read(&t.data, t.label_column.as_deref())?;
    let x = match (&t.normal, &table.labels) {
        (Some(normal), Some(labels)) => {
            let rows: Vec<usize> = (0..labels.len())
                .filter(|&i| &labels[i] == normal)
                .collect();
            if rows.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "no row of {} has the label `{normal}` (--normal)",
                    t.data.display()
                )));
            }
            table.x.select(ndarray::Axis(0), &rows)
        }
        _ => table.x,
    };
    match t.precision {
        Precision::F32 => train::<f32>(t, x),
        Precision::F64 => train::<f64>(t, x),
    }
}

fn train<T: Float>(t: &Train, x: Array2<f64>) -> Result<()> {
    let start = Instant::now();
    if let Some(n) = t.threads {
        autoencoder::set_threads(n)?;
    }
    let d = t.defaults(x.view());
    let split = Split::new(x.nrows(), t.valid_fraction, t.seed)?;
    let (train_rows, valid_rows) = split.apply(x.view())?;
    let scaler = match d.scale {
        ScaleKind::None => None,
        ScaleKind::Minmax => Some(Scaler::fit(
            train_rows.view(),
            Scaling::MinMax { lo: 0.0, hi: 1.0 },
        )?),
        ScaleKind::Standard => Some(Scaler::fit(train_rows.view(), Scaling::Standard)?),
    };
    let prepare = |rows: Array2<f64>| -> Result<Array2<T>> {
        let rows = match &scaler {
            Some(s) => s.transform(rows.view())?,
            None => rows,
        };
        Ok(rows.mapv(T::cast))
    };
    let train_x = prepare(train_rows)?;
    let valid_x = (valid_rows.nrows() > 0)
        .then(|| prepare(valid_rows))
        .transpose()?;
    let penalties = penalties(t);
    if t.early_stopping.is_some() && valid_x.is_none() {
        return Err(Error::InvalidConfig(
            "--early-stopping watches the validation loss; give a --valid-fraction above 0".into(),
        ));
    }
    // Built before anything is printed: a model that cannot be built is the one error line.
    let mut model = build::<T>(t, x.ncols(), d.output)?;
    if !t.json {
        eprintln!(
            "{} rows x {} columns from {} ({} for training, {} for validation); data {} [0, 1]",
            x.nrows(),
            x.ncols(),
            t.data.display(),
            train_x.nrows(),
            valid_x.as_ref().map_or(0, |v| v.nrows()),
            if d.unit_range { "in" } else { "not all in" },
        );
        eprintln!(
            "settings: output {}, loss {}, scale {}, penalties [{}], noise {}, {} epochs of batches of {}",
            d.output,
            d.loss,
            d.scale
                .to_possible_value()
                .map_or("?".into(), |v| v.get_name().to_string()),
            penalties.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
            t.noise.map_or("none".to_string(), |n| n.to_string()),
            t.epochs,
            t.batch_size,
        );
    }
    let lr = t.lr.unwrap_or(t.optimizer.default_lr());
    let history = args::with_optimizer::<T, _>(
        t.optimizer,
        lr,
        Fit {
            t,
            loss: d.loss,
            penalties: &penalties,
            model: &mut model,
            train: train_x.view(),
            valid: valid_x.as_ref().map(|v| v.view()),
        },
    )?;
    crate::model_file::save(&t.out, &model, scaler.as_ref())?;
    report(t, &history, start.elapsed().as_secs_f64());
    Ok(())
}

/// The penalties: each `--penalty`, and for `--vae` the Gaussian KL unless one was given.
fn penalties(t: &Train) -> Vec<Penalty> {
    let mut penalties = t.penalties.clone();
    let has_kl = penalties
        .iter()
        .any(|p| matches!(p, Penalty::GaussianKl(_)));
    if t.vae && !has_kl {
        if let Ok(kl) = Penalty::gaussian_kl(1.0) {
            penalties.push(kl.into());
        }
    }
    penalties
}

fn build<T: Float>(t: &Train, n_in: usize, output: Activation) -> Result<Autoencoder<T>> {
    let a = &t.arch;
    let mut b = Autoencoder::<T>::builder(n_in);
    for &w in &a.hidden {
        b = b.hidden(w, a.activation);
    }
    b = if t.vae {
        b.gaussian_latent(a.latent)
    } else {
        b.latent(a.latent, a.code_activation.unwrap_or(a.activation))
    };
    b = b.output(output);
    if let Some(init) = a.init {
        b = b.init(init);
    }
    if t.tied {
        b = b.tying(Tying::Tied);
    }
    b.build(&mut ChaCha8Rng::seed_from_u64(t.seed))
}

/// The training run, with its optimizer's type.
struct Fit<'a, T: Float> {
    t: &'a Train,
    loss: Loss,
    penalties: &'a [Penalty],
    model: &'a mut Autoencoder<T>,
    train: ArrayView2<'a, T>,
    valid: Option<ArrayView2<'a, T>>,
}

impl<T: Float> WithOptimizer<T> for Fit<'_, T> {
    type Output = Result<History>;

    fn run<O: Optimizer<T> + 'static>(self, optimizer: O) -> Result<History> {
        let t = self.t;
        let mut trainer = Trainer::new(optimizer)
            .loss(self.loss)
            .epochs(t.epochs)
            .batch_size(t.batch_size)
            .seed(t.seed);
        for &p in self.penalties {
            trainer = trainer.penalty(p);
        }
        if let Some(noise) = t.noise {
            trainer = trainer.noise(noise);
        }
        if let Some(patience) = t.early_stopping {
            trainer = trainer.early_stopping(EarlyStopping::new(patience));
        }
        if let Some(path) = &t.checkpoint {
            trainer = trainer.checkpoint(path, 1);
        }
        let mut trainer = Progress::new(t.epochs).install(trainer);
        match &t.resume {
            Some(path) => {
                let checkpoint = Checkpoint::<T>::load(path)?;
                trainer.resume(self.model, checkpoint, self.train, self.valid)
            }
            None => trainer.fit(self.model, self.train, self.valid),
        }
    }
}

fn report(t: &Train, history: &History, seconds: f64) {
    let last = history.last();
    let train_loss = last.map(|r| r.train_loss);
    let valid_loss = last.and_then(|r| r.valid_loss);
    if t.json {
        println!(
            "{}",
            json!({
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "epochs": history.epochs.len(),
                "best_epoch": history.best_epoch,
                "stop": format!("{:?}", history.stop),
                "seconds": seconds,
                "model": t.out.display().to_string(),
            })
        );
    } else {
        eprintln!(
            "saved {} after {} epochs in {seconds:.1} s: train loss {}, valid loss {}",
            t.out.display(),
            history.epochs.len(),
            train_loss.map_or("-".into(), |v| format!("{v:.6}")),
            valid_loss.map_or("-".into(), |v| format!("{v:.6}")),
        );
    }
}
