//! Plots: loss curves and latent maps, drawn with `plotters`' bitmap backend and the
//! embedded font, saved through the same PNG writer as the image grids.

use std::path::Path;
use std::sync::Once;

use ndarray::ArrayView2;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::data::check_rows;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::train::history::History;
use crate::viz::{plot_error, write_png};

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

/// Registers the embedded font with plotters once, as `"sans-serif"`.
fn register_font() -> Result<()> {
    static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-ascii.ttf");
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| plot_error("text", "the embedded font does not parse"));
    });
    result
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

/// Saves a scatter plot of 2-D codes `(n, 2)` (e.g. [`crate::Autoencoder::encode`] of a test
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
