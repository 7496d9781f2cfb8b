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
use std::sync::Once;

use ndarray::{Array2, ArrayView1, ArrayView2};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::data::check_rows;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::fs::write_atomic;
use crate::model::Autoencoder;
use crate::train::history::History;

/// Pixels between tiles and around the grid.
const PAD: usize = 2;

/// Colour between tiles of image grids (mid grey).
const GAP: [u8; 3] = [128, 128, 128];

/// Colour between feature tiles (black: mid grey means a zero weight there).
const FEATURE_GAP: [u8; 3] = [0, 0, 0];

/// Ten distinct colours (matplotlib's `tab10`), one per label; more labels cycle.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

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

/// Min and max over all values of `arrays`.
fn value_range<T: Float>(arrays: &[ArrayView2<T>]) -> (f64, f64) {
    arrays
        .iter()
        .flat_map(|a| a.iter())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v.as_f64()), hi.max(v.as_f64()))
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
    let level = linear_level(tiles.range.unwrap_or_else(|| value_range(rows)));
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
/// as [`save_weights`] draws them.
///
/// # Errors
/// As [`save_weights`]; [`Error::ShapeMismatch`] if `model.n_in() != tiles.pixels()`.
pub fn save_features<T: Float>(
    path: impl AsRef<Path>,
    model: &Autoencoder<T>,
    tiles: &Tiles,
) -> Result<(u32, u32)> {
    save_weights(path, model.layers()[0].weights(), tiles)
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
    let level = linear_level(tiles.range.unwrap_or_else(|| value_range(&[images.view()])));
    let mut canvas = Canvas::new(tiles.grid_size(steps, steps), GAP)?;
    for (k, image) in images.rows().into_iter().enumerate() {
        canvas.tile(tiles, (k / steps, k % steps), image, &level);
    }
    canvas.save(path.as_ref())
}

/// Registers the embedded font with plotters once, as `"sans-serif"`.
fn register_font() -> Result<()> {
    static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| plot_error("text", "the embedded font does not parse"));
    });
    result
}

fn plot_error(what: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Plot {
        what,
        reason: reason.to_string(),
    }
}

/// Checks a plot size: both sides in `64..=8192` pixels.
fn check_plot_size((width, height): (u32, u32)) -> Result<()> {
    for (name, v) in [("plot width", width), ("plot height", height)] {
        crate::error::check_range(name, v as f64, (64..=8192).contains(&v), "64..=8192 pixels")?;
    }
    Ok(())
}

/// Draws with plotters into an RGB buffer of `size`, then saves it as a PNG.
fn save_plot(
    path: &Path,
    what: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<(u32, u32)> {
    check_plot_size(size)?;
    register_font()?;
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw(&root).map_err(|e| plot_error(what, e))?;
        root.present().map_err(|e| plot_error(what, e))?;
    }
    write_png(path, size, &rgb)?;
    Ok(size)
}

/// One named line of a loss plot: `(epoch from 1, value)` points.
type Curve = (String, Vec<(i32, f64)>);

/// Saves the loss curves of a training run as a `size = (width, height)` plot: training
/// objective (`train_loss`), and if there are penalties its reconstruction part and each
/// penalty term (named by [`History::penalty_names`]), and the validation loss if recorded,
/// against the epoch (from 1). The y axis is logarithmic when every value is `> 0` and
/// they span a factor of 20 or more, else linear. With axes, labels and a legend.
///
/// # Errors
/// [`Error::EmptyData`] if `history` has no epochs; [`Error::NonFiniteData`] if a value is
/// NaN or infinite; [`Error::InvalidHyperparameter`] if a side is outside `64..=8192`;
/// [`Error::Plot`]; [`Error::Io`].
///
/// ```
/// use autoencoder::{viz, Activation, Adam, Autoencoder, Trainer};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let x = Array2::from_shape_fn((64, 8), |(i, j)| ((i * j) % 5) as f64 / 5.0);
/// let mut ae = Autoencoder::<f64>::builder(8)
///     .latent(3, Activation::Tanh)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// let history = Trainer::new(Adam::new(1e-2)).epochs(4).fit(&mut ae, x.view(), Some(x.view()))?;
/// let path = std::env::temp_dir().join("doc-loss.png");
/// assert_eq!(viz::save_loss_curves(&path, &history, (640, 400))?, (640, 400));
/// # Ok(()) }
/// ```
pub fn save_loss_curves(
    path: impl AsRef<Path>,
    history: &History,
    size: (u32, u32),
) -> Result<(u32, u32)> {
    if history.epochs.is_empty() {
        return Err(Error::EmptyData {
            context: "loss history",
            rows: 0,
            cols: 0,
        });
    }
    let point = |e: usize, v: f64| (e as i32 + 1, v);
    let mut curves: Vec<Curve> = vec![(
        "train objective".into(),
        history
            .epochs
            .iter()
            .enumerate()
            .map(|(e, r)| point(e, r.train_loss))
            .collect(),
    )];
    if !history.penalty_names.is_empty() {
        curves.push((
            "train reconstruction".into(),
            history
                .epochs
                .iter()
                .enumerate()
                .map(|(e, r)| point(e, r.train_reconstruction))
                .collect(),
        ));
    }
    if history.epochs.iter().any(|r| r.valid_loss.is_some()) {
        curves.push((
            "validation reconstruction".into(),
            history
                .epochs
                .iter()
                .enumerate()
                .filter_map(|(e, r)| r.valid_loss.map(|v| point(e, v)))
                .collect(),
        ));
    }
    for (k, name) in history.penalty_names.iter().enumerate() {
        curves.push((
            format!("penalty: {name}"),
            history
                .epochs
                .iter()
                .enumerate()
                .filter_map(|(e, r)| r.train_penalties.get(k).map(|&v| point(e, v)))
                .collect(),
        ));
    }
    for (name, points) in &curves {
        if let Some(&(epoch, value)) = points.iter().find(|p| !p.1.is_finite()) {
            return Err(Error::NonFiniteData {
                context: "loss history",
                row: epoch as usize - 1,
                col: curves.iter().position(|c| &c.0 == name).unwrap_or(0),
                value,
            });
        }
    }
    let values = || curves.iter().flat_map(|c| c.1.iter().map(|p| p.1));
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    let n = history.epochs.len() as i32;
    let x_range = 1..n.max(2);
    save_plot(path.as_ref(), "loss curves", size, |root| {
        if lo > 0.0 && hi / lo >= 20.0 {
            // Log axis, padded by a factor.
            let (lo, hi) = (lo / 1.2, hi * 1.2);
            draw_curves(root, x_range, (lo..hi).log_scale(), &curves)
        } else {
            let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-12);
            draw_curves(root, x_range, (lo - pad)..(hi + pad), &curves)
        }
    })
}

/// Draws `curves` with axes and a legend, on a y axis of any scale.
fn draw_curves<Y>(
    root: &Area<'_>,
    x_range: std::ops::Range<i32>,
    y_range: Y,
    curves: &[Curve],
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let (width, height) = root.dim_in_pixel();
    let per_row = ((width as usize).saturating_sub(20) / LEGEND_CELL).max(1);
    let legend_height = (curves.len().div_ceil(per_row) * 22 + 10) as u32;
    let (plot, legend) = root.split_vertically(height.saturating_sub(legend_height));
    let n_epochs = (x_range.end - x_range.start + 1) as usize;
    let mut chart = ChartBuilder::on(&plot)
        .caption("loss per epoch", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .max_light_lines(1)
        .x_labels(n_epochs.min(12))
        .y_labels(6)
        .y_label_formatter(&|v| format_number(*v, 0.0))
        .label_style(("sans-serif", 14))
        .draw()?;
    let mut entries = Vec::new();
    for (k, (name, points)) in curves.iter().enumerate() {
        let (r, g, b) = PALETTE[k % PALETTE.len()];
        let colour = RGBColor(r, g, b);
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            colour.stroke_width(2),
        ))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        entries.push((name.clone(), colour));
    }
    draw_legend(&legend, &entries, Mark::Line, per_row)
}

/// A drawing area on an RGB buffer.
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Width in pixels of one legend entry laid out in a row.
const LEGEND_CELL: usize = 230;

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Line,
    Dot,
}

/// Draws legend entries (name, colour) in `area`, outside the plot so they hide no data:
/// `per_row` entries per row, rows 22 pixels apart.
fn draw_legend(
    area: &Area<'_>,
    entries: &[(String, RGBColor)],
    mark: Mark,
    per_row: usize,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    for (k, (name, colour)) in entries.iter().enumerate() {
        let x = 12 + ((k % per_row) * LEGEND_CELL) as i32;
        let y = 12 + (k / per_row) as i32 * 22;
        match mark {
            Mark::Line => area.draw(&PathElement::new(
                vec![(x, y), (x + 24, y)],
                colour.stroke_width(3),
            ))?,
            Mark::Dot => area.draw(&Circle::new((x + 12, y), 5, colour.filled()))?,
        }
        area.draw(&Text::new(
            name.clone(),
            (x + 32, y - 8),
            ("sans-serif", 15),
        ))?;
    }
    Ok(())
}

/// A short label for an axis value: plain for moderate magnitudes, scientific otherwise;
/// values below `zero` in magnitude (rounding noise of a tick at 0) print as `0`.
fn format_number(v: f64, zero: f64) -> String {
    let a = v.abs();
    if a <= zero {
        return "0".into();
    }
    if (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Saves a scatter plot of 2-D codes `(n, 2)` (e.g. [`Autoencoder::encode`] of a test
/// set with a 2-unit code), each point coloured by its label (`labels.len() == n`), with
/// axes `z0`, `z1` and a legend of the labels present (ten colours, repeating after ten).
/// `size = (width, height)` in pixels.
///
/// # Errors
/// [`Error::EmptyData`] for no codes; [`Error::ShapeMismatch`] if `codes` is not 2 wide or
/// `labels` has another length; [`Error::NonFiniteData`]; [`Error::InvalidHyperparameter`]
/// if a side is outside `64..=8192`; [`Error::Plot`]; [`Error::Io`].
///
/// ```
/// use autoencoder::viz::save_latent_map;
/// use ndarray::Array2;
/// # fn main() -> autoencoder::Result<()> {
/// let codes = Array2::from_shape_fn((30, 2), |(i, d)| (i % 3) as f32 + 0.1 * (i * (d + 1)) as f32);
/// let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
/// let path = std::env::temp_dir().join("doc-latent.png");
/// assert_eq!(save_latent_map(&path, codes.view(), &labels, (500, 500))?, (500, 500));
/// # Ok(()) }
/// ```
pub fn save_latent_map<T: Float>(
    path: impl AsRef<Path>,
    codes: ArrayView2<T>,
    labels: &[usize],
    size: (u32, u32),
) -> Result<(u32, u32)> {
    check_rows(codes, Some(2), "latent codes")?;
    if labels.len() != codes.nrows() {
        return Err(Error::ShapeMismatch {
            context: "latent map labels",
            expected: format!("{} labels, one per code", codes.nrows()),
            found: format!("{}", labels.len()),
        });
    }
    let extent = |d: usize| {
        let (lo, hi) = codes
            .column(d)
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v.as_f64()), hi.max(v.as_f64()))
            });
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad)..(hi + pad)
    };
    let (x_range, y_range) = (extent(0), extent(1));
    let zero = (
        (x_range.end - x_range.start) * 1e-9,
        (y_range.end - y_range.start) * 1e-9,
    );
    let mut classes: Vec<usize> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    save_plot(path.as_ref(), "latent map", size, |root| {
        root.fill(&WHITE)?;
        let legend_width = 20
            + 9 * classes
                .iter()
                .map(|c| c.to_string().len())
                .max()
                .unwrap_or(1) as u32
            + 36;
        let (plot, legend) = root.split_horizontally(size.0.saturating_sub(legend_width));
        let mut chart: ChartContext<'_, _, Cartesian2d<RangedCoordf64, RangedCoordf64>> =
            ChartBuilder::on(&plot)
                .caption("codes by label", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(x_range, y_range)?;
        chart
            .configure_mesh()
            .x_desc("z0")
            .y_desc("z1")
            .max_light_lines(1)
            .x_label_formatter(&|v| format_number(*v, zero.0))
            .y_label_formatter(&|v| format_number(*v, zero.1))
            .label_style(("sans-serif", 14))
            .draw()?;
        // All points in data order, so no label is hidden under the ones drawn after it.
        let colour = |label: usize| {
            let (r, g, b) = PALETTE[label % PALETTE.len()];
            RGBColor(r, g, b)
        };
        chart.draw_series(codes.rows().into_iter().zip(labels).map(|(z, &l)| {
            Circle::new(
                (z[0].as_f64(), z[1].as_f64()),
                2,
                colour(l).mix(0.7).filled(),
            )
        }))?;
        let entries: Vec<(String, RGBColor)> = classes
            .iter()
            .map(|&c| (c.to_string(), colour(c)))
            .collect();
        draw_legend(&legend.margin(40, 0, 0, 0), &entries, Mark::Dot, 1)
    })
}

/// Encodes an RGB8 image in memory (as 8-bit grey if every pixel is grey, which makes
/// tile pictures about three times smaller), then writes it atomically.
fn write_png(path: &Path, (width, height): (u32, u32), rgb: &[u8]) -> Result<()> {
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
