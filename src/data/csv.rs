//! CSV files: a table of numbers, with an optional header row and an optional label column
//! kept apart from the features; and writing arrays back.
//!
//! [`CsvReader`] reads a file once, row by row, straight into the feature array: every cell
//! outside the label column must be a finite number (surrounding spaces allowed), and a
//! cell that is not (empty, text, `NaN`, `inf`, a value too large for `f32`) is an error
//! naming its line, its column (number and, with a header, name) and its text. Rows of
//! another length are an error naming the line. The label column is kept as text, so any
//! labels work (`benign`, `1`, `cat`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::{Array2, ArrayView2};

use ::csv as csv_crate;

use crate::fs::write_atomic;
use crate::{Error, Float, Result};

/// Whether the first row is a header of column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderRow {
    /// A header if any cell of the first row, outside the label column, is not a number
    /// (the default).
    #[default]
    Detect,
    /// The first row is a header.
    Present,
    /// The first row is data.
    Absent,
}

/// The column that holds the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    /// By its name in the header (which must then be present).
    Name(String),
    /// By its index, from 0.
    Index(usize),
    /// The last column.
    Last,
}

/// Reads a CSV file of numbers, with settings (name, default):
///
/// | setting | default | meaning |
/// | --- | --- | --- |
/// | [`CsvReader::header`] | [`HeaderRow::Detect`] | whether the first row names the columns |
/// | [`CsvReader::label_column`] | none | a column of labels kept apart from the features |
/// | [`CsvReader::delimiter`] | `b','` | the byte between cells (`b';'`, `b'\t'`) |
///
/// ```
/// use autoencoder::data::csv::{CsvReader, LabelColumn};
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("csv-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("cells.csv");
/// std::fs::write(&path, "radius,texture,diagnosis\n17.9,10.3,malignant\n13.5,14.3,benign\n").unwrap();
/// let table = CsvReader::new()
///     .label_column(LabelColumn::Name("diagnosis".into()))
///     .read::<f32>(&path)?;
/// assert_eq!(table.features().dim(), (2, 2));
/// assert_eq!(table.feature_names(), ["radius", "texture"]);
/// assert_eq!(table.labels(), Some(&["malignant".to_string(), "benign".to_string()][..]));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct CsvReader {
    header: HeaderRow,
    label: Option<LabelColumn>,
    delimiter: Option<u8>,
}

/// What [`CsvReader::read`] returns: the features `(rows, columns)`, the column names
/// (from the header, or `column 0`, `column 1`, ... without one), and the labels if a label
/// column was asked for.
#[derive(Debug, Clone)]
pub struct CsvTable<T> {
    features: Array2<T>,
    feature_names: Vec<String>,
    labels: Option<Vec<String>>,
}

impl<T> CsvTable<T> {
    /// The features, `(rows, columns)`, the label column left out.
    pub fn features(&self) -> &Array2<T> {
        &self.features
    }

    /// The features' column names, in order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The labels, one per row, as written in the file; `None` without a label column.
    pub fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// The features and the labels, by value.
    pub fn into_parts(self) -> (Array2<T>, Option<Vec<String>>) {
        (self.features, self.labels)
    }
}

impl CsvReader {
    /// A reader with the defaults in the table above.
    pub fn new() -> CsvReader {
        CsvReader::default()
    }

    /// Whether the first row is a header; default [`HeaderRow::Detect`].
    pub fn header(mut self, header: HeaderRow) -> CsvReader {
        self.header = header;
        self
    }

    /// Keeps `column` apart from the features, as text labels; default none (every column
    /// is a feature).
    pub fn label_column(mut self, column: LabelColumn) -> CsvReader {
        self.label = Some(column);
        self
    }

    /// The byte between cells; default `b','`.
    pub fn delimiter(mut self, delimiter: u8) -> CsvReader {
        self.delimiter = Some(delimiter);
        self
    }

    /// Reads the file at `path`, once, row by row.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened or read; [`Error::Format`] naming the line and
    /// column for a cell that is not a finite number (or too large for `T`), a row of
    /// another length, a file without data rows, or a label column that is not there (by
    /// name: the message lists the names); [`Error::InvalidConfig`] for a label column by
    /// name with [`HeaderRow::Absent`].
    pub fn read<T: Float>(&self, path: impl AsRef<Path>) -> Result<CsvTable<T>> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| Error::Io {
            action: "cannot open",
            path: path.to_path_buf(),
            source,
        })?;
        self.read_from(BufReader::new(file), path)
    }

    /// Reads from any reader; `path` names it in errors.
    fn read_from<T: Float>(&self, reader: impl std::io::Read, path: &Path) -> Result<CsvTable<T>> {
        if matches!(self.label, Some(LabelColumn::Name(_))) && self.header == HeaderRow::Absent {
            return Err(Error::InvalidConfig(
                "a label column by name needs a header row; give it by index \
                 (LabelColumn::Index) or declare HeaderRow::Present"
                    .into(),
            ));
        }
        let mut csv = csv_crate::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(self.delimiter.unwrap_or(b','))
            .from_reader(reader);
        let mut record = csv_crate::StringRecord::new();
        let mut values: Vec<T> = Vec::new();
        let mut labels: Vec<String> = Vec::new();
        let mut names: Option<Vec<String>> = None;
        let mut label_index: Option<usize> = None;
        let mut width = 0;
        let mut rows = 0;
        let mut first = true;
        loop {
            match csv.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(path, e)),
            }
            let line = record.position().map_or(0, |p| p.line());
            if first {
                first = false;
                width = record.len();
                let is_header = match self.header {
                    HeaderRow::Present => true,
                    HeaderRow::Absent => false,
                    HeaderRow::Detect => {
                        // A header if it names the label column, or if any other cell is
                        // not a number (the label column, known by index, may hold text).
                        let skip = match &self.label {
                            Some(LabelColumn::Index(i)) => Some(*i),
                            Some(LabelColumn::Last) => width.checked_sub(1),
                            _ => None,
                        };
                        let names_label = self
                            .label_name()
                            .is_some_and(|name| record.iter().any(|c| c.trim() == name));
                        names_label
                            || record
                                .iter()
                                .enumerate()
                                .any(|(j, c)| Some(j) != skip && parse_cell::<T>(c).is_none())
                    }
                };
                label_index = self.resolve_label(&record, is_header, width, path)?;
                if is_header {
                    names = Some(
                        record
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| Some(j) != label_index)
                            .map(|(_, c)| c.trim().to_string())
                            .collect(),
                    );
                    continue;
                }
            }
            rows += 1;
            for (j, cell) in record.iter().enumerate() {
                if Some(j) == label_index {
                    labels.push(cell.trim().to_string());
                    continue;
                }
                let value = parse_cell::<T>(cell).ok_or_else(|| {
                    let name = names
                        .as_ref()
                        .and_then(|n| {
                            let k = j - usize::from(label_index.is_some_and(|l| l < j));
                            n.get(k)
                        })
                        .map_or(String::new(), |n| format!(" (`{n}`)"));
                    Error::Format {
                        path: path.to_path_buf(),
                        reason: format!(
                            "line {line}, column {}{name}: {} is not a finite number; fill or \
                             drop missing values before reading",
                            j + 1,
                            if cell.trim().is_empty() {
                                "the cell is empty, which".to_string()
                            } else {
                                format!("`{}`", cell.trim())
                            }
                        ),
                    }
                })?;
                values.push(value);
            }
        }
        let n_features = width - usize::from(label_index.is_some());
        if rows == 0 || n_features == 0 {
            return Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "no data: {rows} rows of {n_features} feature columns{}",
                    if names.is_some() {
                        " after the header"
                    } else {
                        ""
                    }
                ),
            });
        }
        let features =
            Array2::from_shape_vec((rows, n_features), values).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                reason: format!("internal error: {e}"),
            })?;
        let feature_names = names.unwrap_or_else(|| {
            (0..width)
                .filter(|&j| Some(j) != label_index)
                .map(|j| format!("column {j}"))
                .collect()
        });
        Ok(CsvTable {
            features,
            feature_names,
            labels: label_index.map(|_| labels),
        })
    }

    fn label_name(&self) -> Option<&str> {
        match &self.label {
            Some(LabelColumn::Name(n)) => Some(n.as_str()),
            _ => None,
        }
    }

    /// The index of the label column, given the first row.
    fn resolve_label(
        &self,
        first: &csv_crate::StringRecord,
        is_header: bool,
        width: usize,
        path: &Path,
    ) -> Result<Option<usize>> {
        let format = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        match &self.label {
            None => Ok(None),
            Some(LabelColumn::Last) => Ok(width.checked_sub(1)),
            Some(LabelColumn::Index(i)) if *i < width => Ok(Some(*i)),
            Some(LabelColumn::Index(i)) => Err(format(format!(
                "no label column {i}: the rows have {width} columns (indices 0 to {})",
                width.saturating_sub(1)
            ))),
            Some(LabelColumn::Name(name)) if is_header => first
                .iter()
                .position(|c| c.trim() == name)
                .map(Some)
                .ok_or_else(|| {
                    format(format!(
                        "no column named `{name}` in the header; the columns are: {}",
                        first.iter().map(str::trim).collect::<Vec<_>>().join(", ")
                    ))
                }),
            Some(LabelColumn::Name(name)) => Err(format(format!(
                "the first row is all numbers, so there is no header to find the label column \
                 `{name}` in; give it by index (LabelColumn::Index)"
            ))),
        }
    }
}

/// A finite number in `T` (f64 values past `f32::MAX` are refused for `f32`).
fn parse_cell<T: Float>(cell: &str) -> Option<T> {
    let x: f64 = cell.trim().parse().ok()?;
    let v = T::cast(x);
    v.is_finite().then_some(v)
}

fn csv_error(path: &Path, e: csv_crate::Error) -> Error {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv_crate::ErrorKind::Io(source) => Error::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        },
        csv_crate::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "line {}: {len} cells, but the first row has {expected_len}; every row needs the same columns",
                line.unwrap_or(0)
            ),
        },
        csv_crate::ErrorKind::Utf8 { .. } => Error::Format {
            path: path.to_path_buf(),
            reason: format!("line {}: not UTF-8 text", line.unwrap_or(0)),
        },
        other => Error::Format {
            path: path.to_path_buf(),
            reason: format!("not readable as CSV: {other:?}"),
        },
    }
}

/// Writes `x` `(rows, columns)` to `path` as CSV, atomically, with a header row of
/// `column_names` if given (one per column), each value in the shortest form that reads
/// back to the same bits. Codes, reconstructions, and scores (as one column,
/// `scores.insert_axis(Axis(1))`) go out this way.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `column_names` does not have one name per column;
/// [`Error::Io`] if the file cannot be written.
///
/// ```
/// use autoencoder::data::csv::{write, CsvReader};
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("csv-write-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let codes = array![[0.1f32, -2.5], [3.0, 1e-8]];
/// let path = dir.join("codes.csv");
/// write(&path, codes.view(), Some(&["z0", "z1"]))?;
/// let back = CsvReader::new().read::<f32>(&path)?;
/// assert_eq!(back.features(), &codes);
/// assert_eq!(back.feature_names(), ["z0", "z1"]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn write<T: Float>(
    path: impl AsRef<Path>,
    x: ArrayView2<T>,
    column_names: Option<&[&str]>,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(names) = column_names {
        if names.len() != x.ncols() {
            return Err(Error::ShapeMismatch {
                context: "csv::write column names",
                expected: format!("{} names, one per column", x.ncols()),
                found: format!("{} names", names.len()),
            });
        }
    }
    write_atomic(path, |file| {
        let mut out = csv_crate::Writer::from_writer(std::io::BufWriter::new(file));
        let err = |e: csv_crate::Error| std::io::Error::other(e.to_string());
        if let Some(names) = column_names {
            out.write_record(names).map_err(err)?;
        }
        let mut cells: Vec<String> = Vec::with_capacity(x.ncols());
        for row in x.rows() {
            cells.clear();
            cells.extend(row.iter().map(|v| format!("{v}")));
            out.write_record(&cells).map_err(err)?;
        }
        out.flush()
    })
}
