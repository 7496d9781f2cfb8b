//! Pictures: every PNG decodes, has the stated pixel size and is not blank; bad input gives
//! typed errors. Run with `--features viz`.
#![cfg(feature = "viz")]

mod common;

use std::path::{Path, PathBuf};

use autoencoder::viz::{
    save_features, save_latent_grid, save_latent_map, save_loss_curves, save_reconstructions,
    save_weights, Tiles,
};
use autoencoder::{Activation, Adam, Autoencoder, Error, Noise, Penalty, Result, Trainer};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A fresh, empty folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ae-viz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch folder");
    dir
}

/// A decoded PNG: size and RGB bytes.
struct Png {
    width: u32,
    height: u32,
    grey: bool,
    rgb: Vec<u8>,
}

fn decode(path: &Path) -> Png {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("the PNG exists"),
    ));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    let grey = info.color_type == png::ColorType::Grayscale;
    let buf = match info.color_type {
        png::ColorType::Rgb => buf,
        png::ColorType::Grayscale => buf.iter().flat_map(|&v| [v; 3]).collect(),
        other => panic!("unexpected colour type {other:?}"),
    };
    Png {
        width: info.width,
        height: info.height,
        grey,
        rgb: buf,
    }
}

impl Png {
    /// Variance of all channel values (0..=255).
    fn variance(&self) -> f64 {
        let n = self.rgb.len() as f64;
        let mean = self.rgb.iter().map(|&v| v as f64).sum::<f64>() / n;
        self.rgb
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n
    }

    /// Number of pixels of exactly this colour.
    fn count(&self, colour: [u8; 3]) -> usize {
        self.rgb.chunks(3).filter(|p| *p == colour).count()
    }

    /// Number of distinct colours.
    fn colours(&self) -> usize {
        let mut all: Vec<&[u8]> = self.rgb.chunks(3).collect();
        all.sort_unstable();
        all.dedup();
        all.len()
    }
}

/// Checks a written picture: decodes, has the returned size, is not blank, and left no
/// temporary file in its folder.
fn check(path: &Path, size: (u32, u32), expected: (u32, u32), min_variance: f64) -> Png {
    assert_eq!(size, expected, "returned size of {}", path.display());
    let png = decode(path);
    assert_eq!(
        (png.width, png.height),
        expected,
        "decoded size of {}",
        path.display()
    );
    let variance = png.variance();
    assert!(
        variance > min_variance,
        "{}: pixel variance {variance} <= {min_variance}",
        path.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    png
}

/// 8x8 grey images: bars whose position depends on the row index.
fn bars(n: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, 64), |(i, p)| {
        let (y, x) = (p / 8, p % 8);
        if x == i % 8 || y == (i * 3) % 8 {
            1.0
        } else {
            0.0
        }
    })
}

fn model(n_in: usize, n_latent: usize, seed: u64) -> Result<Autoencoder<f32>> {
    Autoencoder::<f32>::builder(n_in)
        .hidden(16, Activation::Relu)
        .latent(n_latent, Activation::Identity)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn reconstruction_grid_has_one_row_per_array() -> Result<()> {
    let dir = scratch("recon");
    let x = bars(10);
    let noisy = autoencoder::corrupt(
        x.view(),
        Noise::Masking { fraction: 0.3 },
        &mut ChaCha8Rng::seed_from_u64(1),
    )?;
    let recon = model(64, 4, 2)?.reconstruct(x.view())?;
    let path = dir.join("recon.png");
    let tiles = Tiles::grey(8, 8).scale(3).range(0.0, 1.0);
    let size = save_reconstructions(&path, &[x.view(), noisy.view(), recon.view()], &tiles)?;
    // 10 columns of 8*3 + 2 pixels, 3 rows of 8*3 + 2, plus the 2-pixel border.
    let png = check(&path, size, (2 + 10 * 26, 2 + 3 * 26), 1000.0);
    // The bars are white (1.0 with range (0, 1)): 15 pixels, each 3x3, in each original.
    assert!(png.count([255, 255, 255]) >= 10 * 15 * 9);
    assert!(png.grey, "grey tiles are stored as a grey PNG");
    Ok(())
}

#[test]
fn rgb_tiles_keep_their_colours() -> Result<()> {
    let dir = scratch("rgb");
    // 2 images of 4x4 RGB: the first all red, the second all blue.
    let x = Array2::from_shape_fn((2, 48), |(i, k)| {
        let c = k % 3;
        if (i == 0 && c == 0) || (i == 1 && c == 2) {
            1.0f64
        } else {
            0.0
        }
    });
    let path = dir.join("rgb.png");
    let size = save_reconstructions(&path, &[x.view()], &Tiles::rgb(4, 4).scale(1))?;
    let png = check(&path, size, (2 + 2 * 6, 2 + 6), 1000.0);
    assert_eq!(png.count([255, 0, 0]), 16);
    assert_eq!(png.count([0, 0, 255]), 16);
    assert!(!png.grey);
    Ok(())
}

#[test]
fn features_tile_every_first_layer_unit() -> Result<()> {
    let dir = scratch("features");
    let ae = model(64, 4, 3)?; // 16 first-layer units: a 4 x 4 grid
    let path = dir.join("features.png");
    let size = save_features(&path, &ae, &Tiles::grey(8, 8).scale(2))?;
    let png = check(&path, size, (2 + 4 * 18, 2 + 4 * 18), 1000.0);
    // Per-tile normalization: every tile reaches full black or full white (its largest
    // deviation from its mean) and spans more than half the grey levels.
    for tile in 0..16 {
        let (x0, y0) = (2 + (tile % 4) * 18, 2 + (tile / 4) * 18);
        let levels: Vec<u8> = (y0..y0 + 16)
            .flat_map(|y| (x0..x0 + 16).map(move |x| (y, x)))
            .map(|(y, x)| png.rgb[(y * png.width as usize + x) * 3])
            .collect();
        let (lo, hi) = (*levels.iter().min().unwrap(), *levels.iter().max().unwrap());
        assert!(lo == 0 || hi == 255, "tile {tile}: levels {lo}..={hi}");
        assert!(hi - lo > 128, "tile {tile}: levels {lo}..={hi}");
    }

    // Explicit columns, from a raw weight matrix (n_in, n_units).
    let w = ae.layers()[0].weights().to_owned();
    let path = dir.join("weights.png");
    let size = save_weights(&path, w.view(), &Tiles::grey(8, 8).scale(1).columns(5))?;
    check(&path, size, (2 + 5 * 10, 2 + 4 * 10), 1000.0);
    Ok(())
}

#[test]
fn loss_curves_show_every_term_with_a_legend() -> Result<()> {
    let dir = scratch("loss");
    let x = common::structured(200, 16, 2, 0.05, 4);
    let mut ae = Autoencoder::<f64>::builder(16)
        .latent(4, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))?;
    let history = Trainer::new(Adam::new(1e-2))
        .penalty(Penalty::kl_sparsity(0.1, 0.5)?)
        .penalty(Penalty::l2_weights(1e-3)?)
        .epochs(8)
        .fit(&mut ae, x.view(), Some(x.view()))?;
    assert_eq!(history.penalty_names.len(), 2);
    let path = dir.join("loss.png");
    let size = save_loss_curves(&path, &history, (640, 420))?;
    let png = check(&path, size, (640, 420), 300.0);
    // Five curves (objective, reconstruction, validation, two penalties), each in its own
    // palette colour; anti-aliased text adds greys, so just require the colours to be there.
    for colour in [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
    ] {
        assert!(png.count(colour) > 20, "curve colour {colour:?} missing");
    }
    Ok(())
}

#[test]
fn loss_curves_of_one_epoch_without_validation() -> Result<()> {
    let dir = scratch("loss1");
    let x = common::structured(50, 8, 2, 0.05, 6);
    let mut ae = Autoencoder::<f64>::builder(8)
        .latent(2, Activation::Tanh)
        .build(&mut ChaCha8Rng::seed_from_u64(7))?;
    let history = Trainer::new(Adam::new(1e-2))
        .epochs(1)
        .fit(&mut ae, x.view(), None)?;
    let path = dir.join("loss.png");
    let size = save_loss_curves(&path, &history, (300, 200))?;
    check(&path, size, (300, 200), 100.0);
    Ok(())
}

#[test]
fn latent_map_colours_points_by_label() -> Result<()> {
    let dir = scratch("latent");
    let x = bars(120);
    let codes = model(64, 2, 8)?.encode(x.view())?;
    let labels: Vec<usize> = (0..120).map(|i| i % 8).collect();
    let path = dir.join("latent.png");
    let size = save_latent_map(&path, codes.view(), &labels, (500, 450))?;
    let png = check(&path, size, (500, 450), 300.0);
    assert!(png.colours() > 20, "only {} colours", png.colours());
    // The legend draws a full-colour dot for every label present.
    for colour in [[31, 119, 180], [127, 127, 127]] {
        assert!(png.count(colour) > 10, "label colour {colour:?} missing");
    }
    Ok(())
}

#[test]
fn latent_grid_decodes_a_square_of_codes() -> Result<()> {
    let dir = scratch("grid");
    let ae = model(64, 2, 9)?;
    let path = dir.join("grid.png");
    let size = save_latent_grid(&path, &ae, &Tiles::grey(8, 8), 5, -3.0..=3.0, -3.0..=3.0)?;
    check(&path, size, (2 + 5 * 18, 2 + 5 * 18), 200.0);
    Ok(())
}

#[test]
fn bad_input_gives_typed_errors() -> Result<()> {
    let dir = scratch("errors");
    let path = dir.join("x.png");
    let tiles = Tiles::grey(8, 8);
    let x = bars(4);

    let wrong = Array2::<f32>::zeros((4, 63));
    let err = save_reconstructions(&path, &[x.view(), wrong.view()], &tiles).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let fewer = x.select(Axis(0), &[0, 1]);
    let err = save_reconstructions(&path, &[x.view(), fewer.view()], &tiles).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = save_reconstructions::<f32>(&path, &[], &tiles).unwrap_err();
    assert!(matches!(err, Error::EmptyData { .. }), "{err}");
    let empty = Array2::<f32>::zeros((0, 64));
    let err = save_reconstructions(&path, &[empty.view()], &tiles).unwrap_err();
    assert!(matches!(err, Error::EmptyData { .. }), "{err}");
    let mut nan = x.clone();
    nan[[2, 5]] = f32::NAN;
    let err = save_reconstructions(&path, &[nan.view()], &tiles).unwrap_err();
    assert!(
        matches!(err, Error::NonFiniteData { row: 2, col: 5, .. }),
        "{err}"
    );

    for bad in [
        Tiles::grey(8, 8).scale(0),
        Tiles::grey(0, 8),
        Tiles::grey(8, 8).range(1.0, 0.0),
        Tiles::grey(8, 8).range(f64::NAN, 1.0),
    ] {
        let err = save_reconstructions(&path, &[x.view()], &bad).unwrap_err();
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
    }

    // 1000 tiles in one row: 18002 pixels wide, over the 16384 limit.
    let many = Array2::<f32>::zeros((1000, 64));
    let err = save_reconstructions(&path, &[many.view()], &tiles).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");

    let err =
        save_latent_grid(&path, &model(64, 3, 1)?, &tiles, 4, -1.0..=1.0, -1.0..=1.0).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let two = model(64, 2, 1)?;
    for (steps, range) in [
        (1, -1.0..=1.0),
        (101, -1.0..=1.0),
        (4, 1.0..=1.0),
        (4, f64::NEG_INFINITY..=1.0),
    ] {
        let err = save_latent_grid(&path, &two, &tiles, steps, range, -1.0..=1.0).unwrap_err();
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
    }

    let codes = Array2::<f32>::zeros((5, 2));
    let err = save_latent_map(&path, codes.view(), &[0, 1, 2], (300, 300)).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = save_latent_map(&path, x.view(), &[0, 1, 2, 3], (300, 300)).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = save_latent_map(&path, codes.view(), &[0; 5], (10, 300)).unwrap_err();
    assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");

    let history = autoencoder::History {
        epochs: vec![],
        penalty_names: vec![],
        best_epoch: None,
        stop: autoencoder::StopReason::Completed,
    };
    let err = save_loss_curves(&path, &history, (300, 300)).unwrap_err();
    assert!(matches!(err, Error::EmptyData { .. }), "{err}");

    // A folder that does not exist: an Io error naming the path; nothing is left behind.
    let missing = dir.join("no-such-folder").join("x.png");
    let err = save_reconstructions(&missing, &[x.view()], &tiles).unwrap_err();
    match &err {
        Error::Io { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected Error::Io, got {other}"),
    }
    assert!(err.to_string().contains("no-such-folder"), "{err}");
    assert!(!path.exists(), "no picture was written on error");
    Ok(())
}

#[test]
fn a_failed_save_keeps_the_previous_picture() -> Result<()> {
    let dir = scratch("keep");
    let path = dir.join("recon.png");
    let x = bars(3);
    save_reconstructions(&path, &[x.view()], &Tiles::grey(8, 8))?;
    let before = std::fs::read(&path).expect("written");
    let mut nan = x.clone();
    nan[[0, 0]] = f32::NAN;
    assert!(save_reconstructions(&path, &[nan.view()], &Tiles::grey(8, 8)).is_err());
    assert_eq!(std::fs::read(&path).expect("still there"), before);
    Ok(())
}
