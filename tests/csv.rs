//! CSV reading and writing: headers detected or declared, label columns, and every bad cell
//! named by line and column.

use std::path::PathBuf;

use autoencoder::data::csv::{self, CsvReader, HeaderRow, LabelColumn};
use autoencoder::{Error, Result};
use ndarray::{array, Array2};

fn file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("csv_tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn assert_format<T: std::fmt::Debug>(result: Result<T>, needle: &str) {
    match result {
        Err(Error::Format { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason `{reason}` should contain `{needle}`"
            )
        }
        other => panic!("expected Error::Format containing `{needle}`, got {other:?}"),
    }
}

#[test]
fn headers_are_detected_or_declared() -> Result<()> {
    let with = file("with.csv", "a,b\n1,2\n3,4.5\n");
    let without = file("without.csv", "1,2\n3,4.5\n");
    let expected = array![[1.0, 2.0], [3.0, 4.5]];
    let t = CsvReader::new().read::<f64>(&with)?;
    assert_eq!(
        (t.features(), t.feature_names()),
        (&expected, &["a".to_string(), "b".into()][..])
    );
    assert!(t.labels().is_none());
    let t = CsvReader::new().read::<f64>(&without)?;
    assert_eq!(t.features(), &expected);
    assert_eq!(t.feature_names(), ["column 0", "column 1"]);
    // Declared: a numeric header row is still a header; a declared absent one is data.
    let numeric_header = file("numeric_header.csv", "1,2\n3,4.5\n");
    let t = CsvReader::new()
        .header(HeaderRow::Present)
        .read::<f64>(&numeric_header)?;
    assert_eq!(t.features(), &array![[3.0, 4.5]]);
    assert_eq!(t.feature_names(), ["1", "2"]);
    assert_format(
        CsvReader::new()
            .header(HeaderRow::Absent)
            .read::<f64>(&with),
        "line 1, column 1: `a`",
    );
    Ok(())
}

#[test]
fn a_label_column_by_name_index_or_last_is_kept_apart() -> Result<()> {
    let path = file("labels.csv", "x, label ,y\n1.5,cat,2\n-3,dog,4e2\n");
    let by_name = CsvReader::new()
        .label_column(LabelColumn::Name("label".into()))
        .read::<f32>(&path)?;
    assert_eq!(by_name.features(), &array![[1.5f32, 2.0], [-3.0, 400.0]]);
    assert_eq!(by_name.feature_names(), ["x", "y"]);
    assert_eq!(
        by_name.labels(),
        Some(&["cat".to_string(), "dog".into()][..])
    );
    let by_index = CsvReader::new()
        .label_column(LabelColumn::Index(1))
        .read::<f32>(&path)?;
    assert_eq!(by_index.features(), by_name.features());
    // Numeric labels in the last column, no header: detected as data.
    let numeric = file("numeric_labels.csv", "0.5,0.25,1\n0.75,0.5,0\n");
    let (x, y) = CsvReader::new()
        .label_column(LabelColumn::Last)
        .read::<f64>(&numeric)?
        .into_parts();
    assert_eq!(x, array![[0.5, 0.25], [0.75, 0.5]]);
    assert_eq!(y, Some(vec!["1".to_string(), "0".into()]));
    // Errors: no such name (the message lists the columns), index out of range, a name
    // without a header.
    assert_format(
        CsvReader::new()
            .label_column(LabelColumn::Name("diagnosis".into()))
            .read::<f32>(&path),
        "no column named `diagnosis` in the header; the columns are: x, label, y",
    );
    assert_format(
        CsvReader::new()
            .label_column(LabelColumn::Index(3))
            .read::<f32>(&path),
        "no label column 3",
    );
    assert_format(
        CsvReader::new()
            .label_column(LabelColumn::Name("z".into()))
            .read::<f32>(&numeric),
        "no header",
    );
    assert!(matches!(
        CsvReader::new()
            .header(HeaderRow::Absent)
            .label_column(LabelColumn::Name("z".into()))
            .read::<f32>(&numeric),
        Err(Error::InvalidConfig(_))
    ));
    Ok(())
}

#[test]
fn bad_cells_and_rows_are_named_by_line_and_column() {
    let cases = [
        (
            "empty_cell",
            "a,b\n1,2\n3,\n",
            "line 3, column 2 (`b`): the cell is empty",
        ),
        (
            "text_cell",
            "a,b\n1,2\nx,4\n",
            "line 3, column 1 (`a`): `x` is not a finite number",
        ),
        (
            "nan_cell",
            "1,2\nNaN,4\n",
            "line 2, column 1: `NaN` is not a finite number",
        ),
        ("inf_cell", "1,2\n3,-inf\n", "line 2, column 2: `-inf`"),
        (
            "too_big_for_f32",
            "1,2\n3,1e300\n",
            "`1e300` is not a finite number",
        ),
        (
            "ragged",
            "a,b\n1,2\n3,4,5\n",
            "line 3: 3 cells, but the first row has 2",
        ),
        ("header_only", "a,b\n", "no data: 0 rows"),
        ("empty", "", "no data"),
    ];
    for (name, text, needle) in cases {
        assert_format(
            CsvReader::new().read::<f32>(file(&format!("{name}.csv"), text)),
            needle,
        );
    }
    // With a label column before it, a feature's column number and name are still right.
    let path = file("label_first.csv", "y,a,b\ncat,1,2\ndog,3,oops\n");
    assert_format(
        CsvReader::new()
            .label_column(LabelColumn::Index(0))
            .read::<f32>(&path),
        "line 3, column 3 (`b`): `oops`",
    );
    assert!(matches!(
        CsvReader::new().read::<f32>(file("x", "1").with_extension("missing")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn semicolons_quotes_and_spaces() -> Result<()> {
    let path = file("semi.csv", "\"a;1\"; b\n 1 ;\"2\"\n");
    let t = CsvReader::new().delimiter(b';').read::<f64>(&path)?;
    assert_eq!(t.features(), &array![[1.0, 2.0]]);
    assert_eq!(t.feature_names(), ["a;1", "b"]);
    Ok(())
}

#[test]
fn written_files_read_back_to_the_same_bits() -> Result<()> {
    let x = Array2::from_shape_fn((5, 3), |(i, j)| {
        ((i * 3 + j) as f32 * 0.1).sin() * 1e-3f32.powi(j as i32)
    });
    let path = std::env::temp_dir().join(format!("csv-roundtrip-{}.csv", std::process::id()));
    csv::write(&path, x.view(), Some(&["p", "q", "r"]))?;
    let back = CsvReader::new().read::<f32>(&path)?;
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(back.features()), bits(&x));
    csv::write(&path, x.view(), None)?;
    assert_eq!(
        bits(CsvReader::new().read::<f32>(&path)?.features()),
        bits(&x)
    );
    assert!(matches!(
        csv::write(&path, x.view(), Some(&["p"])),
        Err(Error::ShapeMismatch { .. })
    ));
    std::fs::remove_file(&path).expect("cleanup");
    Ok(())
}
