//! Extreme but finite inputs and parameters: every result is finite and right, or a typed
//! error that names the culprit; never a panic, an infinity or a NaN from finite values.

use std::fmt::Debug;

use autoencoder::data::{Scaler, Scaling};
use autoencoder::{
    corrupt, Activation, Adam, Autoencoder, Dense, Error, Float, Init, Loss, Noise, Optimizer, Pca,
    Result, Sgd, Trainer,
};
use ndarray::{array, Array1, Array2, Zip};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Asserts `result` is [`Error::Unrepresentable`] whose message contains each of `needles`.
fn assert_unrepresentable<T: Debug>(result: Result<T>, needles: &[&str]) {
    match result {
        Err(e @ Error::Unrepresentable { .. }) => {
            let message = e.to_string();
            for needle in needles {
                assert!(message.contains(needle), "`{message}` lacks `{needle}`");
            }
        }
        other => panic!("expected Unrepresentable ({needles:?}), got {other:?}"),
    }
}

/// Asserts `result` is [`Error::InvalidHyperparameter`] for `name`.
fn assert_hyper<T: Debug>(result: Result<T>, name: &str) {
    match result {
        Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected InvalidHyperparameter `{name}`, got {other:?}"),
    }
}

/// The largest `|a - b|` over the elements, relative to `scale`.
fn max_diff(a: &Array2<f64>, b: &Array2<f64>, scale: f64) -> f64 {
    (a - b).iter().fold(0.0, |m, d| m.max(d.abs() / scale))
}

// ---- Scaler ----

/// Column 0 spans -1e308..1e308 (`max - min` overflows), column 1 sits near 1e200 (its
/// squares overflow), column 2 spans 1e-320 (`1 / range` overflows), column 3 is ordinary.
/// Both scalings used to give NaN, infinities or a gain of 0 (whose inverse is NaN); now
/// they map every column as they map ordinary data, and back.
#[test]
fn scaler_maps_columns_near_the_limits_of_f64() -> Result<()> {
    let x = array![
        [-1e308, 1e200, 0.0, 1.0],
        [1e308, 3e200, 1e-320, 3.0],
        [0.0, 2e200, 5e-321, 2.0],
    ];
    let minmax = Scaler::fit(x.view(), Scaling::MinMax { lo: -1.0, hi: 1.0 })?;
    let y = minmax.transform(x.view())?;
    let expected = array![
        [-1.0, -1.0, -1.0, -1.0],
        [1.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0]
    ];
    assert!(max_diff(&y, &expected, 1.0) < 1e-15, "{y}");
    let standard = Scaler::fit(x.view(), Scaling::Standard)?;
    let z = standard.transform(x.view())?;
    for (j, col) in z.columns().into_iter().enumerate() {
        let mean = col.mean().expect("3 rows");
        let var = col.mapv(|v| (v - mean).powi(2)).mean().expect("3 rows");
        assert!(
            mean.abs() < 1e-15 && (var - 1.0).abs() < 1e-14,
            "column {j}: {col}"
        );
    }
    // Back to the original units, to rounding of each column's magnitude.
    for (scaler, y) in [(&minmax, &y), (&standard, &z)] {
        let back = scaler.inverse_transform(y.view())?;
        for j in 0..4 {
            let magnitude = x.column(j).fold(0.0_f64, |m, v| m.max(v.abs()));
            let err =
                (&back.column(j) - &x.column(j)).fold(0.0_f64, |m, d| m.max(d.abs() / magnitude));
            assert!(err < 1e-15, "{:?} column {j}: {back}", scaler.scaling());
        }
    }
    // f32 data whose squares overflow f32 (but not f64) scale too.
    let x32 = array![[1e30_f32, -3e38], [3e30, 3e38]];
    let y32 = Scaler::fit(x32.view(), Scaling::Standard)?.transform(x32.view())?;
    assert_eq!(y32, array![[-1.0_f32, -1.0], [1.0, 1.0]]);
    Ok(())
}

/// Ordinary data scale to the same bits as the plain formulas: the power-of-two scaling
/// changes no rounding.
#[test]
fn scaler_scaling_is_exact_on_ordinary_data() -> Result<()> {
    let x = Array2::from_shape_fn((40, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f64 * 0.37 - 1.1);
    let y = Scaler::fit(x.view(), Scaling::MinMax { lo: 0.0, hi: 1.0 })?.transform(x.view())?;
    let z = Scaler::fit(x.view(), Scaling::Standard)?.transform(x.view())?;
    for j in 0..3 {
        let col = x.column(j);
        let (min, max) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
        let gain = 1.0 / (max - min);
        // Summed in order, as the scaler does (ndarray's `sum` adds in another order).
        let mean = col.iter().sum::<f64>() / 40.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 40.0;
        let std_gain = 1.0 / var.sqrt();
        for i in 0..40 {
            assert_eq!(y[[i, j]].to_bits(), ((x[[i, j]] - min) * gain).to_bits());
            assert_eq!(
                z[[i, j]].to_bits(),
                ((x[[i, j]] - mean) * std_gain).to_bits()
            );
        }
    }
    Ok(())
}

/// What cannot be represented is refused, naming the parameter, or the column (and row).
#[test]
fn scaler_refuses_what_it_cannot_represent() -> Result<()> {
    let x = array![[0.0, 0.0], [1.0, 4.0]];
    // `hi - lo` past f64::MAX.
    assert_hyper(
        Scaler::fit(
            x.view(),
            Scaling::MinMax {
                lo: -1e308,
                hi: 1e308,
            },
        ),
        "min-max range",
    );
    // A gain that rounds to 0 (its inverse would be NaN).
    assert_unrepresentable(
        Scaler::fit(
            x.view(),
            Scaling::MinMax {
                lo: 0.0,
                hi: 5e-324,
            },
        ),
        &["Scaler::fit", "column 0"],
    );
    // Finite values the fitted map sends past f64::MAX, either way.
    let tiny = Scaler::fit(
        array![[0.0, 0.0], [1.0, 1e-300]].view(),
        Scaling::MinMax { lo: -1.0, hi: 1.0 },
    )?;
    assert_unrepresentable(
        tiny.transform(array![[0.5, 1e10]].view()),
        &["transform output", "row 0, column 1", "f64"],
    );
    let huge = Scaler::fit(
        array![[0.0], [1e300]].view(),
        Scaling::MinMax { lo: -1.0, hi: 1.0 },
    )?;
    assert_unrepresentable(
        huge.inverse_transform(array![[0.0], [1e300]].view()),
        &["inverse_transform output", "row 1, column 0"],
    );
    // Past f32::MAX in an f32 output (2e40).
    let small = Scaler::fit(
        array![[0.0_f32], [1e-30]].view(),
        Scaling::MinMax { lo: -1.0, hi: 1.0 },
    )?;
    assert_unrepresentable(
        small.transform(array![[1e10_f32]].view()),
        &["row 0, column 0", "f32"],
    );
    Ok(())
}

// ---- PCA ----

/// 200 points near the plane spanned by (1, 2, 2) and (2, -2, 1), with a little of the
/// normal (2, 1, -2).
fn plane() -> Array2<f64> {
    Array2::from_shape_fn((200, 3), |(i, j)| {
        let (t, u, w) = (
            (i as f64 * 0.37).sin(),
            (i as f64 * 0.11).cos() * 0.5,
            (i as f64 * 1.7).sin() * 0.01,
        );
        t * [1.0, 2.0, 2.0][j] / 3.0 + u * [2.0, -2.0, 1.0][j] / 3.0 + w * [2.0, 1.0, -2.0][j] / 3.0
    })
}

/// Data spread to about 7e153: each squared deviation is about 1e307, so the covariance's
/// sum over 200 rows used to overflow and give NaN components. Now the components are
/// those of the unscaled data and the variances theirs times the scale squared; the same
/// at the small end.
#[test]
fn pca_scales_data_near_the_limits_of_f64() -> Result<()> {
    let x = plane();
    let reference = Pca::fit(x.view(), 2)?;
    for scale in [7e153, 1e-150] {
        let big = &x * scale;
        let pca = Pca::fit(big.view(), 2)?;
        for c in 0..2 {
            let (a, b) = (pca.components().column(c), reference.components().column(c));
            let sign = a.dot(&b).signum();
            let err = a
                .iter()
                .zip(b)
                .fold(0.0_f64, |m, (a, b)| m.max((a - sign * b).abs()));
            assert!(err < 1e-12, "scale {scale:e}, component {c}: {a} vs {b}");
            let ratio =
                pca.explained_variance()[c] / (reference.explained_variance()[c] * scale * scale);
            assert!(
                (ratio - 1.0).abs() < 1e-12,
                "scale {scale:e}: variance ratio {ratio}"
            );
        }
        let recon = pca.reconstruct(big.view())?;
        assert!(max_diff(&recon, &big, scale) < 0.02, "scale {scale:e}");
        assert!(pca.transform(big.view())?.iter().all(|v| v.is_finite()));
    }
    Ok(())
}

/// Data spread to 1e200: the variance (1e400) is past f64::MAX. It used to come back as
/// NaN components; now it is refused.
#[test]
fn pca_refuses_a_variance_past_f64_max() {
    let x = plane() * 1e200;
    assert_unrepresentable(Pca::fit(x.view(), 2), &["Pca::fit", "component 0"]);
}

/// `transform` and `reconstruct` refuse NaN and infinities as `encode` does, and a
/// coordinate past f64::MAX; a reconstruction that fits is still returned.
#[test]
fn pca_checks_its_input_and_output() -> Result<()> {
    let pca = Pca::fit(plane().view(), 2)?;
    for bad in [f64::NAN, f64::INFINITY] {
        let mut x = plane();
        x[[3, 1]] = bad;
        for result in [pca.transform(x.view()), pca.reconstruct(x.view())] {
            match result {
                Err(Error::NonFiniteData {
                    context, row, col, ..
                }) => {
                    assert_eq!((context, row, col), ("PCA input", 3, 1));
                }
                other => panic!("expected NonFiniteData for {bad}, got {other:?}"),
            }
        }
    }
    // A coordinate of about 2e308 on the first component is past f64::MAX, but the point's
    // projection onto the plane, about (0.93, 1.07, 1.47) 1e308, is not.
    let far = array![[1.2e308, 1.2e308, 1.2e308]];
    assert_unrepresentable(
        pca.transform(far.view()),
        &["Pca::transform output", "row 0"],
    );
    let recon = pca.reconstruct(far.view())?;
    assert!(recon.iter().all(|v| v.is_finite()), "{recon}");
    let normal = array![2.0, 1.0, -2.0] / 3.0;
    let off_plane = (&far.row(0) - &recon.row(0)).dot(&normal).abs();
    assert!(off_plane > 0.9 * 1.2e308 / 3.0, "{recon}");
    Ok(())
}

// ---- Parameters in the element type ----

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0)
}

/// A small f32 or f64 model with `latent` as its code activation.
fn model<T: Float>(latent: Activation) -> Result<Autoencoder<T>> {
    Autoencoder::<T>::builder(4)
        .latent(3, latent)
        .output(Activation::Sigmoid)
        .build(&mut rng())
}

fn data<T: Float>() -> Array2<T> {
    Array2::from_shape_fn((16, 4), |(i, j)| T::cast(((i * 3 + j) % 5) as f64 / 4.0))
}

/// An ELU `alpha` of 1e300 is finite in f64 but infinite in f32, where the codes of
/// negative inputs came out as -inf; 1e-50 is 0 in f32. A leaky ReLU `alpha` just below 1
/// rounds to 1 in f32. Each is refused wherever an f32 layer is made, and accepted in f64.
#[test]
fn activation_parameters_are_checked_in_the_element_type() -> Result<()> {
    let w32 = Array2::<f32>::ones((2, 2));
    let b32 = Array1::<f32>::zeros(2);
    let cases = [
        (Activation::Elu(1e300), "elu alpha"),
        (Activation::Elu(1e-50), "elu alpha"),
        (Activation::LeakyRelu(1.0 - 1e-10), "leaky relu alpha"),
    ];
    for (activation, name) in cases {
        assert_hyper(model::<f32>(activation), name);
        assert_hyper(Dense::new(w32.clone(), b32.clone(), activation), name);
        assert_hyper(
            Dense::<f32>::random(2, 2, activation, Init::GlorotUniform, &mut rng()),
            name,
        );
        assert_hyper(activation.validate_for::<f32>(), name);
        // A layer saved in f64 and read as f32 goes through the same check.
        let json = serde_json::to_string(&Dense::<f64>::new(
            Array2::ones((2, 2)),
            Array1::zeros(2),
            activation,
        )?)
        .expect("a layer serializes");
        assert!(
            serde_json::from_str::<Dense<f32>>(&json).is_err(),
            "{activation:?}"
        );
        // The same parameter is representable in f64, and gives finite codes there.
        activation.validate_for::<f64>()?;
        let codes = model::<f64>(activation)?.encode(data::<f64>().view())?;
        assert!(codes.iter().all(|v| v.is_finite()), "{activation:?}");
    }
    Ok(())
}

/// Adam's `eps` of 1e-50 is 0 in f32: the first step divided 0 by 0 and training diverged
/// with NaN. Now refused before training, by name; in f64 it is a valid eps. The same for
/// a learning rate that is 0 in f32.
#[test]
fn adam_parameters_are_checked_in_the_element_type() -> Result<()> {
    for (adam, name) in [
        (Adam::<f32>::new(1e-3).eps(1e-50), "eps"),
        (Adam::<f32>::new(1e-50), "lr"),
        (Adam::<f32>::new(1e300), "lr"),
    ] {
        assert_hyper(Optimizer::<f32>::validate(&adam), name);
        let mut ae = model::<f32>(Activation::Sigmoid)?;
        let fit = Trainer::new(adam)
            .epochs(1)
            .fit(&mut ae, data::<f32>().view(), None);
        assert_hyper(fit, name);
    }
    let mut ae = model::<f64>(Activation::Sigmoid)?;
    let history = Trainer::new(Adam::<f64>::new(1e-3).eps(1e-50))
        .epochs(2)
        .fit(&mut ae, data::<f64>().view(), None)?;
    assert!(history.epochs.iter().all(|e| e.train_loss.is_finite()));
    Ok(())
}

/// SGD's learning rate the same way: 1e-50 is 0 in f32 (training stood still), 1e300 is
/// infinite; both are refused by name, and valid in f64 where 1e-50 is representable.
#[test]
fn sgd_learning_rate_is_checked_in_the_element_type() -> Result<()> {
    for lr in [1e-50, 1e300] {
        let sgd = Sgd::<f32>::new(lr);
        assert_hyper(Optimizer::<f32>::validate(&sgd), "lr");
        let mut ae = model::<f32>(Activation::Sigmoid)?;
        let fit = Trainer::new(sgd)
            .epochs(1)
            .fit(&mut ae, data::<f32>().view(), None);
        assert_hyper(fit, "lr");
    }
    Optimizer::<f64>::validate(&Sgd::<f64>::new(1e-50))?;
    Ok(())
}

/// Gaussian noise: a `std` of 1e300 is infinite in f32 (inputs became infinities or NaN),
/// a clip range of `(inf, inf)` turned every input into an infinity, and one of `±1e39`
/// is infinite in f32. Refused by `corrupt` and by the trainer, by name.
#[test]
fn noise_parameters_are_checked_in_the_element_type() -> Result<()> {
    let std = Noise::Gaussian {
        std: 1e300,
        clip: None,
    };
    let clip = |lo: f64, hi: f64| Noise::Gaussian {
        std: 0.1,
        clip: Some((lo, hi)),
    };
    let cases = [
        (std, "gaussian noise std"),
        (clip(-1e39, 1e39), "gaussian noise clip"),
        (clip(f64::INFINITY, f64::INFINITY), "gaussian noise clip"),
        (
            clip(f64::NEG_INFINITY, f64::INFINITY),
            "gaussian noise clip",
        ),
    ];
    for (noise, name) in cases {
        assert_hyper(noise.validate_for::<f32>(), name);
        assert_hyper(corrupt(data::<f32>().view(), noise, &mut rng()), name);
        let mut ae = model::<f32>(Activation::Sigmoid)?;
        let fit = Trainer::new(Adam::new(1e-3)).epochs(1).noise(noise).fit(
            &mut ae,
            data::<f32>().view(),
            None,
        );
        assert_hyper(fit, name);
    }
    // Infinite bounds are refused in f64 too; finite ones past f32's range are not.
    assert_hyper(
        clip(f64::INFINITY, f64::INFINITY).validate(),
        "gaussian noise clip",
    );
    clip(-1e39, 1e39).validate_for::<f64>()?;
    // A std that is finite in f64 but whose samples can overflow: the sum saturates at
    // f64::MAX rather than becoming an infinity.
    let huge = Noise::Gaussian {
        std: 1e308,
        clip: None,
    };
    let noisy = corrupt(data::<f64>().view(), huge, &mut rng())?;
    assert!(noisy.iter().all(|v| v.is_finite()), "{noisy}");
    assert!(noisy.iter().any(|v| v.abs() == f64::MAX), "{noisy}");
    Ok(())
}

// ---- ln_fast ----

/// `ln_fast` outside the positive finite numbers gives `ln`'s own values, in f32 (the
/// polynomial) as in f64 (std). `ln_fast(NaN)` used to be 89.1 in f32, `ln_fast(inf)` 88.7,
/// `ln_fast(0)` -88.0 and `ln_fast(-1)` 0: finite values where `ln` has none.
#[test]
fn ln_fast_gives_ln_special_values() {
    let cases: [(f64, f64); 8] = [
        (f64::NAN, f64::NAN),
        (f64::INFINITY, f64::INFINITY),
        (f64::NEG_INFINITY, f64::NAN),
        (0.0, f64::NEG_INFINITY),
        (-0.0, f64::NEG_INFINITY),
        (-1.0, f64::NAN),
        (-1e-30, f64::NAN),
        (1.0, 0.0),
    ];
    for (x, expected) in cases {
        for (got, name) in [((x as f32).ln_fast() as f64, "f32"), (x.ln_fast(), "f64")] {
            assert!(
                got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan()),
                "{name} ln_fast({x}) = {got}, expected {expected}"
            );
        }
        // Exactly as std's ln in f32 too.
        let std = (x as f32).ln();
        let fast = (x as f32).ln_fast();
        assert!(
            fast == std || (fast.is_nan() && std.is_nan()),
            "ln_fast({x}) = {fast}, ln = {std}"
        );
    }
    // The ends of the normal range stay accurate.
    for x in [f32::MIN_POSITIVE, f32::MAX, 1e-30, 1e30] {
        let err = (x.ln_fast() as f64 - (x as f64).ln()).abs() / (x as f64).ln().abs();
        assert!(err < 3e-7, "ln_fast({x}): relative error {err}");
    }
}

// ---- Loss::value_and_grad ----

/// The public `Loss::value_and_grad` computed binary cross-entropy's fused sigmoid gradient
/// `a - x` whatever output activation it was given (wrong for any other), and panicked on
/// mismatched shapes. Now it checks, as the trainer does once per run.
#[test]
fn value_and_grad_refuses_what_its_formulas_do_not_cover() -> Result<()> {
    let z: Array2<f64> = array![[-1.0, 0.5, 2.0], [0.0, 1.5, -2.5]];
    let x: Array2<f64> = array![[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]];
    let mut d = Array2::zeros((2, 3));
    for loss in [Loss::BinaryCrossEntropy, Loss::BinaryCrossEntropySum] {
        for activation in [
            Activation::Relu,
            Activation::Identity,
            Activation::Tanh,
            Activation::Softplus,
        ] {
            let a = activation.apply(z.view());
            let result =
                loss.value_and_grad(z.view(), a.view(), x.view(), activation, d.view_mut());
            match result {
                Err(Error::InvalidConfig(message)) => {
                    assert!(message.contains("sigmoid"), "{message}")
                }
                other => panic!("{loss:?} with {activation:?}: {other:?}"),
            }
        }
    }
    // With a sigmoid: the value and the fused gradient (sigmoid(z) - x) / (batch n).
    let a = Activation::Sigmoid.apply(z.view());
    let bce = Loss::BinaryCrossEntropy;
    let value = bce.value_and_grad(
        z.view(),
        a.view(),
        x.view(),
        Activation::Sigmoid,
        d.view_mut(),
    )?;
    let expected = Zip::from(&a)
        .and(&x)
        .fold(0.0, |s: f64, &a: &f64, &x: &f64| {
            s - (x * a.ln() + (1.0 - x) * (1.0 - a).ln())
        })
        / 6.0;
    assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
    assert!(max_diff(&d, &((&a - &x) / 6.0), 1.0) < 1e-15, "{d}");
    // Other losses take any activation: MSE through ReLU is 2 (a - x) / (batch n) * relu'(z).
    let a = Activation::Relu.apply(z.view());
    Loss::MeanSquaredError.value_and_grad(
        z.view(),
        a.view(),
        x.view(),
        Activation::Relu,
        d.view_mut(),
    )?;
    let expected =
        Zip::from(&a)
            .and(&x)
            .and(&z)
            .map_collect(|&a, &x, &z| if z > 0.0 { 2.0 * (a - x) / 6.0 } else { 0.0 });
    assert_eq!(d, expected);
    // Shapes, emptiness, targets and parameters.
    let a = Activation::Sigmoid.apply(z.view());
    let mut wide = Array2::zeros((2, 4));
    let shape = bce.value_and_grad(
        z.view(),
        a.view(),
        x.view(),
        Activation::Sigmoid,
        wide.view_mut(),
    );
    assert!(
        matches!(shape, Err(Error::ShapeMismatch { .. })),
        "{shape:?}"
    );
    let short = x.slice(ndarray::s![..1, ..]);
    let shape = bce.value_and_grad(z.view(), a.view(), short, Activation::Sigmoid, d.view_mut());
    assert!(
        matches!(shape, Err(Error::ShapeMismatch { .. })),
        "{shape:?}"
    );
    let none = Array2::<f64>::zeros((0, 3));
    let mut d0 = none.clone();
    let empty = bce.value_and_grad(
        none.view(),
        none.view(),
        none.view(),
        Activation::Sigmoid,
        d0.view_mut(),
    );
    assert!(matches!(empty, Err(Error::EmptyData { .. })), "{empty:?}");
    let outside = x.mapv(|v| v + 0.75);
    let targets = bce.value_and_grad(
        z.view(),
        a.view(),
        outside.view(),
        Activation::Sigmoid,
        d.view_mut(),
    );
    assert!(
        matches!(targets, Err(Error::InvalidConfig(_))),
        "{targets:?}"
    );
    let huber = Loss::Huber(f64::NAN).value_and_grad(
        z.view(),
        a.view(),
        x.view(),
        Activation::Sigmoid,
        d.view_mut(),
    );
    assert_hyper(huber, "huber delta");
    Ok(())
}
