//! Pictures and plots as PNG files (Cargo feature `viz`): reconstruction grids, learned
//! features, loss curves, latent maps and decoded grids over a 2-D code space.
//!
//! Images are rows of a `(n, pixels)` array, as the model sees them; [`Tiles`] says how a
//! row becomes a picture (height, width, grey or RGB, magnification, value range). Plots
//! are drawn with `plotters`' bitmap backend and an embedded subset of DejaVu Sans
//! (`assets/`), so no system font library is needed. Every picture is written atomically
//! (temporary file in the same folder, fsync, rename) as an 8-bit PNG, grey when every
//! pixel is grey and RGB otherwise; every function returns the picture's
//! `(width, height)` in pixels.
//!
//! ```
//! use autoencoder::viz::{save_reconstructions, Tiles};
//! use ndarray::Array2;
//! # fn main() -> autoencoder::Result<()> {
//! let x = Array2::from_shape_fn((5, 64), |(i, j)| ((i + j) % 8) as f32 / 7.0); // 5 images 8x8
//! let recon = x.mapv(|v| 0.9 * v);
//! let path = std::env::temp_dir().join("doc-reconstructions.png");
//! let (width, height) = save_reconstructions(&path, &[x.view(), recon.view()], &Tiles::grey(8, 8))?;
//! assert_eq!((width, height), (5 * (2 * 8 + 2) + 2, 2 * (2 * 8 + 2) + 2));
//! # Ok(()) }
//! ```

use std::io::Write;
use std::ops::RangeInclusive;
use std::path::Path;

use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::data::{check_rows, value_range};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::fs::write_atomic;
use crate::model::Autoencoder;

/// Pixels between tiles and around the grid.
const PAD: usize = 2;

/// Colour between tiles of image grids (mid grey).
const GAP: [u8; 3] = [128, 128, 128];

/// Colour between feature tiles (black: mid grey means a zero weight there).
const FEATURE_GAP: [u8; 3] = [0, 0, 0];

/// How a data row becomes an image tile.
///
/// A row holds `height * width * channels` values, row-major: pixel `(y, x)` channel `c`
/// is at index `(y * width + x) * channels + c` (grey: `channels = 1`; RGB: `3`, interleaved).
/// Each tile is drawn `scale` times larger; tiles are separated by 2 pixels, so a grid of
/// `rows x columns` tiles is `2 + columns * (width * scale + 2)` pixels wide and
/// `2 + rows * (height * scale + 2)` high.
///
/// | setting | default | range |
/// | --- | --- | --- |
/// | `scale` | 2 | `1..=32` |
/// | `columns` (feature pictures) | `ceil(sqrt(units))` | `>= 1` |
/// | `range` (images) | min and max over everything shown | `lo < hi`, finite |
///
/// ```
/// use autoencoder::viz::Tiles;
/// let mnist = Tiles::grey(28, 28).scale(3).range(0.0, 1.0);
/// assert_eq!(mnist.pixels(), 784);
/// assert_eq!(Tiles::rgb(32, 32).pixels(), 3072);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tiles {
    height: usize,
    width: usize,
    channels: usize,
    scale: usize,
    columns: Option<usize>,
    range: Option<(f64, f64)>,
}

impl Tiles {
    /// Grey images of `height x width` pixels, one value per pixel.
    pub fn grey(height: usize, width: usize) -> Self {
        Tiles {
            height,
            width,
            channels: 1,
            scale: 2,
            columns: None,
            range: None,
        }
    }

    /// Colour images of `height x width` pixels, three interleaved values (R, G, B) per pixel.
    pub fn rgb(height: usize, width: usize) -> Self {
        Tiles {
            channels: 3,
            ..Tiles::grey(height, width)
        }
    }

    /// Draws each image pixel as a `scale x scale` block.
    pub fn scale(mut self, scale: usize) -> Self {
        self.scale = scale;
        self
    }

    /// Number of tiles per row in feature pictures.
    pub fn columns(mut self, columns: usize) -> Self {
        self.columns = Some(columns);
        self
    }

    /// Maps values in `[lo, hi]` to black..white (outside values are clamped), instead of
    /// the min and max of what is shown. Use `(0.0, 1.0)` for data scaled to `[0, 1]`.
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// Values per image: `height * width * channels`.
    pub fn pixels(&self) -> usize {
        self.height * self.width * self.channels
    }

    fn validate(&self) -> Result<()> {
        crate::error::check_range(
            "tile height",
            self.height as f64,
            self.height >= 1,
            "at least 1 pixel",
        )?;
        crate::error::check_range(
            "tile width",
            self.width as f64,
            self.width >= 1,
            "at least 1 pixel",
        )?;
        crate::error::check_range(
            "tile scale",
            self.scale as f64,
            (1..=32).contains(&self.scale),
            "an integer in 1..=32",
        )?;
        if let Some(c) = self.columns {
            crate::error::check_range("tile columns", c as f64, c >= 1, "at least 1")?;
        }
        if let Some((lo, hi)) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::hyper(
                    "tile range",
                    format!("({lo}, {hi})"),
                    "finite lo < hi",
                ));
            }
        }
        Ok(())
    }

    /// `(width, height)` in pixels of a grid of `rows x cols` tiles.
    fn grid_size(&self, rows: usize, cols: usize) -> (usize, usize) {
        (
            PAD + cols * (self.width * self.scale + PAD),
            PAD + rows * (self.height * self.scale + PAD),
        )
    }
}

/// An RGB picture being assembled from tiles.
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

/// Largest side of a picture, in pixels.
const MAX_SIDE: usize = 16384;

impl Canvas {
    /// A canvas of `(width, height)`, at most [`MAX_SIDE`] pixels each.
    fn new((width, height): (usize, usize), background: [u8; 3]) -> Result<Self> {
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidConfig(format!(
                "the picture would be {width} x {height} pixels, more than {MAX_SIDE} on a side: \
                 show fewer images or use a smaller tile scale"
            )));
        }
        Ok(Canvas {
            width,
            height,
            rgb: background.repeat(width * height),
        })
    }

    /// Draws image `values` (one row, [`Tiles::pixels`] long) at grid position
    /// `(row, col)`, mapping each value through `level` to `0..=255`.
    fn tile<T: Float>(
        &mut self,
        tiles: &Tiles,
        (row, col): (usize, usize),
        values: ArrayView1<T>,
        level: impl Fn(T) -> u8,
    ) {
        let s = tiles.scale;
        let x0 = PAD + col * (tiles.width * s + PAD);
        let y0 = PAD + row * (tiles.height * s + PAD);
        for y in 0..tiles.height * s {
            for x in 0..tiles.width * s {
                let base = ((y / s) * tiles.width + x / s) * tiles.channels;
                let out = ((y0 + y) * self.width + x0 + x) * 3;
                for c in 0..3 {
                    self.rgb[out + c] = level(values[base + c.min(tiles.channels - 1)]);
                }
            }
        }
    }

    fn save(&self, path: &Path) -> Result<(u32, u32)> {
        let size = (self.width as u32, self.height as u32);
        write_png(path, size, &self.rgb)?;
        Ok(size)
    }
}

/// Maps `[lo, hi]` linearly onto `0..=255`, clamping.
fn linear_level<T: Float>((lo, hi): (f64, f64)) -> impl Fn(T) -> u8 {
    let span = if hi > lo { hi - lo } else { 1.0 };
    move |v: T| ((v.as_f64() - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8
}

/// Checks an image array: non-empty, [`Tiles::pixels`] wide, finite.
fn check_images<T: Float>(x: ArrayView2<T>, tiles: &Tiles, context: &'static str) -> Result<()> {
    check_rows(x, Some(tiles.pixels()), context)
}

/// Min and max over all values of `arrays` (each checked non-empty), through the one
/// [`value_range`].
fn range_of<T: Float>(arrays: &[ArrayView2<T>]) -> (f64, f64) {
    arrays
        .iter()
        .map(|a| value_range(*a))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (l, h)| {
            (lo.min(l.as_f64()), hi.max(h.as_f64()))
        })
}

/// Saves a grid with one row of tiles per array in `rows`, e.g.
/// `[original, corrupted, reconstructed]` (or `[original, reconstructed]`): column `i`
/// shows image `i` of each. Every array is `(n, tiles.pixels())` with the same `n`.
/// Values map to grey levels through `tiles.range`, by default the min and max over all
/// arrays, so the rows are comparable.
///
/// Size: `2 + n * (width * scale + 2)` by `2 + rows.len() * (height * scale + 2)` pixels.
///
/// # Errors
/// [`Error::EmptyData`] if `rows` or an array is empty; [`Error::ShapeMismatch`] if an array
/// is not `tiles.pixels()` wide or has another number of images than the first;
/// [`Error::NonFiniteData`]; [`Error::InvalidHyperparameter`] for bad [`Tiles`];
/// [`Error::InvalidConfig`] if the picture would be over 16384 pixels on a side;
/// [`Error::Io`] naming `path` if it cannot be written.
///
/// # Example
/// See the [module documentation](self).
pub fn save_reconstructions<T: Float>(
    path: impl AsRef<Path>,
    rows: &[ArrayView2<T>],
    tiles: &Tiles,
) -> Result<(u32, u32)> {
    tiles.validate()?;
    let Some(first) = rows.first() else {
        return Err(Error::EmptyData {
            context: "reconstruction grid rows",
            rows: 0,
            cols: 0,
        });
    };
    for x in rows {
        check_images(*x, tiles, "reconstruction grid images")?;
        if x.nrows() != first.nrows() {
            return Err(Error::ShapeMismatch {
                context: "reconstruction grid images",
                expected: format!("{} images, as the first row", first.nrows()),
                found: format!("{:?}", x.dim()),
            });
        }
    }
    let level = linear_level(tiles.range.unwrap_or_else(|| range_of(rows)));
    let mut canvas = Canvas::new(tiles.grid_size(rows.len(), first.nrows()), GAP)?;
    for (r, x) in rows.iter().enumerate() {
        for (c, image) in x.rows().into_iter().enumerate() {
            canvas.tile(tiles, (r, c), image, &level);
        }
    }
    canvas.save(path.as_ref())
}

/// Saves each unit's incoming weights as a tile: column `j` of `weights` `(n_in, n_units)`
/// (`n_in = tiles.pixels()`), as [`crate::Dense::weights`] stores them. Each tile is
/// normalized on its own, like MATLAB's `plotWeights` / `display_network`: with `m` the
/// tile's mean and `a = max |w - m|`, the grey level is `127.5 * (1 + (w - m) / a)`, so
/// mid grey is the mean, white the most positive and black the most negative weight.
/// Tiles fill rows of `tiles.columns` (default `ceil(sqrt(n_units))`), separated by black.
///
/// # Errors
/// As [`save_reconstructions`], for `weights`.
///
/// ```
/// use autoencoder::viz::{save_weights, Tiles};
/// use ndarray::Array2;
/// # fn main() -> autoencoder::Result<()> {
/// let w = Array2::from_shape_fn((36, 5), |(i, j)| ((i * (j + 1)) % 7) as f64 - 3.0);
/// let path = std::env::temp_dir().join("doc-weights.png");
/// let size = save_weights(&path, w.view(), &Tiles::grey(6, 6).scale(4))?;
/// assert_eq!(size, (2 + 3 * 26, 2 + 2 * 26)); // 5 tiles in rows of ceil(sqrt(5)) = 3
/// # Ok(()) }
/// ```
pub fn save_weights<T: Float>(
    path: impl AsRef<Path>,
    weights: ArrayView2<T>,
    tiles: &Tiles,
) -> Result<(u32, u32)> {
    tiles.validate()?;
    let columns = weights.t();
    check_images(columns, tiles, "weights (n_in, n_units)")?;
    let n = columns.nrows();
    let cols = tiles
        .columns
        .unwrap_or_else(|| (n as f64).sqrt().ceil() as usize)
        .min(n);
    let mut canvas = Canvas::new(tiles.grid_size(n.div_ceil(cols), cols), FEATURE_GAP)?;
    for (j, w) in columns.rows().into_iter().enumerate() {
        let mean = w.iter().map(|v| v.as_f64()).sum::<f64>() / w.len() as f64;
        let amp = w
            .iter()
            .fold(0.0f64, |a, v| a.max((v.as_f64() - mean).abs()));
        let amp = if amp > 0.0 { amp } else { 1.0 };
        canvas.tile(tiles, (j / cols, j % cols), w, |v: T| {
            (127.5 * (1.0 + (v.as_f64() - mean) / amp))
                .round()
                .clamp(0.0, 255.0) as u8
        });
    }
    canvas.save(path.as_ref())
}

/// Saves the learned features of `model`: its first layer's weights, one tile per unit,
/// as [`save_weights`] draws them. For a dense first layer a tile is a unit's incoming
/// weights (`tiles.pixels() = n_in`); for a convolution, a filter `(c_in, kh, kw)`
/// (`tiles.pixels() = c_in kh kw`, e.g. `Tiles::grey(3, 3)` for 3x3 filters on one channel).
///
/// # Errors
/// As [`save_weights`]; [`Error::ShapeMismatch`] if a tile does not hold one unit's weights;
/// [`Error::InvalidConfig`] for a first layer without weights (pooling, upsampling).
pub fn save_features<T: Float>(
    path: impl AsRef<Path>,
    model: &Autoencoder<T>,
    tiles: &Tiles,
) -> Result<(u32, u32)> {
    let first = &model.layers()[0];
    let weights = match first {
        // (c_out, c_in kh kw): one filter per row, drawn as a column of (n_in, n_units).
        crate::layers::Layer::Conv2d(conv) => conv.weights().reversed_axes(),
        layer if layer.weights().is_empty() => {
            return Err(Error::InvalidConfig(
                "the first layer has no weights to draw".into(),
            ))
        }
        layer => layer.weights(),
    };
    save_weights(path, weights, tiles)
}

/// Saves a grid of `steps x steps` images decoded from evenly spaced codes
/// `(z0, z1)` over `z0_range x z1_range` (both ends included): what the decoder of a model
/// with a 2-unit code draws between the training codes. `z0` grows to the right, `z1`
/// upwards (as in [`save_latent_map`]). Values map as in [`save_reconstructions`].
///
/// Size: `2 + steps * (width * scale + 2)` by `2 + steps * (height * scale + 2)` pixels.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the model's code is not 2 units or its output is not
/// `tiles.pixels()` wide; [`Error::InvalidHyperparameter`] for `steps` outside `2..=100` or
/// a range that is not finite with `lo < hi`; [`Error::NonFiniteData`] if the decoder outputs NaN or
/// infinity; [`Error::Io`].
pub fn save_latent_grid<T: Float>(
    path: impl AsRef<Path>,
    model: &Autoencoder<T>,
    tiles: &Tiles,
    steps: usize,
    z0_range: RangeInclusive<f64>,
    z1_range: RangeInclusive<f64>,
) -> Result<(u32, u32)> {
    tiles.validate()?;
    if model.n_latent() != 2 {
        return Err(Error::ShapeMismatch {
            context: "latent grid model code",
            expected: "2 units".into(),
            found: format!("{} units", model.n_latent()),
        });
    }
    if model.n_in() != tiles.pixels() {
        return Err(Error::ShapeMismatch {
            context: "latent grid model output",
            expected: format!("{} values per image (tiles)", tiles.pixels()),
            found: format!("{}", model.n_in()),
        });
    }
    crate::error::check_range(
        "latent grid steps",
        steps as f64,
        (2..=100).contains(&steps),
        "an integer in 2..=100",
    )?;
    for (name, r) in [
        ("latent grid z0 range", &z0_range),
        ("latent grid z1 range", &z1_range),
    ] {
        let (lo, hi) = (*r.start(), *r.end());
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::hyper(name, format!("{lo}..={hi}"), "finite lo < hi"));
        }
    }
    let at = |r: &RangeInclusive<f64>, i: usize| {
        r.start() + (r.end() - r.start()) * i as f64 / (steps - 1) as f64
    };
    // Row r of the grid shows z1 from the top (largest) down; column c shows z0 left to right.
    let codes = Array2::from_shape_fn((steps * steps, 2), |(k, d)| {
        let (r, c) = (k / steps, k % steps);
        T::cast(if d == 0 {
            at(&z0_range, c)
        } else {
            at(&z1_range, steps - 1 - r)
        })
    });
    let images = model.decode(codes.view())?;
    check_images(images.view(), tiles, "decoded latent grid")?;
    let level = linear_level(tiles.range.unwrap_or_else(|| range_of(&[images.view()])));
    let mut canvas = Canvas::new(tiles.grid_size(steps, steps), GAP)?;
    for (k, image) in images.rows().into_iter().enumerate() {
        canvas.tile(tiles, (k / steps, k % steps), image, &level);
    }
    canvas.save(path.as_ref())
}

mod plots;

pub use plots::{save_latent_map, save_loss_curves};

/// Encodes an RGB8 image in memory (as 8-bit grey if every pixel is grey, which makes
/// tile pictures about three times smaller), then writes it atomically.
pub(crate) fn write_png(path: &Path, (width, height): (u32, u32), rgb: &[u8]) -> Result<()> {
    let grey: Option<Vec<u8>> = rgb
        .chunks_exact(3)
        .map(|p| (p[0] == p[1] && p[1] == p[2]).then_some(p[0]))
        .collect();
    let mut bytes = Vec::new();
    let encoded = (|| {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(if grey.is_some() {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(grey.as_deref().unwrap_or(rgb))?;
        writer.finish()
    })();
    encoded.map_err(|e| plot_error("PNG image", e))?;
    write_atomic(path, |file| file.write_all(&bytes))
}

pub(crate) fn plot_error(what: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Plot {
        what,
        reason: reason.to_string(),
    }
}
