//! Criterion benches of the image layers, forward and backward, at the shapes of the
//! `mnist_conv` models (batch 128, f32): `cargo bench --bench conv`. Whole-epoch throughput
//! is `cargo run --release --example throughput -- --workload c-small` (and `c-denoise`).

use autoencoder::{
    Activation, Conv2d, ConvTranspose2d, Init, Layer, MaxPool2d, Padding, Rounding, Upsample2d,
    Window,
};
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 128;

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>())
}

/// Forward and backward (with the input gradient) of `layer`, named `name`.
fn bench(c: &mut Criterion, group: &str, name: &str, mut layer: Layer<f32>) {
    let mut group = c.benchmark_group(group);
    let (n_in, n_out) = (layer.n_in(), layer.n_out());
    let x = uniform(BATCH, n_in, 2);
    let mut z = Array2::zeros((BATCH, n_out));
    let mut a = Array2::zeros((BATCH, n_out));
    let d_z = uniform(BATCH, n_out, 3);
    let mut d_x = Array2::zeros((BATCH, n_in));
    group.bench_function(format!("forward {name}"), |b| {
        b.iter(|| layer.forward(x.view(), z.view_mut(), a.view_mut()))
    });
    group.bench_function(format!("backward {name}"), |b| {
        b.iter(|| {
            layer.zero_grad();
            layer.backward(x.view(), d_z.view(), Some(d_x.view_mut()));
        })
    });
    group.finish();
}

fn conv(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (input, c_out, padding) in [
        ([1, 28, 28], 16, Padding::Same),
        ([16, 14, 14], 8, Padding::Same),
        ([8, 16, 16], 16, Padding::Valid),
        ([16, 28, 28], 1, Padding::Same),
        ([32, 14, 14], 32, Padding::Same),
        ([32, 28, 28], 1, Padding::Same),
    ] {
        let window = Window::conv(input, c_out, [3, 3], [1, 1], padding).expect("valid");
        let layer =
            Conv2d::random(window, Activation::Relu, Init::HeUniform, &mut rng).expect("valid");
        bench(
            c,
            "conv2d",
            &format!("{input:?} -> {c_out} {padding:?}"),
            layer.into(),
        );
    }
}

fn conv_transpose(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let window = Window::conv_transpose([32, 7, 7], 32, [2, 2], [2, 2], [0; 4]).expect("valid");
    let layer = ConvTranspose2d::random(window, Activation::Relu, Init::HeUniform, &mut rng)
        .expect("valid");
    bench(
        c,
        "conv_transpose2d",
        "[32, 7, 7] -> 32 k2 s2",
        layer.into(),
    );
}

fn pool_and_upsample(c: &mut Criterion) {
    let pool = Window::pool([16, 28, 28], [2, 2], [2, 2], Rounding::Floor).expect("valid");
    bench(
        c,
        "max_pool2d",
        "[16, 28, 28] 2x2",
        MaxPool2d::new(pool, Activation::Identity)
            .expect("valid")
            .into(),
    );
    let up = Window::upsample([16, 14, 14], [2, 2]).expect("valid");
    bench(
        c,
        "upsample2d",
        "[16, 14, 14] x2",
        Upsample2d::new(up, Activation::Identity)
            .expect("valid")
            .into(),
    );
}

criterion_group!(benches, conv, conv_transpose, pool_and_upsample);
criterion_main!(benches);
