//! Dataset helpers: seeded split, shuffling, scaling and its inverse, batching.

use autoencoder::data::{batches, permutation, shuffle_rows, Order, Scaler, Scaling, Split};
use autoencoder::{Error, Result};
use ndarray::{array, Array2, Axis};

fn data() -> Array2<f64> {
    Array2::from_shape_fn((50, 3), |(i, j)| {
        (i * 3 + j) as f64 * if j == 1 { -2.0 } else { 0.5 }
    })
}

#[test]
fn split_is_a_seeded_partition() -> Result<()> {
    let split = Split::new(50, 0.2, 7)?;
    assert_eq!((split.train().len(), split.valid().len()), (40, 10));
    let mut all: Vec<usize> = split.train().iter().chain(split.valid()).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    assert_eq!(split, Split::new(50, 0.2, 7)?);
    assert_ne!(split.valid(), Split::new(50, 0.2, 8)?.valid());

    let x = data();
    let (train, valid) = split.apply(x.view())?;
    assert_eq!(train.row(0), x.row(split.train()[0]));
    assert_eq!(valid.row(9), x.row(split.valid()[9]));
    assert_eq!(Split::new(50, 0.0, 1)?.valid().len(), 0);
    Ok(())
}

#[test]
fn split_rejects_bad_fractions_and_mismatched_data() {
    for fraction in [-0.1, 1.0, 1.5, f64::NAN, 0.99] {
        assert!(
            matches!(
                Split::new(10, fraction, 0),
                Err(Error::InvalidHyperparameter { .. })
            ),
            "fraction {fraction}"
        );
    }
    assert!(matches!(
        Split::new(0, 0.1, 0),
        Err(Error::EmptyData { .. })
    ));
    let split = Split::new(10, 0.5, 0).expect("valid split");
    assert!(matches!(
        split.apply(data().view()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn shuffle_keeps_rows_and_pairs_together() -> Result<()> {
    let x = data();
    let labels: Vec<usize> = (0..50).collect();
    let xs = shuffle_rows(x.view(), 3);
    let ys = shuffle_rows(ndarray::aview1(&labels), 3);
    assert_ne!(xs, x);
    for (row, &label) in xs.rows().into_iter().zip(&ys) {
        assert_eq!(row, x.row(label));
    }
    assert_eq!(permutation(50, 3)?, ys.to_vec());
    Ok(())
}

#[test]
fn min_max_scaling_maps_each_column_onto_the_range_and_back() -> Result<()> {
    let x = data();
    let scaler = Scaler::fit(x.view(), Scaling::MinMax { lo: -1.0, hi: 1.0 })?;
    let y = scaler.transform(x.view())?;
    for col in y.columns() {
        let min = col.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((min + 1.0).abs() < 1e-12 && (max - 1.0).abs() < 1e-12);
    }
    let back = scaler.inverse_transform(y.view())?;
    assert!((&back - &x).iter().all(|e| e.abs() < 1e-9));
    // Data outside the fitted range map outside the target range, linearly.
    let z = scaler.transform(array![[-1.5, 2.0, 200.0]].view())?;
    assert!(z[[0, 0]] < -1.0 && z[[0, 1]] > 1.0 && z[[0, 2]] > 1.0);
    Ok(())
}

#[test]
fn standard_scaling_gives_zero_mean_unit_variance_and_back() -> Result<()> {
    let x = data().mapv(|v| v as f32);
    let scaler = Scaler::fit(x.view(), Scaling::Standard)?;
    let y = scaler.transform(x.view())?;
    for col in y.columns() {
        let mean = col.mean().expect("rows");
        let var = col.mapv(|v| (v - mean).powi(2)).mean().expect("rows");
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
    }
    let back = scaler.inverse_transform(y.view())?;
    assert!((&back - &x).iter().all(|e| e.abs() < 1e-3));
    Ok(())
}

#[test]
fn constant_columns_do_not_divide_by_zero() -> Result<()> {
    let x = array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
    let minmax = Scaler::fit(x.view(), Scaling::MinMax { lo: 0.0, hi: 1.0 })?;
    assert_eq!(minmax.transform(x.view())?.column(1).to_vec(), vec![0.0; 3]);
    let standard = Scaler::fit(x.view(), Scaling::Standard)?;
    let y = standard.transform(x.view())?;
    assert_eq!(y.column(1).to_vec(), vec![0.0; 3]);
    assert_eq!(standard.inverse_transform(y.view())?, x);
    Ok(())
}

#[test]
fn scaler_rejects_bad_input() {
    let x = data();
    for (lo, hi) in [
        (1.0, 1.0),
        (1.0, 0.0),
        (f64::NAN, 1.0),
        (0.0, f64::INFINITY),
    ] {
        assert!(matches!(
            Scaler::fit(x.view(), Scaling::MinMax { lo, hi }),
            Err(Error::InvalidHyperparameter { .. })
        ));
    }
    assert!(matches!(
        Scaler::fit(Array2::<f64>::zeros((0, 3)).view(), Scaling::Standard),
        Err(Error::EmptyData { .. })
    ));
    assert!(matches!(
        Scaler::fit(array![[1.0, f64::NAN]].view(), Scaling::Standard),
        Err(Error::NonFiniteData { .. })
    ));
    let scaler = Scaler::fit(x.view(), Scaling::Standard).expect("valid data");
    assert!(matches!(
        scaler.transform(array![[1.0, 2.0]].view()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn batches_visit_every_row_once() -> Result<()> {
    let x = data();
    for order in [Order::Sequential, Order::Shuffled { seed: 5 }] {
        let it = batches(x.view(), 16, order)?;
        assert_eq!(it.len(), 4);
        let seen = it.clone().order().to_vec();
        let parts: Vec<Array2<f64>> = it.collect();
        assert_eq!(
            parts.iter().map(|b| b.nrows()).collect::<Vec<_>>(),
            vec![16, 16, 16, 2]
        );
        let joined =
            ndarray::concatenate(Axis(0), &parts.iter().map(|b| b.view()).collect::<Vec<_>>())
                .expect("same widths");
        assert_eq!(joined, x.select(Axis(0), &seen));
        if order == Order::Sequential {
            assert_eq!(joined, x);
        }
    }
    assert!(matches!(
        batches(x.view(), 0, Order::Sequential),
        Err(Error::InvalidHyperparameter { .. })
    ));
    Ok(())
}
