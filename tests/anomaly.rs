//! Per-sample reconstruction errors, and read-only calls on `&self` from several threads.

mod common;

use autoencoder::{seeded_rng, Activation, Adam, Autoencoder, Loss, Penalty, Result, Trainer};
use ndarray::{s, Array2, Axis};

fn trained() -> Result<(Autoencoder<f64>, Array2<f64>)> {
    let x = common::structured(300, 10, 2, 0.05, 3);
    let mut ae = Autoencoder::<f64>::builder(10)
        .hidden(6, Activation::Tanh)
        .latent(2, Activation::Identity)
        .output(Activation::Sigmoid)
        .build(&mut seeded_rng(1))?;
    Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(5)
        .batch_size(32)
        .fit(&mut ae, x.view(), None)?;
    Ok((ae, x))
}

#[test]
fn each_rows_error_is_the_loss_of_that_row_alone() -> Result<()> {
    let (ae, x) = trained()?;
    let recon = ae.reconstruct(x.view())?;
    let losses = [
        Loss::MeanSquaredError,
        Loss::SumSquaredError,
        Loss::BinaryCrossEntropy,
        Loss::BinaryCrossEntropySum,
        Loss::MeanAbsoluteError,
        Loss::Huber(0.1),
    ];
    for loss in losses {
        let errors = ae.reconstruction_errors(x.view(), loss)?;
        assert_eq!(errors.len(), x.nrows());
        for i in [0, 17, 299] {
            let row = s![i..i + 1, ..];
            let alone = ae.evaluate(x.slice(row), x.slice(row), loss)?;
            assert!(
                (errors[i] - alone).abs() <= 1e-12 * alone.abs().max(1.0),
                "{loss:?} row {i}: {} vs {alone}",
                errors[i]
            );
        }
        let mean = errors.mean().expect("rows");
        let whole = ae.evaluate(x.view(), x.view(), loss)?;
        assert!(
            (mean - whole).abs() <= 1e-10 * whole,
            "{loss:?}: {mean} vs {whole}"
        );
    }
    // By hand for MSE and SSE: from the reconstruction.
    let sq = (&x - &recon).mapv(|d| d * d).sum_axis(Axis(1));
    let sse = ae.reconstruction_errors(x.view(), Loss::SumSquaredError)?;
    let mse = ae.reconstruction_errors(x.view(), Loss::MeanSquaredError)?;
    for i in 0..x.nrows() {
        assert!(
            (sse[i] - sq[i]).abs() < 1e-12 && (mse[i] - sq[i] / 10.0).abs() < 1e-12,
            "row {i}"
        );
    }
    // More rows than one chunk (1024).
    let big = ndarray::concatenate(Axis(0), &[x.view(); 5]).expect("same widths");
    let errors = ae.reconstruction_errors(big.view(), Loss::MeanSquaredError)?;
    assert_eq!(errors.slice(s![1200..1500]).to_vec(), mse.to_vec());
    Ok(())
}

#[test]
fn read_only_calls_run_from_several_threads_on_one_model() -> Result<()> {
    let (ae, x) = trained()?;
    let penalty: Penalty = Penalty::l1_activity(1e-3)?.into();
    let alone = (
        ae.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?
            .to_bits(),
        ae.reconstruction_errors(x.view(), Loss::BinaryCrossEntropy)?
            .mapv(f64::to_bits),
        ae.objective(
            x.view(),
            x.view(),
            Loss::BinaryCrossEntropy,
            std::slice::from_ref(&penalty),
            3,
        )?,
    );
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<_> {
                    Ok((
                        ae.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?
                            .to_bits(),
                        ae.reconstruction_errors(x.view(), Loss::BinaryCrossEntropy)?
                            .mapv(f64::to_bits),
                        ae.objective(
                            x.view(),
                            x.view(),
                            Loss::BinaryCrossEntropy,
                            std::slice::from_ref(&penalty),
                            3,
                        )?,
                    ))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for r in results {
        let r = r?;
        assert_eq!(r.0, alone.0);
        assert_eq!(r.1, alone.1);
        assert_eq!(
            r.2.reconstruction.to_bits(),
            alone.2.reconstruction.to_bits()
        );
        assert_eq!(r.2.penalties, alone.2.penalties);
    }
    Ok(())
}
