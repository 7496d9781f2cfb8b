//! Criterion benches of the training step's parts, at the sizes of the `PERF.md`
//! workloads (batch 256, 784 inputs, f32): `cargo bench`. Whole-epoch throughput against
//! the GEMM peak is `cargo run --release --example throughput`.

use autoencoder::Trainer;
use autoencoder::{Activation, Adam, Autoencoder, Dense, Init, Loss, Optimizer, ParamKind, Sgd};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 256;

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f32>())
}

fn dense(c: &mut Criterion) {
    let mut group = c.benchmark_group("dense");
    for (n_in, n_out, activation) in [
        (784, 32, Activation::Relu),
        (784, 512, Activation::Relu),
        (128, 784, Activation::Sigmoid),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut layer =
            Dense::<f32>::random(n_in, n_out, activation, Init::GlorotUniform, &mut rng)
                .expect("benchmark sizes are valid");
        let x = uniform(BATCH, n_in, 2);
        let mut z = Array2::zeros((BATCH, n_out));
        let mut a = Array2::zeros((BATCH, n_out));
        let d_z = uniform(BATCH, n_out, 3);
        let mut d_x = Array2::zeros((BATCH, n_in));
        let name = format!("{n_in}x{n_out} {activation:?}");
        group.bench_function(format!("forward {name}"), |b| {
            b.iter(|| layer.forward(x.view(), z.view_mut(), a.view_mut()))
        });
        group.bench_function(format!("backward {name}"), |b| {
            b.iter(|| {
                layer.zero_grad();
                layer.backward(x.view(), d_z.view(), Some(d_x.view_mut()));
            })
        });
    }
    group.finish();
}

/// The matrix product alone, in the three layouts a layer uses (forward `X W`, weight
/// gradient `X^T dZ`, input gradient `dZ W^T`), beside ndarray's `general_mat_mul`
/// (matrixmultiply, one thread in this build) for reference.
fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm 256x784x128");
    let x = uniform(BATCH, 784, 5);
    let w = uniform(784, 128, 6);
    let d_z = uniform(BATCH, 128, 7);
    let mut z = Array2::zeros((BATCH, 128));
    let mut d_w = Array2::zeros((784, 128));
    let mut d_x = Array2::zeros((BATCH, 784));
    group.bench_function("forward X W", |b| {
        b.iter(|| autoencoder::compute::gemm(1.0, &x.view(), &w.view(), 0.0, &mut z.view_mut()))
    });
    group.bench_function("weight gradient X^T dZ", |b| {
        b.iter(|| autoencoder::compute::gemm(1.0, &x.t(), &d_z.view(), 1.0, &mut d_w.view_mut()))
    });
    group.bench_function("input gradient dZ W^T", |b| {
        b.iter(|| autoencoder::compute::gemm(1.0, &d_z.view(), &w.t(), 0.0, &mut d_x.view_mut()))
    });
    group.bench_function("forward X W, ndarray general_mat_mul", |b| {
        b.iter(|| ndarray::linalg::general_mat_mul(1.0, &x, &w, 0.0, &mut z))
    });
    group.finish();
}

fn losses(c: &mut Criterion) {
    let mut group = c.benchmark_group("loss value and gradient 256x784");
    let z = uniform(BATCH, 784, 4).mapv(|v| 8.0 * v - 4.0);
    let a = Activation::Sigmoid.apply(z.view());
    let x = uniform(BATCH, 784, 5);
    let mut d = Array2::zeros((BATCH, 784));
    for loss in [
        Loss::BinaryCrossEntropy,
        Loss::MeanSquaredError,
        Loss::SumSquaredError,
        Loss::MeanAbsoluteError,
        Loss::Huber(0.5),
    ] {
        group.bench_function(loss.name(), |b| {
            b.iter(|| {
                loss.value_and_grad(
                    z.view(),
                    a.view(),
                    x.view(),
                    Activation::Sigmoid,
                    d.view_mut(),
                )
            })
        });
    }
    group.finish();
}

fn optimizers(c: &mut Criterion) {
    let mut group = c.benchmark_group("optimizer update, 784x512 weights");
    let grad = uniform(784, 512, 6).mapv(|v| v - 0.5);
    let grad = grad.as_slice().expect("standard layout");
    let mut param = vec![0.1f32; grad.len()];
    let mut adam = Adam::<f32>::new(1e-3).eps(1e-7);
    let mut sgd = Sgd::<f32>::new(1e-2).momentum(0.9);
    group.bench_function("adam", |b| {
        b.iter(|| {
            adam.begin_step();
            adam.update(0, &mut param, grad, ParamKind::Weight, 1e-3);
        })
    });
    group.bench_function("sgd momentum", |b| {
        b.iter(|| {
            sgd.begin_step();
            sgd.update(0, &mut param, grad, ParamKind::Weight, 1e-2);
        })
    });
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train step, batch 256, BCE, Adam");
    let x = uniform(BATCH, 784, 7);
    for (name, hidden, latent) in [
        ("W-shallow", &[][..], 32),
        ("W-deep", &[128, 64][..], 32),
        ("W-wide", &[512][..], 128),
    ] {
        let mut builder = Autoencoder::<f32>::builder(784);
        for &h in hidden {
            builder = builder.hidden(h, Activation::Relu);
        }
        let mut ae = builder
            .latent(latent, Activation::Relu)
            .output(Activation::Sigmoid)
            .init(Init::GlorotUniform)
            .build(&mut ChaCha8Rng::seed_from_u64(8))
            .expect("valid model");
        let mut trainer = Trainer::new(Adam::new(1e-3).eps(1e-7)).loss(Loss::BinaryCrossEntropy);
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| {
                    trainer
                        .step(&mut ae, x.view(), x.view())
                        .expect("finite step")
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = gemm, dense, losses, optimizers, train_step
}
criterion_main!(benches);
