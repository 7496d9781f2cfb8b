//! The image layers (`Conv2d`, `ConvTranspose2d`, `MaxPool2d`, `Upsample2d`): forward passes
//! against their definitions written out as plain loops, and finite-difference gradient
//! checks (f64, central differences, h = 1e-5) of the input, weights and biases over random
//! shapes, strides, paddings and channel counts, alone and in whole convolutional models.
//!
//! Bound: relative error |a - n| / max(|a| + |n|, 1e-4) below 1e-6 (as `tests/gradients.rs`;
//! a correct gradient gives about 1e-9, a wrong index or factor 1e-2 or more).

use autoencoder::gradcheck::{check_layer, check_model};
use autoencoder::{
    Activation, Autoencoder, Conv2d, ConvTranspose2d, Dense, Init, Layer, LayerKind, Loss,
    MaxPool2d, Padding, Result, Rounding, Upsample2d, Window,
};
use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-5;
const BOUND: f64 = 1e-6;

/// Smooth activations (no kink a perturbation could cross) and identity.
const SMOOTH: [Activation; 5] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Softplus,
    Activation::Gelu,
];

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-2.0..2.0))
}

/// Rows whose values are a shuffled ladder 0.1 apart (plus a little noise), so no two
/// values in a pooling window are within a perturbation of each other.
fn distinct(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let mut x = Array2::zeros((rows, cols));
    for mut row in x.rows_mut() {
        let mut ladder: Vec<f64> = (0..cols).map(|i| i as f64 * 0.1 - 1.0).collect();
        ladder.shuffle(rng);
        for (v, l) in row.iter_mut().zip(ladder) {
            *v = l + rng.random_range(0.0..0.01);
        }
    }
    x
}

/// A random convolution window: shapes, kernel, stride and padding on each side, and
/// `channels` output channels. Stride 1 (the direct kernels with fewer than 4 channels, the
/// products that read the padded planes with more) if `unit_stride`, else any (mostly
/// im2col and the matrix product).
fn conv_window(rng: &mut ChaCha8Rng, unit_stride: bool, channels: Range<usize>) -> Window {
    loop {
        let input = [
            rng.random_range(1..4),
            rng.random_range(1..8),
            rng.random_range(1..8),
        ];
        let kernel = [rng.random_range(1..5), rng.random_range(1..5)];
        let stride = match unit_stride {
            true => [1, 1],
            false => [rng.random_range(1..4), rng.random_range(1..4)],
        };
        let padding = Padding::Explicit(std::array::from_fn(|_| rng.random_range(0..3)));
        let c_out = rng.random_range(channels.clone());
        if let Ok(w) = Window::conv(input, c_out, kernel, stride, padding) {
            return w;
        }
    }
}

/// The definition: `z[o, y, x] = b_o + sum W[o, c, i, j] x[c, y sh + i - top, x sw + j - left]`.
fn conv_reference(w: &Window, weights: &Array2<f64>, bias: &Array1<f64>, x: &[f64]) -> Vec<f64> {
    let [c_in, h, wd] = w.input;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.stride;
    let [top, bottom, left, right] = w.padding;
    let oh = (h + top + bottom - kh) / sh + 1;
    let ow = (wd + left + right - kw) / sw + 1;
    let mut z = vec![0.0; w.channels * oh * ow];
    for o in 0..w.channels {
        for y in 0..oh {
            for xx in 0..ow {
                let mut s = bias[o];
                for c in 0..c_in {
                    for i in 0..kh {
                        for j in 0..kw {
                            let (iy, ix) = (
                                (y * sh + i) as isize - top as isize,
                                (xx * sw + j) as isize - left as isize,
                            );
                            if (0..h as isize).contains(&iy) && (0..wd as isize).contains(&ix) {
                                s += weights[[o, (c * kh + i) * kw + j]]
                                    * x[(c * h + iy as usize) * wd + ix as usize];
                            }
                        }
                    }
                }
                z[(o * oh + y) * ow + xx] = s;
            }
        }
    }
    z
}

/// The definition of the transposed convolution: each input pixel adds `x W[c, o]` as a
/// `kh x kw` stamp at `(y sh - top, x sw - left)`.
fn conv_transpose_reference(
    w: &Window,
    weights: &Array2<f64>,
    bias: &Array1<f64>,
    x: &[f64],
) -> Vec<f64> {
    let [c_in, h, wd] = w.input;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.stride;
    let [top, bottom, left, right] = w.padding;
    let oh = (h - 1) * sh + kh - top - bottom;
    let ow = (wd - 1) * sw + kw - left - right;
    let c_out = w.channels;
    let mut z = vec![0.0; c_out * oh * ow];
    for (o, chunk) in z.chunks_mut(oh * ow).enumerate() {
        chunk.iter_mut().for_each(|v| *v = bias[o]);
    }
    for c in 0..c_in {
        for y in 0..h {
            for xx in 0..wd {
                for o in 0..c_out {
                    for i in 0..kh {
                        for j in 0..kw {
                            let (oy, ox) = (
                                (y * sh + i) as isize - top as isize,
                                (xx * sw + j) as isize - left as isize,
                            );
                            if (0..oh as isize).contains(&oy) && (0..ow as isize).contains(&ox) {
                                z[(o * oh + oy as usize) * ow + ox as usize] +=
                                    weights[[c, (o * kh + i) * kw + j]] * x[(c * h + y) * wd + xx];
                            }
                        }
                    }
                }
            }
        }
    }
    z
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "{what}: [{i}] {g} vs {w}"
        );
    }
}

/// A convolution-like layer with activation `s` at input `x`: each row of its output `out`
/// is `s(reference(row of x))`, and the finite-difference check of every input, weight and
/// bias passes [`BOUND`] (against a random upstream gradient).
fn check_convolution<L: LayerKind<f64>>(
    layer: &mut L,
    x: ArrayView2<f64>,
    out: Array2<f64>,
    reference: impl Fn(&[f64]) -> Vec<f64>,
    what: &str,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let s = layer.activation();
    for (row, got) in x.rows().into_iter().zip(out.rows()) {
        let want: Vec<f64> = reference(row.as_slice().unwrap())
            .into_iter()
            .map(|z| s.value(z))
            .collect();
        assert_close(got.as_slice().unwrap(), &want, what);
    }
    let upstream = random(x.nrows(), layer.n_out(), rng);
    let report = check_layer(layer, x, upstream.view(), H)?;
    assert!(report.max_rel_error < BOUND, "{what}: {report:?}");
    assert_eq!(
        report.n_checked,
        x.nrows() * layer.n_in() + layer.weights().len() + layer.bias().len()
    );
    Ok(())
}

#[test]
fn conv2d_forward_is_the_definition_and_its_gradients_match_finite_differences() -> Result<()> {
    // The last seeds: stride 1 with 32 or more output channels, whose weight gradient goes
    // tap by tap (`conv_taps.rs`).
    for seed in 0..64u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let window = match seed {
            0..60 => conv_window(&mut rng, seed % 2 == 0, 1..5),
            _ => conv_window(&mut rng, true, 32..36),
        };
        let activation = SMOOTH[seed as usize % SMOOTH.len()];
        let mut layer = Conv2d::random(window, activation, Init::GlorotUniform, &mut rng)?;
        let bias = Array1::from_shape_fn(window.channels, |_| rng.random_range(-0.5..0.5));
        layer = Conv2d::new(window, layer.weights().to_owned(), bias.clone(), activation)?;
        let batch = rng.random_range(1..4);
        let x = random(batch, layer.n_in(), &mut rng);
        let z = Layer::from(layer.clone()).spec();
        assert_eq!(z.n_out, layer.n_out());
        let out = layer.infer(x.view())?;
        let weights = layer.weights().to_owned();
        let reference = |x: &[f64]| conv_reference(&window, &weights, &bias, x);
        check_convolution(
            &mut layer,
            x.view(),
            out,
            reference,
            &format!("seed {seed}, {window:?}"),
            &mut rng,
        )?;
    }
    Ok(())
}

#[test]
fn conv_transpose_forward_is_the_definition_and_its_gradients_match() -> Result<()> {
    let mut done = 0;
    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let input = [
            rng.random_range(1..4),
            rng.random_range(1..6),
            rng.random_range(1..6),
        ];
        let kernel = [rng.random_range(1..5), rng.random_range(1..5)];
        let stride = [rng.random_range(1..4), rng.random_range(1..4)];
        let padding = std::array::from_fn(|_| rng.random_range(0..3));
        let Ok(window) =
            Window::conv_transpose(input, rng.random_range(1..4), kernel, stride, padding)
        else {
            continue;
        };
        let activation = SMOOTH[seed as usize % SMOOTH.len()];
        let init = ConvTranspose2d::random(window, activation, Init::GlorotUniform, &mut rng)?;
        let bias = Array1::from_shape_fn(window.channels, |_| rng.random_range(-0.5..0.5));
        let mut layer =
            ConvTranspose2d::new(window, init.weights().to_owned(), bias.clone(), activation)?;
        let batch = rng.random_range(1..4);
        let x = random(batch, layer.n_in(), &mut rng);
        let out = layer.infer(x.view())?;
        let weights = layer.weights().to_owned();
        let reference = |x: &[f64]| conv_transpose_reference(&window, &weights, &bias, x);
        check_convolution(
            &mut layer,
            x.view(),
            out,
            reference,
            &format!("seed {seed}, {window:?}"),
            &mut rng,
        )?;
        done += 1;
    }
    assert!(
        done >= 40,
        "only {done} random transposed windows were valid"
    );
    Ok(())
}

#[test]
fn max_pool_routes_gradients_to_the_maxima() -> Result<()> {
    let mut done = 0;
    for seed in 0..120u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let input = [
            rng.random_range(1..4),
            rng.random_range(1..8),
            rng.random_range(1..8),
        ];
        let kernel = [rng.random_range(1..4), rng.random_range(1..4)];
        let stride = [rng.random_range(1..4), rng.random_range(1..4)];
        let rounding = if seed % 2 == 0 {
            Rounding::Floor
        } else {
            Rounding::Ceil
        };
        let Ok(window) = Window::pool(input, kernel, stride, rounding) else {
            continue;
        };
        let mut layer = MaxPool2d::new(window, Activation::Softplus)?;
        let batch = rng.random_range(1..4);
        let x = distinct(batch, layer.n_in(), &mut rng);
        // Forward against the definition: the maximum of each (clipped) window.
        let out = layer.infer(x.view())?;
        let [c, h, w] = input;
        let [_, oh, ow] = layer.output_shape();
        for b in 0..batch {
            for ch in 0..c {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut m = f64::NEG_INFINITY;
                        for i in y * stride[0]..(y * stride[0] + kernel[0]).min(h) {
                            for j in xx * stride[1]..(xx * stride[1] + kernel[1]).min(w) {
                                m = m.max(x[[b, (ch * h + i) * w + j]]);
                            }
                        }
                        assert_eq!(
                            out[[b, (ch * oh + y) * ow + xx]],
                            Activation::Softplus.value(m),
                            "seed {seed}"
                        );
                    }
                }
            }
        }
        let upstream = random(batch, layer.n_out(), &mut rng);
        let report = check_layer(&mut layer, x.view(), upstream.view(), H)?;
        assert!(
            report.max_rel_error < BOUND,
            "seed {seed}, {window:?}: {report:?}"
        );
        done += 1;
    }
    assert!(done >= 40);
    Ok(())
}

#[test]
fn pool_sizes_follow_pytorch() -> Result<()> {
    use autoencoder::LayerKindName::MaxPool2d as Pool;
    // (h, kernel, stride, rounding) -> PyTorch's output size (torch.nn.MaxPool2d, padding 0).
    for (h, k, s, rounding, want) in [
        (7, 2, 2, Rounding::Ceil, 4),
        (7, 2, 2, Rounding::Floor, 3),
        (28, 2, 2, Rounding::Floor, 14),
        (5, 3, 2, Rounding::Ceil, 2),
        (6, 3, 2, Rounding::Ceil, 3),
        (6, 3, 2, Rounding::Floor, 2),
        (4, 3, 3, Rounding::Ceil, 2),
        (3, 3, 1, Rounding::Ceil, 1),
    ] {
        let window = Window::pool([1, h, h], [k, k], [s, s], rounding)?;
        assert_eq!(
            window.output(Pool)?,
            [1, want, want],
            "h {h} k {k} s {s} {rounding:?}"
        );
    }
    Ok(())
}

#[test]
fn upsampling_sums_the_gradients_of_its_copies() -> Result<()> {
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let input = [
            rng.random_range(1..4),
            rng.random_range(1..6),
            rng.random_range(1..6),
        ];
        let scale = [rng.random_range(1..4), rng.random_range(1..4)];
        let mut layer = Upsample2d::new(Window::upsample(input, scale)?, Activation::Softplus)?;
        let batch = rng.random_range(1..4);
        let x = random(batch, layer.n_in(), &mut rng);
        let out = layer.infer(x.view())?;
        let [c, h, w] = input;
        let (oh, ow) = (h * scale[0], w * scale[1]);
        for b in 0..batch {
            for ch in 0..c {
                for y in 0..oh {
                    for xx in 0..ow {
                        let want = Activation::Softplus
                            .value(x[[b, (ch * h + y / scale[0]) * w + xx / scale[1]]]);
                        assert_eq!(out[[b, (ch * oh + y) * ow + xx]], want);
                    }
                }
            }
        }
        let upstream = random(batch, layer.n_out(), &mut rng);
        let report = check_layer(&mut layer, x.view(), upstream.view(), H)?;
        assert!(report.max_rel_error < BOUND, "seed {seed}: {report:?}");
        assert_eq!(report.n_checked, batch * layer.n_in());
    }
    Ok(())
}

#[test]
fn same_padding_keeps_the_size_and_valid_shrinks_it() -> Result<()> {
    use autoencoder::LayerKindName::Conv2d as Conv;
    for k in 1..6 {
        let same = Window::conv([2, 9, 8], 3, [k, k], [1, 1], Padding::Same)?;
        assert_eq!(same.output(Conv)?, [3, 9, 8]);
        let valid = Window::conv([2, 9, 8], 3, [k, k], [1, 1], Padding::Valid)?;
        assert_eq!(valid.output(Conv)?, [3, 10 - k, 9 - k]);
    }
    assert!(Window::conv([1, 5, 5], 1, [3, 3], [2, 2], Padding::Same).is_err());
    assert!(Window::conv([1, 2, 2], 1, [3, 3], [1, 1], Padding::Valid).is_err());
    assert!(Window::conv([0, 2, 2], 1, [1, 1], [1, 1], Padding::Valid).is_err());
    assert!(Window::conv(
        [1, usize::MAX, 2],
        1,
        [1, 1],
        [1, 1],
        Padding::Explicit([1, 1, 0, 0])
    )
    .is_err());
    Ok(())
}

/// Biases away from 0: with a zero bias, a ReLU layer whose inputs are all 0 (a dead unit
/// below, or a patch wholly in the padding) sits exactly on its kink.
fn bias(n: usize, rng: &mut ChaCha8Rng) -> Array1<f64> {
    Array1::from_shape_fn(n, |_| {
        rng.random_range(0.05..0.3) * if rng.random::<bool>() { 1.0 } else { -1.0 }
    })
}

fn conv(
    input: [usize; 3],
    c: usize,
    k: usize,
    padding: Padding,
    s: Activation,
    rng: &mut ChaCha8Rng,
) -> Result<Layer<f64>> {
    let window = Window::conv(input, c, [k, k], [1, 1], padding)?;
    let layer = Conv2d::random(window, s, Init::GlorotUniform, rng)?;
    Ok(Conv2d::new(window, layer.weights().to_owned(), bias(c, rng), s)?.into())
}

/// A small convolutional autoencoder through every image kind and a dense bottleneck:
/// conv same -> pool (ceil) -> strided conv -> dense (reshape by width) -> transposed conv
/// -> upsample -> conv valid, sigmoid output, BCE.
fn conv_model(rng: &mut ChaCha8Rng, hidden: Activation) -> Result<Autoencoder<f64>> {
    let c1 = conv([1, 7, 7], 3, 3, Padding::Same, hidden, rng)?; // 3x7x7
    let p1: Layer<f64> = MaxPool2d::new(
        Window::pool([3, 7, 7], [2, 2], [2, 2], Rounding::Ceil)?,
        Activation::Identity,
    )?
    .into(); // 3x4x4
    let w2 = Window::conv([3, 4, 4], 2, [2, 2], [2, 2], Padding::Valid)?; // 2x2x2
    let c2 = Conv2d::random(w2, hidden, Init::GlorotUniform, rng)?;
    let c2: Layer<f64> = Conv2d::new(w2, c2.weights().to_owned(), bias(2, rng), hidden)?.into();
    let code = Dense::random(8, 5, Activation::Tanh, Init::GlorotUniform, rng)?;
    let code: Layer<f64> =
        Dense::new(code.weights().to_owned(), bias(5, rng), Activation::Tanh)?.into();
    let d1 = Dense::random(5, 8, hidden, Init::GlorotUniform, rng)?; // 2x2x2
    let d1: Layer<f64> = Dense::new(d1.weights().to_owned(), bias(8, rng), hidden)?.into();
    let t = Window::conv_transpose([2, 2, 2], 2, [3, 3], [2, 2], [1, 0, 1, 0])?; // 2x4x4
    let t1 = ConvTranspose2d::random(t, hidden, Init::GlorotUniform, rng)?;
    let t1: Layer<f64> =
        ConvTranspose2d::new(t, t1.weights().to_owned(), bias(2, rng), hidden)?.into();
    let u1: Layer<f64> =
        Upsample2d::new(Window::upsample([2, 4, 4], [2, 2])?, Activation::Identity)?.into(); // 2x8x8
    let out = conv([2, 8, 8], 1, 2, Padding::Valid, Activation::Sigmoid, rng)?; // 1x7x7
    Autoencoder::from_layers(vec![c1, p1, c2, code], vec![d1, t1, u1, out])
}

#[test]
fn whole_convolutional_models_match_finite_differences() -> Result<()> {
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for hidden in [Activation::Tanh, Activation::Softplus] {
            let mut model = conv_model(&mut rng, hidden)?;
            let x = Array2::from_shape_simple_fn((3, 49), || rng.random_range(0.02..0.98));
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::BinaryCrossEntropy,
                &[],
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed} {hidden:?}: {report:?}"
            );
            assert_eq!(report.n_checked, model.n_params());
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::MeanSquaredError,
                &[],
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed} {hidden:?} MSE: {report:?}"
            );
        }
    }
    Ok(())
}

/// A model of image layers only (every kind; the trainer's step then takes each image
/// through all layers, forward and backward, before the next: `src/model/runs.rs`), against
/// finite differences, in batches of more and fewer rows than the 8 fixed blocks.
/// (Finite differences are wrong where a step of `h` moves a pooling window's maximum:
/// seed 1 has such a near tie in one image, 1.5e-4 at one weight, the same on the
/// layer-by-layer path, and under 1e-5 with a step of 1e-7; the seeds below have none.)
#[test]
fn image_only_models_match_finite_differences() -> Result<()> {
    for seed in [0, 2, 3] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for hidden in [Activation::Tanh, Activation::Softplus] {
            let mut model = Autoencoder::<f64>::sequence([2, 7, 7])
                .conv(3, 3, Padding::Same, hidden)
                .max_pool(2, Rounding::Ceil) // 3x4x4
                .conv(2, 2, Padding::Valid, hidden) // 2x3x3
                .code()
                .conv_transpose(2, [2, 2], [2, 2], [0, 0, 0, 0], hidden) // 2x6x6
                .upsample(2) // 2x12x12
                .conv(2, 6, Padding::Valid, Activation::Sigmoid) // 2x7x7
                .build(&mut rng)?;
            for rows in [3, 9] {
                let x = Array2::from_shape_simple_fn((rows, 98), || rng.random_range(0.02..0.98));
                for loss in [Loss::BinaryCrossEntropy, Loss::MeanSquaredError] {
                    let report = check_model(&mut model, x.view(), x.view(), loss, &[], H)?;
                    assert!(
                        report.max_rel_error < BOUND,
                        "seed {seed} {hidden:?} {rows} rows {loss:?}: {report:?}"
                    );
                    assert_eq!(report.n_checked, model.n_params());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn a_relu_conv_model_matches_away_from_its_kinks() -> Result<()> {
    for seed in 0..4 {
        for hidden in [Activation::Relu, Activation::LeakyRelu(0.1)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut model = conv_model(&mut rng, hidden)?;
            let x = Array2::from_shape_simple_fn((2, 49), || rng.random_range(0.02..0.98));
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::BinaryCrossEntropy,
                &[],
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed} {hidden:?}: {report:?}"
            );
        }
    }
    Ok(())
}
