//! PCA from any row source: the streamed fit gives the bits of the in-memory fit, works in
//! the caller's element type, and round-trips through serde with its checks.

use autoencoder::data::RowSource;
use autoencoder::{Error, Pca, Result};
use ndarray::{array, s, Array2, ArrayViewMut2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows of an array behind the trait's required methods only, as a file would give them.
struct Streamed<T>(Array2<T>);

impl<T: autoencoder::Float> RowSource<T> for Streamed<T> {
    fn n_rows(&self) -> usize {
        self.0.nrows()
    }

    fn width(&self) -> usize {
        self.0.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, T>) -> Result<()> {
        let rows = out.nrows();
        out.assign(&self.0.slice(s![start..start + rows, ..]));
        Ok(())
    }
}

/// 5000 rows (three chunks of the fit's passes) of 20 features near a 4-dimensional
/// subspace, offset from 0.
fn data() -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let basis = Array2::from_shape_simple_fn((4, 20), || rng.random_range(-1.0..1.0f32));
    let codes = Array2::from_shape_simple_fn((5000, 4), || rng.random_range(-1.0..1.0f32));
    let noise = Array2::from_shape_simple_fn((5000, 20), || rng.random_range(-0.05..0.05f32));
    codes.dot(&basis) + noise + 0.5
}

fn bits(a: &Array2<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// In memory, streamed, and in `f64`: the same components and variances, bit for bit (the
/// passes read the same chunks in the same order, and `f32 -> f64` is exact); outputs in
/// the caller's type.
#[test]
fn a_streamed_fit_is_the_in_memory_fit() -> Result<()> {
    let x = data();
    let memory = Pca::fit(x.view(), 4)?;
    let streamed = Pca::fit(Streamed(x.clone()), 4)?;
    let wide = Pca::fit(x.mapv(f64::from).view(), 4)?;
    for other in [bits(streamed.components()), bits(wide.components())] {
        assert_eq!(other, bits(memory.components()));
    }
    assert_eq!(streamed.explained_variance(), memory.explained_variance());
    assert_eq!(wide.explained_variance(), memory.explained_variance());

    let recon: Array2<f32> = streamed.reconstruct(x.view())?;
    let mse = (&recon - &x).mapv(|e| e * e).mean().unwrap_or(f32::NAN);
    assert!(mse < 1e-3, "{mse}"); // the noise's variance is 0.05^2 / 3 = 8e-4
    let codes: Array2<f32> = streamed.transform(x.view())?;
    assert_eq!(codes.dim(), (5000, 4));
    // The f32 outputs are the f64 outputs, rounded.
    let wide_codes = wide.transform(x.mapv(f64::from).view())?;
    assert_eq!(codes, wide_codes.mapv(|v| v as f32));
    Ok(())
}

/// A NaN in a later chunk of a streamed source is named by its row in the source.
#[test]
fn a_streamed_fit_checks_every_row() {
    let mut x = data();
    x[[4321, 7]] = f32::INFINITY;
    match Pca::fit(Streamed(x), 2) {
        Err(Error::NonFiniteData { row, col, .. }) => assert_eq!((row, col), (4321, 7)),
        r => panic!("expected NonFiniteData, got {r:?}"),
    }
    assert!(matches!(
        Pca::fit(Streamed(Array2::<f32>::zeros((0, 3))), 1),
        Err(Error::EmptyData { .. })
    ));
}

/// An `f32` output past `f32::MAX` is refused, not returned as an infinity.
#[test]
fn outputs_past_the_callers_type_are_refused() -> Result<()> {
    let x = array![
        [1.0f32, 2.0, 2.0],
        [2.0, 4.0, 4.0],
        [-1.0, -2.0, -2.0],
        [0.5, 1.0, 1.1]
    ];
    let pca = Pca::fit(x.view(), 1)?;
    let far = array![[3e38f32, 3e38, 3e38]]; // its coordinate is about 5e38
    match pca.transform(far.view()) {
        Err(Error::Unrepresentable { context, reason }) => {
            assert_eq!(context, "Pca::transform output");
            assert!(reason.contains("f32::MAX"), "{reason}");
        }
        r => panic!("expected Unrepresentable, got {r:?}"),
    }
    Ok(())
}

/// A fitted PCA saves and loads (JSON here) to the same values; loading checks what a fit
/// guarantees.
#[test]
fn pca_round_trips_through_serde_with_checks() -> Result<()> {
    let pca = Pca::fit(data().view(), 3)?;
    let json = serde_json::to_string(&pca).expect("serializes");
    let back: Pca<f32> = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, pca);

    let mut value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let tampered = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = value.clone();
        edit(&mut v);
        serde_json::from_value::<Pca<f32>>(v)
            .expect_err("refused")
            .to_string()
    };
    assert!(tampered(&|v| v["scale"] = 3.0.into()).contains("power of two"));
    assert!(tampered(&|v| v["scale"] = (-2.0).into()).contains("power of two"));
    assert!(tampered(&|v| v["mean"]["dim"][0] = 19.into()).contains("dim"));
    assert!(tampered(&|v| {
        v["mean"]["dim"][0] = 19.into();
        v["mean"]["data"].as_array_mut().expect("array").pop();
    })
    .contains("shapes do not agree"));
    assert!(tampered(&|v| v["components"]["data"][0] = 5.0.into()).contains("orthonormal"));
    assert!(tampered(&|v| v["explained_variance"]["data"][0] = (-1.0).into()).contains(">= 0"));
    assert!(tampered(&|v| v["explained_variance"]["data"][2] = 1e9.into()).contains("decreasing"));
    value["explained_variance"]["data"][0] = 1e300.into();
    let big: Pca<f32> = serde_json::from_value(value).expect("a large variance is a variance");
    assert_eq!(big.explained_variance()[0], 1e300);
    Ok(())
}
