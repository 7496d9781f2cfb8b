//! `autoencoder pictures MODEL DATA --out DIR` (with the `viz` feature): reconstructions,
//! learned features and, for a checkpoint, the loss curves, as PNG files.

use std::path::PathBuf;

use autoencoder::viz::{self, Tiles};
use autoencoder::{Autoencoder, Checkpoint, Error, Float, Result};
use clap::Args;
use ndarray::{s, Array2};

use crate::files;
use crate::model_file::{self, cast, Loaded};

/// Draw a model's reconstructions of image rows and its learned features (PNG)
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    autoencoder pictures mnist.model t10k-images-idx3-ubyte.gz --out pictures\n  \
    autoencoder pictures run.ckpt faces.npy --image 32x32 --out pictures\n\n\
    Writes reconstructions.png (the first --count rows over their reconstructions), \
    features.png (the first layer's weights, one tile per unit) and, for a checkpoint, \
    loss.png (training and validation loss per epoch).")]
pub struct Pictures {
    /// A model or checkpoint file
    pub model: PathBuf,
    /// Image rows: .npy, .csv or IDX images
    pub data: PathBuf,
    /// The folder to write the pictures into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Image size HxW [default: square, from the row width]
    #[arg(long, value_name = "HxW", value_parser = image_size)]
    pub image: Option<(usize, usize)>,
    /// How many images to draw
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub count: usize,
}

/// `--image HxW`.
fn image_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match s.split_once('x').map(|(h, w)| (parse(h), parse(w))) {
        Some((Some(h), Some(w))) => Ok((h, w)),
        _ => Err(format!("`{s}` is not HxW, e.g. 28x28")),
    }
}

/// Runs `autoencoder pictures`.
pub fn run(p: &Pictures) -> Result<()> {
    std::fs::create_dir_all(&p.out).map_err(|source| Error::Io {
        action: "cannot create the folder",
        path: p.out.clone(),
        source,
    })?;
    if let Ok(c) = Checkpoint::<f32>::load(&p.model) {
        viz::save_loss_curves(p.out.join("loss.png"), c.history(), (640, 400))?;
        return draw(p, c.model(), None);
    }
    if let Ok(c) = Checkpoint::<f64>::load(&p.model) {
        viz::save_loss_curves(p.out.join("loss.png"), c.history(), (640, 400))?;
        return draw(p, c.model(), None);
    }
    let file = model_file::load(&p.model)?;
    let x = files::read(&p.data, None)?.x;
    let x = file.scale_in(x)?;
    match &file.model {
        Loaded::F32(m) => draw(p, m, Some(x)),
        Loaded::F64(m) => draw(p, m, Some(x)),
    }
}

fn draw<T: Float>(p: &Pictures, m: &Autoencoder<T>, x: Option<Array2<f64>>) -> Result<()> {
    let x = match x {
        Some(x) => x,
        None => files::read(&p.data, None)?.x,
    };
    let n_in = m.n_in();
    let (h, w) = match p.image {
        Some(size) => size,
        None => {
            let side = (n_in as f64).sqrt().round() as usize;
            if side * side != n_in {
                return Err(Error::InvalidConfig(format!(
                    "rows of {n_in} values are not square images; give --image HxW"
                )));
            }
            (side, side)
        }
    };
    let tiles = Tiles::grey(h, w).scale(2);
    let rows = x.slice(s![..p.count.min(x.nrows()), ..]);
    let input = cast::<T>(rows);
    let recon = m.reconstruct(input.view())?;
    viz::save_reconstructions(
        p.out.join("reconstructions.png"),
        &[input.view(), recon.view()],
        &tiles,
    )?;
    viz::save_features(p.out.join("features.png"), m, &tiles)?;
    eprintln!(
        "wrote reconstructions.png and features.png in {}",
        p.out.display()
    );
    Ok(())
}
