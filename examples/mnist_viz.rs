//! Pictures of what autoencoders learn on MNIST: a denoising sparse autoencoder's
//! reconstructions, learned features and loss curves, and a 2-unit code's latent map and
//! decoded grid, with a progress bar (or plain lines when not on a terminal).
//!
//! ```text
//! MNIST_DIR=../shared/data/mnist cargo run --release --features viz,progress \
//!     --example mnist_viz -- --out docs/img --epochs 10
//! ```
//!
//! Options: `--out DIR` (default `pictures`), `--epochs N` (default 10), `--train N`
//! training images to use (default all 60,000). MNIST's four `.gz` files are read from
//! `MNIST_DIR`, else `./data/mnist`.

use std::error::Error;
use std::io::Read;
use std::path::{Path, PathBuf};

use autoencoder::viz::{self, Tiles};
use autoencoder::{
    corrupt, Activation, Adam, Autoencoder, Loss, Noise, Penalty, Progress, Trainer,
};
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let args = Args::parse()?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        format!(
            "cannot create the output folder {}: {e}",
            args.out.display()
        )
    })?;
    let dir = mnist_dir();
    let (train, _) = load(&dir, "train", args.train)?;
    let (test, test_labels) = load(&dir, "t10k", usize::MAX)?;
    println!(
        "MNIST: {} training and {} test images from {}",
        train.nrows(),
        test.nrows(),
        dir.display()
    );
    let tiles = Tiles::grey(28, 28).scale(2).range(0.0, 1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    // 1. Denoising sparse autoencoder 784-196-784: features, reconstructions, loss curves.
    println!("denoising sparse autoencoder 784-196-784, masking noise 0.3, KL sparsity");
    let mut ae = Autoencoder::<f32>::builder(784)
        .latent(196, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut rng)?;
    let noise = Noise::Masking { fraction: 0.3 };
    let trainer = Trainer::new(Adam::new(1e-3))
        .loss(Loss::BinaryCrossEntropy)
        .noise(noise)
        .penalty(Penalty::kl_sparsity(0.05, 1e-3)?)
        .penalty(Penalty::l2_weights(3e-6)?)
        .epochs(args.epochs)
        .batch_size(128)
        .seed(2);
    let mut trainer = Progress::new(args.epochs).install(trainer);
    let history = trainer.fit(&mut ae, train.view(), Some(test.view()))?;

    let shown = test.slice(s![..16, ..]);
    let noisy = corrupt(shown, noise, &mut rng)?;
    let recon = ae.reconstruct(noisy.view())?;
    let rows = [shown, noisy.view(), recon.view()];
    save(&args.out, "reconstructions.png", |p| {
        viz::save_reconstructions(p, &rows, &tiles)
    })?;
    let features = tiles.scale(1).columns(14);
    save(&args.out, "features.png", |p| {
        viz::save_features(p, &ae, &features)
    })?;
    save(&args.out, "loss.png", |p| {
        viz::save_loss_curves(p, &history, (720, 440))
    })?;

    // 2. A 2-unit code, 784-256-64-2-64-256-784: latent map and decoded grid.
    println!("autoencoder with a 2-unit code, 784-256-64-2-64-256-784");
    let mut ae2 = Autoencoder::<f32>::builder(784)
        .hidden(256, Activation::Relu)
        .hidden(64, Activation::Relu)
        .latent(2, Activation::Identity)
        .output(Activation::Sigmoid)
        .build(&mut rng)?;
    let trainer = Trainer::new(Adam::new(1e-3))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(args.epochs)
        .batch_size(128)
        .seed(3);
    let mut trainer = Progress::new(args.epochs).install(trainer);
    let history2 = trainer.fit(&mut ae2, train.view(), Some(test.view()))?;
    let codes = ae2.encode(test.view())?;
    save(&args.out, "latent_map.png", |p| {
        viz::save_latent_map(p, codes.view(), &test_labels, (640, 600))
    })?;
    let (z0, z1) = (quantiles(&codes, 0), quantiles(&codes, 1));
    save(&args.out, "latent_grid.png", |p| {
        viz::save_latent_grid(p, &ae2, &tiles.scale(1), 15, z0.clone(), z1.clone())
    })?;
    save(&args.out, "loss_2d.png", |p| {
        viz::save_loss_curves(p, &history2, (720, 440))
    })?;
    Ok(())
}

/// Runs `f` on `dir/name` and prints what was written.
fn save(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&Path) -> autoencoder::Result<(u32, u32)>,
) -> Res<()> {
    let path = dir.join(name);
    let (w, h) = f(&path)?;
    println!("wrote {} ({w} x {h})", path.display());
    Ok(())
}

/// The 1st to 99th percentile of code unit `d`: the region the decoded grid spans.
fn quantiles(codes: &Array2<f32>, d: usize) -> std::ops::RangeInclusive<f64> {
    let mut v: Vec<f64> = codes.column(d).iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    at(0.01)..=at(0.99)
}

struct Args {
    out: PathBuf,
    epochs: usize,
    train: usize,
}

impl Args {
    fn parse() -> Res<Args> {
        let mut args = Args {
            out: PathBuf::from("pictures"),
            epochs: 10,
            train: usize::MAX,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--out" => args.out = PathBuf::from(value()?),
                "--epochs" => args.epochs = value()?.parse()?,
                "--train" => args.train = value()?.parse()?,
                _ => {
                    return Err(format!(
                        "unknown option {flag}; use --out DIR, --epochs N, --train N"
                    )
                    .into())
                }
            }
        }
        Ok(args)
    }
}

/// `MNIST_DIR` if set, else `./data/mnist`.
fn mnist_dir() -> PathBuf {
    std::env::var_os("MNIST_DIR").map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from)
}

/// Reads `{set}-images-idx3-ubyte.gz` and `{set}-labels-idx1-ubyte.gz` (at most `limit`
/// images): pixels scaled to `[0, 1]`, `(n, 784)`, and the labels.
fn load(dir: &Path, set: &str, limit: usize) -> Res<(Array2<f32>, Vec<usize>)> {
    let images = read_idx(&dir.join(format!("{set}-images-idx3-ubyte.gz")), 0x0803)?;
    let labels = read_idx(&dir.join(format!("{set}-labels-idx1-ubyte.gz")), 0x0801)?;
    let n = (images.len() / 784).min(labels.len()).min(limit);
    let x = Array2::from_shape_fn((n, 784), |(i, j)| images[i * 784 + j] as f32 / 255.0);
    Ok((x, labels[..n].iter().map(|&l| l as usize).collect()))
}

/// The data bytes of a gzipped IDX file, after checking its magic number.
fn read_idx(path: &Path, magic: u32) -> Res<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot open {}: {e}; set MNIST_DIR to the folder holding MNIST's four .gz files",
            path.display()
        )
    })?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot decompress {}: {e}", path.display()))?;
    let header = |k: usize| {
        bytes
            .get(4 * k..4 * k + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if header(0) != Some(magic) {
        return Err(format!(
            "{} is not an IDX file of magic {magic:#06x}",
            path.display()
        )
        .into());
    }
    let dims = (magic & 0xff) as usize;
    let count: usize = (1..=dims)
        .map(|k| header(k).map(|d| d as usize))
        .product::<Option<usize>>()
        .ok_or_else(|| format!("{} has a truncated header", path.display()))?;
    let start = 4 + 4 * dims;
    if bytes.len() != start + count {
        return Err(format!(
            "{} holds {} data bytes, its header says {count}",
            path.display(),
            bytes.len().saturating_sub(start)
        )
        .into());
    }
    Ok(bytes.split_off(start))
}
