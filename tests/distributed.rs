//! Data-parallel training over MPI (feature `mpi`): this test binary runs itself under
//! `mpirun` (the child test below, switched on by an environment variable) and checks
//! what the ranks print and save: 1 and 2 ranks agree to the documented bound, 2 ranks
//! give the same bits in two runs, and a rank whose reads fail makes every rank exit with
//! the same error, without hanging (each run has a time limit).
//!
//! Needs `mpirun` on the `PATH` (`apt-get install openmpi-bin libopenmpi-dev`): `.ci/run`
//! installs it on Debian. Without it each test fails, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoencoder::data::RowSource;
use autoencoder::distributed::{Communicator, Mpi};
use autoencoder::{
    Activation, Adam, Autoencoder, Error, Loss, Noise, Penalty, Result, Shuffle, Trainer,
};
use common::params;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Set in the children: the folder to save the model in.
const CHILD: &str = "AE_MPI_CHILD_DIR";
/// Set in the children: the rank whose reads fail.
const FAIL_RANK: &str = "AE_MPI_FAIL_RANK";
/// No run takes more than this (the training takes well under a second).
const LIMIT: Duration = Duration::from_secs(60);

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mpi-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// What one `mpirun` printed, and how it ended.
struct Run {
    success: bool,
    output: String,
}

/// Runs the child test on `ranks` ranks under `mpirun`, saving into `dir`, with `extra`
/// environment variables; kills it after [`LIMIT`].
fn mpirun(ranks: usize, dir: &Path, extra: &[(&str, &str)]) -> Run {
    // One mpirun at a time: Open MPI's launchers started side by side by the test harness's
    // threads sometimes fail to start ("ORTE_SUCCESS" errors), and the ranks share 2 cores.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new("mpirun");
    let open_mpi = Command::new("mpirun")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Open MPI"))
        .expect("mpirun on the PATH: apt-get install openmpi-bin libopenmpi-dev (see the README)");
    if open_mpi {
        // More ranks than cores is fine here; containers often run as root.
        cmd.arg("--oversubscribe")
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    cmd.args(["-n", &ranks.to_string()])
        .arg(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, dir)
        .env("AUTOENCODER_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("mpirun starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return Run {
                success: status.success(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            };
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "mpirun -n {ranks} still running after {LIMIT:?} (a rank hangs):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn data() -> Array2<f32> {
    Array2::from_shape_fn((300, 64), |(i, j)| ((i * 7 + j * 5) % 13) as f32 / 12.0)
}

/// The rows of `x` through the trait; reads reaching row `fail_from` fail.
struct Failing<'a> {
    x: ArrayView2<'a, f32>,
    fail_from: usize,
}

impl RowSource<f32> for Failing<'_> {
    fn n_rows(&self) -> usize {
        self.x.nrows()
    }

    fn width(&self) -> usize {
        self.x.ncols()
    }

    fn read_rows(&self, start: usize, mut out: ArrayViewMut2<'_, f32>) -> Result<()> {
        let end = start + out.nrows();
        if end > self.fail_from {
            return Err(Error::Io {
                action: "cannot read",
                path: PathBuf::from("rows-on-this-host.npy"),
                source: std::io::Error::other("simulated disk failure"),
            });
        }
        out.assign(&self.x.slice(s![start..end, ..]));
        Ok(())
    }
}

/// The program every rank runs (only under `mpirun`, when [`CHILD`] is set): a denoising
/// run with a weight penalty, batches of 32 over 300 rows (a last batch of 12), 3 epochs;
/// rank 0 saves the model as `ranks-<R>.safetensors` and prints the losses.
#[test]
fn child() -> Result<()> {
    let Some(dir) = std::env::var_os(CHILD).map(PathBuf::from) else {
        return Ok(()); // not under mpirun: nothing to do
    };
    let mpi = Arc::new(Mpi::init()?);
    let comm: Arc<dyn Communicator> = mpi.clone();
    let x = data();
    let mut ae = Autoencoder::<f32>::builder(64)
        .hidden(32, Activation::Relu)
        .latent(8, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(3))?;
    let mut trainer = Trainer::new(Adam::new(3e-3))
        .loss(Loss::BinaryCrossEntropy)
        .noise(Noise::Masking { fraction: 0.2 })
        .penalty(Penalty::l2_weights(1e-4)?)
        .epochs(3)
        .batch_size(32)
        .seed(11)
        .shuffle(Shuffle::Rows)
        .distributed(Arc::clone(&comm));
    let fail_rank: Option<usize> = std::env::var(FAIL_RANK).ok().and_then(|r| r.parse().ok());
    let result = match fail_rank {
        Some(r) if r == comm.rank() => {
            let failing = Failing {
                x: x.view(),
                fail_from: 200,
            };
            trainer.fit(&mut ae, &failing, None)
        }
        _ => trainer.fit(&mut ae, x.view(), None),
    };
    let history = match result {
        Ok(h) => h,
        Err(e) => {
            // Into a file as well: mpirun may cut a rank's output short once another rank
            // has exited with an error.
            let report = format!("rank {} stopped: {e}", comm.rank());
            std::fs::write(dir.join(format!("rank-{}.err", comm.rank())), &report)
                .expect("scratch folder");
            println!("{report}");
            return Err(e);
        }
    };
    if comm.rank() == 0 {
        ae.save(dir.join(format!("ranks-{}.safetensors", comm.size())))?;
        let losses: Vec<String> = history
            .epochs
            .iter()
            .map(|e| format!("{:e}", e.train_loss))
            .collect();
        println!("losses {}", losses.join(" "));
    }
    Ok(())
}

/// The weights and biases of the model rank 0 saved at `path`.
fn weights(path: &Path) -> Vec<f32> {
    params(&Autoencoder::<f32>::load(path).expect("rank 0 saved the model"))
}

fn losses(run: &Run) -> Vec<f64> {
    let line = run
        .output
        .lines()
        .find_map(|l| l.split_once("losses ").map(|(_, rest)| rest)) // after the harness's "test child ... "
        .unwrap_or_else(|| panic!("no losses printed:\n{}", run.output));
    line.split(' ')
        .map(|v| v.parse().expect("a number"))
        .collect()
}

/// The documented bound (README, "Training on several machines"): after 3 epochs in `f32`,
/// the weights of 2 ranks are within 1e-4 of one rank's (relative, floor 1e-2) and the
/// training losses within 1e-7 (relative); the difference is rounding only (the gradient
/// is summed in another order). Then 2 ranks twice: the same bits.
#[test]
fn two_ranks_agree_with_one_and_repeat_bit_for_bit() {
    let dir = scratch("agree");
    let one = mpirun(1, &dir, &[]);
    assert!(one.success, "1 rank failed:\n{}", one.output);
    let two = mpirun(2, &dir, &[]);
    assert!(two.success, "2 ranks failed:\n{}", two.output);
    let (w1, w2) = (
        weights(&dir.join("ranks-1.safetensors")),
        weights(&dir.join("ranks-2.safetensors")),
    );
    let diff = w1
        .iter()
        .zip(&w2)
        .map(|(a, b)| ((a - b).abs() / a.abs().max(b.abs()).max(1e-2)) as f64)
        .fold(0.0, f64::max);
    let (l1, l2) = (losses(&one), losses(&two));
    let loss_diff = l1
        .iter()
        .zip(&l2)
        .map(|(a, b)| (a - b).abs() / a.abs())
        .fold(0.0, f64::max);
    println!("1 vs 2 ranks: weights within {diff:.1e}, losses within {loss_diff:.1e}");
    assert!(diff < 1e-4, "weights of 1 and 2 ranks differ by {diff:e}");
    assert!(
        diff > 0.0,
        "2 ranks sum in another order: some rounding is expected"
    );
    assert!(loss_diff < 1e-7, "losses {l1:?} vs {l2:?}");

    let first = std::fs::read(dir.join("ranks-2.safetensors")).expect("saved");
    let again = mpirun(2, &dir, &[]);
    assert!(again.success, "2 ranks failed:\n{}", again.output);
    let second = std::fs::read(dir.join("ranks-2.safetensors")).expect("saved");
    assert!(first == second, "two runs on 2 ranks saved different files");
    assert_eq!(losses(&two), losses(&again));
}

/// Rank 1's reads fail in the first epoch: both ranks stop with the same error (the
/// lowest failing rank and its message), and mpirun returns failure, in time.
#[test]
fn a_rank_that_fails_stops_every_rank_with_the_error() {
    let dir = scratch("fail");
    let run = mpirun(2, &dir, &[(FAIL_RANK, "1")]);
    assert!(!run.success, "the run should fail:\n{}", run.output);
    for rank in 0..2 {
        let report = std::fs::read_to_string(dir.join(format!("rank-{rank}.err")))
            .unwrap_or_else(|_| panic!("rank {rank} reported no error:\n{}", run.output));
        assert!(
            report.contains("rank 1 of the distributed run failed")
                && report.contains("simulated disk failure"),
            "rank {rank}: {report}"
        );
    }
    assert!(!dir.join("ranks-2.safetensors").exists(), "nothing saved");
}
