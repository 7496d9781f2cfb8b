//! Data files in and out, chosen by the file's name: `.npy` (NumPy), `.csv`, or IDX (images
//! such as MNIST's: `*-ubyte`, `*.idx`, either gzipped).

use std::path::Path;

use autoencoder::data::csv::{self, CsvReader, LabelColumn};
use autoencoder::data::{idx, npy};
use autoencoder::{Error, Result};
use ndarray::{Array2, ArrayView2, Ix2};

/// The kinds of data file the tool reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Npy,
    Csv,
    Idx,
}

/// The kind of `path`, by its name.
///
/// # Errors
/// [`Error::InvalidConfig`] for a name the tool does not know, listing the ones it does.
pub fn kind(path: &Path) -> Result<Kind> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".npy") {
        Ok(Kind::Npy)
    } else if name.ends_with(".csv") {
        Ok(Kind::Csv)
    } else if name.ends_with("-ubyte") || name.ends_with(".idx") || name.contains("idx") {
        Ok(Kind::Idx)
    } else {
        Err(Error::InvalidConfig(format!(
            "{}: unknown kind of data file; the tool reads .npy, .csv and IDX files \
             (names ending in -ubyte or .idx, optionally .gz)",
            path.display()
        )))
    }
}

/// A data set as read: one sample per row, and the label column if one was asked for.
pub struct Table {
    /// `(n, d)` features.
    pub x: Array2<f64>,
    /// The labels, one per row, as written in the file.
    pub labels: Option<Vec<String>>,
}

/// Reads `path`; for CSV, `label_column` (a header name or a 0-based index) is kept apart.
///
/// # Errors
/// The reader's: [`Error::Io`], [`Error::Format`] naming the file and place, and
/// [`Error::InvalidConfig`] for a label column asked of a file without columns.
pub fn read(path: &Path, label_column: Option<&str>) -> Result<Table> {
    let kind = kind(path)?;
    if label_column.is_some() && kind != Kind::Csv {
        return Err(Error::InvalidConfig(format!(
            "--label-column applies to CSV files; {} is not one",
            path.display()
        )));
    }
    match kind {
        Kind::Npy => Ok(Table {
            x: npy::read::<f64, Ix2>(path)?,
            labels: None,
        }),
        Kind::Idx => Ok(Table {
            x: idx::read_images::<f64>(path)?,
            labels: None,
        }),
        Kind::Csv => read_csv(path, label_column),
    }
}

fn read_csv(path: &Path, label_column: Option<&str>) -> Result<Table> {
    let mut reader = CsvReader::new();
    if let Some(column) = label_column {
        // A number is an index, anything else a header name.
        reader = reader.label_column(match column.parse::<usize>() {
            Ok(i) => LabelColumn::Index(i),
            Err(_) => LabelColumn::Name(column.to_string()),
        });
    }
    let (x, labels) = reader.read::<f64>(path)?.into_parts();
    Ok(Table { x, labels })
}

/// Writes `x` `(n, d)` to `path` as `.npy` or `.csv` (by its name), atomically: on failure
/// the file is as it was.
///
/// # Errors
/// [`Error::InvalidConfig`] for another kind of name; [`Error::Io`] from writing.
pub fn write(path: &Path, x: ArrayView2<f64>, columns: &[String]) -> Result<()> {
    match kind(path) {
        Ok(Kind::Npy) => npy::write(path, x),
        Ok(Kind::Csv) => write_csv(path, x, columns),
        _ => Err(Error::InvalidConfig(format!(
            "{}: the tool writes .npy and .csv files; give a name ending in one of them",
            path.display()
        ))),
    }
}

fn write_csv(path: &Path, x: ArrayView2<f64>, columns: &[String]) -> Result<()> {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    csv::write(path, x, Some(&names))
}

/// Labels from a file of their own, one per data row: IDX labels (MNIST's
/// `*-labels-idx1-ubyte`) or a one-dimensional `.npy` of numbers, written as text the way a
/// CSV label column reads (`3`, not `3.0`, for whole numbers).
///
/// # Errors
/// The reader's; [`Error::InvalidConfig`] for another kind of file.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let number = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            v.to_string()
        }
    };
    match kind(path)? {
        Kind::Idx => Ok(idx::read_labels(path)?
            .iter()
            .map(|l| l.to_string())
            .collect()),
        Kind::Npy => Ok(npy::read::<f64, ndarray::Ix1>(path)?
            .iter()
            .map(|&v| number(v))
            .collect()),
        Kind::Csv => Err(Error::InvalidConfig(format!(
            "{}: labels in a CSV file are read with --label-column from the data file itself",
            path.display()
        ))),
    }
}
