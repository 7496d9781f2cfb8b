//! Checkpoints and resume: a run interrupted and resumed from its last checkpoint gives the
//! weights of an uninterrupted run, bit for bit, also across processes.

mod common;
mod sealing;

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;

use autoencoder::{
    Activation, Adam, Autoencoder, Checkpoint, EarlyStopping, Error, Loss, Noise, Optimizer,
    Penalty, Schedule, Sgd, StopReason, Trainer, Tying,
};
use common::param_bits;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("resume-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn data() -> Array2<f32> {
    Array2::from_shape_fn((90, 12), |(i, j)| ((i * 7 + j * 5) % 13) as f32 / 12.0)
}

fn valid() -> Array2<f32> {
    Array2::from_shape_fn((20, 12), |(i, j)| ((i * 3 + j * 11) % 13) as f32 / 12.0)
}

fn model() -> autoencoder::Result<Autoencoder<f32>> {
    Autoencoder::<f32>::builder(12)
        .hidden(8, Activation::Relu)
        .latent(4, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(5))
}

/// The run under test: Adam, masking noise (draws from the generator in every batch), a
/// penalty, validation, early stopping that never triggers (but tracks the best weights),
/// 6 epochs; batches of 16 leave a last batch of 10 rows.
fn trainer() -> autoencoder::Result<Trainer<Adam<f32>>> {
    Ok(Trainer::new(Adam::new(5e-3))
        .epochs(6)
        .batch_size(16)
        .seed(9)
        .noise(Noise::Masking { fraction: 0.25 })
        .penalty(Penalty::l2_weights(1e-4)?)
        .early_stopping(EarlyStopping::new(100)))
}

const PHASE: &str = "AE_RESUME_PHASE";
const DIR: &str = "AE_RESUME_DIR";

/// Runs `child_process` of this test binary with the given phase.
fn run_child(phase: &str, dir: &Path) -> std::io::Result<std::process::ExitStatus> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--exact", "child_process", "--ignored", "--test-threads=1"])
        .env(PHASE, phase)
        .env(DIR, dir)
        .output()?;
    if !out.status.success() {
        eprintln!(
            "child `{phase}` exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.status)
}

#[test]
fn six_epochs_equal_three_then_three_more_in_a_fresh_process() -> TestResult {
    let dir = scratch("processes");
    // Process 1 trains with a checkpoint after every epoch and aborts in the middle of
    // epoch 3 (counted from 0), like a killed process: the checkpoint holds 3 epochs.
    let status = run_child("crash", &dir)?;
    assert!(!status.success(), "the first child must die mid-run");
    let checkpoint = Checkpoint::<f32>::load(dir.join("run.ckpt"))?;
    assert_eq!(checkpoint.epoch(), 3);
    // Process 2 loads the checkpoint, resumes, and saves the final model.
    let status = run_child("resume", &dir)?;
    assert!(status.success(), "the resuming child failed: {status}");
    let resumed = Autoencoder::<f32>::load(dir.join("resumed.safetensors"))?;

    let mut straight = model()?;
    let history = trainer()?.fit(&mut straight, data().view(), Some(valid().view()))?;
    assert_eq!(param_bits(&resumed), param_bits(&straight));
    // The final checkpoint written by process 2 has the same history as the straight run.
    let last = Checkpoint::<f32>::load(dir.join("run.ckpt"))?;
    assert_eq!(last.epoch(), 6);
    let losses = |h: &autoencoder::History| -> Vec<u64> {
        h.epochs.iter().map(|e| e.train_loss.to_bits()).collect()
    };
    assert_eq!(losses(last.history()), losses(&history));
    assert_eq!(last.history().best_epoch, history.best_epoch);
    fs::remove_dir_all(dir)?;
    Ok(())
}

/// The two halves of the test above, each in its own process.
#[test]
#[ignore = "run as a child process by six_epochs_equal_three_then_three_more_in_a_fresh_process"]
fn child_process() -> TestResult {
    let (Ok(phase), Some(dir)) = (std::env::var(PHASE), std::env::var_os(DIR)) else {
        return Ok(()); // run by hand with --ignored: nothing to do
    };
    let dir = PathBuf::from(dir);
    let path = dir.join("run.ckpt");
    match phase.as_str() {
        "crash" => {
            let mut ae = model()?;
            trainer()?
                .checkpoint(&path, 1)
                .on_batch(|p| {
                    if p.epoch == 3 && p.batch == 2 {
                        std::process::abort(); // killed mid-epoch
                    }
                })
                .fit(&mut ae, data().view(), Some(valid().view()))?;
            Err("the run should have been killed".into())
        }
        "resume" => {
            let checkpoint = Checkpoint::<f32>::load(&path)?;
            let mut ae = model()?; // replaced by the checkpoint's model
            let history = trainer()?.checkpoint(&path, 1).resume(
                &mut ae,
                checkpoint,
                data().view(),
                Some(valid().view()),
            )?;
            assert_eq!(history.epochs.len(), 6);
            ae.save(dir.join("resumed.safetensors"))?;
            Ok(())
        }
        other => Err(format!("unknown phase {other}").into()),
    }
}

/// Trains `epochs` of `make()`'s run straight, and as `split` epochs, a checkpoint, and the
/// rest resumed by a fresh trainer and model; returns both models' bits.
fn straight_and_split<O: Optimizer<f32>>(
    name: &str,
    make: impl Fn() -> autoencoder::Result<Trainer<O>>,
    split: usize,
) -> autoencoder::Result<(Vec<u32>, Vec<u32>)> {
    let dir = scratch(name);
    let path = dir.join("run.ckpt");
    let mut straight = model()?;
    make()?.fit(&mut straight, data().view(), Some(valid().view()))?;

    let mut first = model()?;
    make()?
        .checkpoint(&path, split)
        .on_epoch(move |r| {
            if r.epoch + 1 == split {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .fit(&mut first, data().view(), Some(valid().view()))?;
    let checkpoint = Checkpoint::<f32>::load(&path)?;
    assert_eq!(checkpoint.epoch(), split);
    let mut resumed = model()?;
    make()?.resume(
        &mut resumed,
        checkpoint,
        data().view(),
        Some(valid().view()),
    )?;
    fs::remove_dir_all(dir).expect("cleanup");
    Ok((param_bits(&straight), param_bits(&resumed)))
}

#[test]
fn sgd_momentum_with_a_cosine_schedule_resumes_exactly() -> TestResult {
    let make = || -> autoencoder::Result<_> {
        Ok(Trainer::new(Sgd::new(0.5).momentum(0.9).nesterov(true))
            .epochs(5)
            .batch_size(32)
            .seed(3)
            .schedule(Schedule::Cosine { min_lr: 0.01 })
            .noise(Noise::Gaussian {
                std: 0.1,
                clip: Some((0.0, 1.0)),
            }))
    };
    let (straight, resumed) = straight_and_split("sgd", make, 2)?;
    assert_eq!(straight, resumed);
    Ok(())
}

#[test]
fn adamw_resumes_exactly_after_one_epoch() -> TestResult {
    let make = || -> autoencoder::Result<_> {
        Ok(Trainer::new(Adam::adamw(1e-2, 1e-2))
            .epochs(4)
            .batch_size(7)
            .clip_grad_norm(0.5)
            .penalty(Penalty::l1_activity(1e-3)?))
    };
    let (straight, resumed) = straight_and_split("adamw", make, 1)?;
    assert_eq!(straight, resumed);
    Ok(())
}

/// As `straight_and_split`, for a model built by `build`.
fn straight_and_split_model<O: Optimizer<f32>>(
    name: &str,
    build: impl Fn() -> autoencoder::Result<Autoencoder<f32>>,
    make: impl Fn() -> autoencoder::Result<Trainer<O>>,
    split: usize,
) -> autoencoder::Result<(Vec<u32>, Vec<u32>)> {
    let dir = scratch(name);
    let path = dir.join("run.ckpt");
    let mut straight = build()?;
    make()?.fit(&mut straight, data().view(), None)?;
    let mut first = build()?;
    make()?
        .checkpoint(&path, split)
        .on_epoch(move |r| match r.epoch + 1 == split {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        })
        .fit(&mut first, data().view(), None)?;
    let mut resumed = build()?;
    make()?.resume(&mut resumed, Checkpoint::load(&path)?, data().view(), None)?;
    fs::remove_dir_all(dir).expect("cleanup");
    Ok((param_bits(&straight), param_bits(&resumed)))
}

#[test]
fn variational_and_tied_models_resume_exactly() -> TestResult {
    // A VAE draws eps from the trainer's generator in every batch; the KL term warms up.
    let vae = || {
        Autoencoder::<f32>::builder(12)
            .hidden(6, Activation::Tanh)
            .gaussian_latent(2)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(4))
    };
    let make = || -> autoencoder::Result<_> {
        Ok(Trainer::new(Adam::new(1e-2))
            .epochs(4)
            .batch_size(16)
            .seed(8)
            .penalty(Penalty::gaussian_kl(1.0)?))
    };
    let (straight, resumed) = straight_and_split_model("vae", vae, make, 2)?;
    assert_eq!(straight, resumed);
    // Tied weights: the optimizer has no state for the decoder's shared matrices.
    let tied = || {
        Autoencoder::<f32>::builder(12)
            .hidden(8, Activation::Relu)
            .latent(3, Activation::Sigmoid)
            .tying(Tying::Tied)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(4))
    };
    let make =
        || -> autoencoder::Result<_> { Ok(Trainer::new(Adam::new(1e-2)).epochs(3).batch_size(16)) };
    let (straight, resumed) = straight_and_split_model("tied", tied, make, 1)?;
    assert_eq!(straight, resumed);
    Ok(())
}

#[test]
fn checkpoints_every_n_epochs_and_on_early_stop() -> TestResult {
    let dir = scratch("every");
    let path = dir.join("run.ckpt");
    let saved = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = saved.clone();
    let check_path = path.clone();
    let mut ae = model()?;
    // min_delta so large that no epoch improves: early stopping after patience 5 epochs.
    let history = Trainer::new(Adam::new(1e-3))
        .epochs(50)
        .batch_size(30)
        .early_stopping(EarlyStopping::new(5).min_delta(1e9))
        .checkpoint(&path, 2)
        .on_epoch(move |r| {
            // The checkpoint of epoch r.epoch is written after this callback returns, so
            // what is on disk now is the one from an earlier epoch.
            let on_disk = Checkpoint::<f32>::load(&check_path).map(|c| c.epoch()).ok();
            log.lock().expect("lock").push((r.epoch, on_disk));
            ControlFlow::Continue(())
        })
        .fit(&mut ae, data().view(), None)?;
    assert_eq!(history.stop, StopReason::EarlyStopped);
    assert_eq!(history.epochs.len(), 6);
    let seen = saved.lock().expect("lock").clone();
    // Saved after epochs 1 and 3 (every 2), seen on disk from the epoch after.
    assert_eq!(
        seen,
        vec![
            (0, None),
            (1, None),
            (2, Some(2)),
            (3, Some(2)),
            (4, Some(4)),
            (5, Some(4))
        ]
    );
    // ... and once more when early stopping ended the run, with the best weights restored.
    let last = Checkpoint::<f32>::load(&path)?;
    assert_eq!(last.epoch(), 6);
    assert_eq!(last.history().stop, StopReason::EarlyStopped);
    assert_eq!(param_bits(last.model()), param_bits(&ae));
    assert_eq!(
        param_bits(last.best_model().expect("best")),
        param_bits(&ae)
    );
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn resume_checks_the_data_and_the_settings() -> TestResult {
    let dir = scratch("checks");
    let path = dir.join("run.ckpt");
    let mut ae = model()?;
    trainer()?
        .epochs(1)
        .checkpoint(&path, 1)
        .fit(&mut ae, data().view(), None)?;
    // Fewer rows than the checkpointed run.
    let fewer = data().slice(ndarray::s![..50, ..]).to_owned();
    let err = trainer()?
        .resume(&mut ae, Checkpoint::load(&path)?, fewer.view(), None)
        .expect_err("row count differs");
    assert!(
        matches!(err, autoencoder::Error::ShapeMismatch { .. }),
        "{err}"
    );
    // Different penalties.
    let err = trainer()?
        .penalty(Penalty::l1_activity(1e-3)?)
        .resume(&mut ae, Checkpoint::load(&path)?, data().view(), None)
        .expect_err("penalties differ");
    assert!(
        matches!(&err, autoencoder::Error::InvalidConfig(m) if m.contains("penalties")),
        "{err}"
    );
    // A different batch size, seed, loss or noise would not continue the run exactly.
    let others = [
        trainer()?.batch_size(32),
        trainer()?.seed(10),
        trainer()?.loss(Loss::MeanAbsoluteError),
        trainer()?.noise(Noise::Masking { fraction: 0.3 }),
    ];
    for (i, mut other) in others.into_iter().enumerate() {
        let err = other
            .resume(&mut ae, Checkpoint::load(&path)?, data().view(), None)
            .expect_err("settings differ");
        assert!(
            matches!(&err, autoencoder::Error::InvalidConfig(m) if m.contains("batch_size: 16")),
            "case {i}: {err}"
        );
    }
    // A checkpoint at or past the last epoch trains nothing more.
    let mut again = model()?;
    let history =
        trainer()?
            .epochs(1)
            .resume(&mut again, Checkpoint::load(&path)?, data().view(), None)?;
    assert_eq!(history.epochs.len(), 1);
    assert_eq!(
        param_bits(&again),
        param_bits(Checkpoint::<f32>::load(&path)?.model())
    );
    assert_ne!(param_bits(&again), param_bits(&model()?));
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn checkpoint_every_zero_is_refused() -> TestResult {
    let mut ae = model()?;
    let err = trainer()?
        .checkpoint("unused.ckpt", 0)
        .fit(&mut ae, data().view(), None)
        .expect_err("every = 0");
    assert!(matches!(
        err,
        autoencoder::Error::InvalidHyperparameter {
            name: "checkpoint every",
            ..
        }
    ));
    Ok(())
}

#[test]
fn a_refused_resume_leaves_the_callers_model_untouched() -> TestResult {
    let dir = scratch("refused");
    let path = dir.join("run.ckpt");
    let mut ae = model()?;
    Trainer::new(Adam::new(1e-2))
        .epochs(2)
        .checkpoint(&path, 1)
        .fit(&mut ae, data().view(), None)?;
    let mut mine = Autoencoder::<f32>::builder(12)
        .latent(3, Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(9))?;
    let before = mine.clone();
    let wrong_width = Array2::<f32>::zeros((10, 11));
    let err = Trainer::new(Adam::new(1e-2))
        .epochs(4)
        .resume(
            &mut mine,
            Checkpoint::load(&path)?,
            wrong_width.view(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, autoencoder::Error::ShapeMismatch { .. }),
        "{err}"
    );
    assert_eq!(mine.sizes(), before.sizes());
    assert_eq!(mine.layers()[0].weights(), before.layers()[0].weights());
    Ok(())
}

/// `bytes`, a checkpoint, with the optimizer's step count set to `steps` (and the checksum
/// written anew): the state of a very long run, or a crafted one.
fn with_steps(bytes: &[u8], steps: u64) -> Vec<u8> {
    use safetensors::tensor::TensorView;
    use safetensors::SafeTensors;
    let (_, header) = SafeTensors::read_metadata(bytes).expect("valid checkpoint");
    let mut meta = header.metadata().clone().expect("metadata");
    let mut training: serde_json::Value =
        serde_json::from_str(&meta["training"]).expect("training JSON");
    training["optimizer"]["steps"] = steps.into();
    meta.insert("training".into(), training.to_string());
    let parsed = SafeTensors::deserialize(bytes).expect("valid checkpoint");
    let tensors: Vec<(String, TensorView)> = parsed.tensors();
    let mut out = safetensors::serialize(tensors, Some(meta)).expect("serializable");
    assert!(sealing::reseal(&mut out));
    out
}

#[test]
fn adam_resumes_from_step_counts_near_u64_max_and_past_2_pow_31() -> TestResult {
    let dir = scratch("adam-steps");
    let path = dir.join("run.ckpt");
    let mut ae = model()?;
    trainer()?
        .epochs(1)
        .checkpoint(&path, 1)
        .fit(&mut ae, data().view(), Some(valid().view()))?;
    let bytes = fs::read(&path)?;
    // 6 steps per epoch (90 rows in batches of 16), 2 epochs: the count reaches u64::MAX
    // after 2 steps and stays (debug builds used to panic on the overflow); from 2^31 - 3
    // it passes 2^31 (where `powi`'s i32 exponent used to wrap to a negative one).
    for (start, end) in [(u64::MAX - 2, u64::MAX), ((1 << 31) - 3, (1 << 31) + 9)] {
        let crafted = dir.join(format!("crafted-{start}.ckpt"));
        fs::write(&crafted, with_steps(&bytes, start))?;
        let checkpoint = Checkpoint::<f32>::load(&crafted)?;
        assert_eq!(checkpoint.optimizer_state().steps(), start);
        let mut resumed = model()?;
        let history = trainer()?.epochs(3).checkpoint(&crafted, 1).resume(
            &mut resumed,
            checkpoint,
            data().view(),
            Some(valid().view()),
        )?;
        assert_eq!(history.epochs.len(), 3);
        assert!(history.epochs.iter().all(|e| e.train_loss.is_finite()));
        let last = Checkpoint::<f32>::load(&crafted)?;
        assert_eq!(last.optimizer_state().steps(), end);
        assert!(resumed
            .layers()
            .iter()
            .all(|l| l.weights().iter().all(|w| w.is_finite())));
        // With beta^t = 0 the bias correction is gone: the steps are plain Adam steps of
        // size about lr, so the weights moved, but not far.
        assert_ne!(param_bits(&resumed), param_bits(&ae));
    }
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn a_validation_loss_that_overflows_stops_the_run_and_is_never_checkpointed() -> TestResult {
    let dir = scratch("valid-overflow");
    let path = dir.join("run.ckpt");
    // Finite f32 values whose squared error overflows f32: the validation loss is not
    // finite in every epoch. It used to count as the best epoch each time (NaN compares
    // false), so early stopping never fired, and the checkpoints held it as `null` and
    // could not be loaded.
    let huge = valid().mapv(|v| 1e25 + v);
    let mut ae = model()?;
    let before = param_bits(&ae);
    let err = trainer()?
        .early_stopping(EarlyStopping::new(2))
        .checkpoint(&path, 1)
        .fit(&mut ae, data().view(), Some(huge.view()))
        .expect_err("the validation loss is not finite");
    assert!(
        matches!(
            err,
            Error::Diverged { epoch: 0, what: "validation loss", value, .. } if !value.is_finite()
        ),
        "{err}"
    );
    // Nothing was recorded or written, and the model holds the epoch's finite weights.
    assert!(!path.exists());
    assert_ne!(param_bits(&ae), before);
    assert!(ae
        .layers()
        .iter()
        .all(|l| l.weights().iter().all(|w| w.is_finite())));

    // From a resumed run: the checkpoint of the good epochs is left as it was.
    trainer()?.epochs(2).checkpoint(&path, 1).fit(
        &mut model()?,
        data().view(),
        Some(valid().view()),
    )?;
    let good = fs::read(&path)?;
    let mut resumed = model()?;
    let err = trainer()?
        .checkpoint(&path, 1)
        .resume(
            &mut resumed,
            Checkpoint::load(&path)?,
            data().view(),
            Some(huge.view()),
        )
        .expect_err("the validation loss is not finite");
    assert!(
        matches!(
            err,
            Error::Diverged {
                epoch: 2,
                what: "validation loss",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read(&path)?, good);
    assert_eq!(Checkpoint::<f32>::load(&path)?.epoch(), 2);
    fs::remove_dir_all(dir)?;
    Ok(())
}
