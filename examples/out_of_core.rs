//! Training from a file larger than memory: speed and memory against training in memory.
//!
//! ```text
//! cargo run --release --example out_of_core -- [--gb X] [--path FILE] [--memory-rows N]
//!     [--block-rows N] [--buffer-blocks N] [--threads N] [--seeds N] [--json]
//! ```
//!
//! 1. Writes a synthetic `.npy` file of `--gb` GiB (default: the machine's memory plus
//!    1 GiB) of `(n, 784)` `f32` rows unless a file of that shape is already there: a
//!    mixture of 8 clusters, each a random 8-dimensional subspace around its own centre,
//!    plus uniform noise, clipped to `[0, 1]`, so the autoencoder has something to learn.
//! 2. Trains W-shallow (784-32-784, ReLU code, sigmoid output, Adam lr 1e-3 eps 1e-7, batch
//!    256, binary cross-entropy; `../shared/PERF.md`) for one epoch over the file, read by
//!    [`autoencoder::data::NpyRows`] under the block shuffle, on a read-ahead thread.
//! 3. Trains a fresh W-shallow for the same number of steps on the first `--memory-rows`
//!    rows held in memory (row shuffle), and prints both rates, their ratio, the peak
//!    resident memory of the out-of-core epoch (`VmHWM`, read before the in-memory part
//!    allocates its copy), the disk read rate (`/proc/self/io`), and how long the step
//!    waited for rows: when that is a large part of the epoch, the run was disk-bound, and
//!    the example says so and by how much.
//! 4. With `--seeds N`, trains W-shallow again on the in-memory rows for the same number of
//!    steps, once under the row shuffle and once under the block shuffle, for each of the
//!    trainer seeds `1..=N`, and prints the held-out MSE of every run: one run of each
//!    shuffle says little, because runs land on a few distinct levels of error depending on
//!    the seed (how many clusters the 32 code units end up sharing).
//!
//! The file stays for the next run; delete it when done.

#[path = "../src/bin/autoencoder/args.rs"]
mod args;
#[path = "support/cli.rs"]
mod cli;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use autoencoder::data::{NpyRows, RowSource};
use autoencoder::{Activation, Adam, Autoencoder, Error, History, Init, Loss, Shuffle, Trainer};
use clap::Parser;
use ndarray::{s, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Train W-shallow for one epoch from a .npy file larger than memory, then for as many
/// steps in memory; print both rates, peak resident memory and the disk read rate.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "out_of_core",
    override_usage = "cargo run --release --example out_of_core -- [OPTIONS]",
    args_override_self = true,
    allow_negative_numbers = true
)]
struct Args {
    /// Size of the data file in GiB [default: the machine's memory plus 1 GiB]
    #[arg(long, value_name = "X", value_parser = positive)]
    gb: Option<f64>,
    /// The data file: written unless a file of the asked shape is there, and kept
    #[arg(long, value_name = "FILE", default_value = "out_of_core.npy")]
    path: PathBuf,
    /// Rows of the file held in memory for the comparison run (from its start)
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = at_least_one)]
    memory_rows: usize,
    /// Rows per block of the block shuffle
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = at_least_one)]
    block_rows: usize,
    /// Blocks per shuffling buffer
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = at_least_one)]
    buffer_blocks: usize,
    /// Threads for the matrix products, 1 to 4 [default: one per core, at most 4]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    threads: Option<usize>,
    /// Also compare the row and the block shuffle in memory over trainer seeds 1..=N
    #[arg(long, value_name = "N", default_value_t = 0)]
    seeds: u64,
    /// Print one JSON line with every figure instead of the report
    #[arg(long)]
    json: bool,
}

/// A whole number >= 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|&v: &usize| v >= 1)
        .ok_or(format!("`{s}` is not a whole number >= 1"))
}

/// A finite number > 0.
fn positive(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or(format!("`{s}` is not a number > 0"))
}

const WIDTH: usize = 784;
const BATCH: usize = 256;
const GIB: f64 = (1u64 << 30) as f64;

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(args: &Args) -> autoencoder::Result<()> {
    if let Some(n) = args.threads {
        autoencoder::set_threads(n)?;
    }
    let memory = meminfo_total().unwrap_or(0);
    let gb = args.gb.unwrap_or((memory as f64 / GIB).ceil() + 1.0);
    let rows = ((gb * GIB) / (WIDTH * 4) as f64).floor() as usize;
    if rows == 0 {
        return Err(Error::InvalidConfig(format!(
            "--gb {gb} is less than one row"
        )));
    }
    let wrote = ensure_file(&args.path, rows, !args.json)?;
    let file_bytes = std::fs::metadata(&args.path)
        .map_err(|e| io("cannot read", &args.path, e))?
        .len();

    // Out of core: one epoch from the file.
    let source = NpyRows::<f32>::open(&args.path)?;
    let shuffle = Shuffle::Blocks {
        block_rows: args.block_rows,
        buffer_blocks: args.buffer_blocks,
    };
    let read_before = proc_io_read_bytes();
    let mut ae = w_shallow()?;
    let history = trainer(1).shuffle(shuffle).fit(&mut ae, &source, None)?;
    let read_bytes = proc_io_read_bytes().zip(read_before).map(|(a, b)| a - b);
    let peak_rss = vm_hwm_bytes();
    let epoch = history
        .last()
        .cloned()
        .ok_or(Error::InvalidConfig("no epoch ran".into()))?;
    let ooc_rate = epoch.samples_per_second;

    // In memory: the same number of steps on the file's first rows.
    let m = args.memory_rows.min(rows);
    let mut x = Array2::<f32>::zeros((m, WIDTH));
    source.read_rows(0, x.view_mut())?;
    let steps = rows.div_ceil(BATCH);
    let epochs = steps.div_ceil(m.div_ceil(BATCH)).max(1);
    let mut ae_memory = w_shallow()?;
    let memory_history = trainer(epochs).fit(&mut ae_memory, x.view(), None)?;
    let (mem_samples, mem_seconds) = totals(&memory_history, m);
    let mem_rate = mem_samples / mem_seconds;

    let ratio = ooc_rate / mem_rate;
    let read_rate = read_bytes.map(|b| b as f64 / epoch.seconds / 1e6);
    let needed_rate = mem_rate * (WIDTH * 4) as f64 / 1e6; // MB/s that compute alone consumes
    let wait_share = epoch.read_wait_seconds / epoch.seconds;
    // The rows the epoch read, in MB/s, and whether the disk delivered most of them (not the
    // page cache): only then is a long wait for rows the disk's doing.
    let rows_rate = rows as f64 * (WIDTH * 4) as f64 / epoch.seconds / 1e6;
    let from_disk = read_rate.is_none_or(|r| r >= 0.5 * rows_rate);
    let disk_bound = wait_share > 0.1 && from_disk;
    let read_bound = wait_share > 0.1 && !from_disk;
    // Reconstruction error of both models on the file's last rows (the in-memory model
    // never saw them).
    let tail = 16_384.min(rows);
    let mut held = Array2::<f32>::zeros((tail, WIDTH));
    source.read_rows(rows - tail, held.view_mut())?;
    let ooc_loss = ae.evaluate(held.view(), held.view(), Loss::MeanSquaredError)?;
    let mem_loss = ae_memory.evaluate(held.view(), held.view(), Loss::MeanSquaredError)?;
    // The MSE of predicting each column's mean.
    let baseline = f64::from(
        held.var_axis(ndarray::Axis(0), 0.0)
            .mean()
            .unwrap_or(f32::NAN),
    );

    let seeded = shuffle_seeds(args.seeds, x.view(), held.view(), epochs, shuffle)?;

    let peak_mb = peak_rss.map(|b| b as f64 / 1e6);
    if args.json {
        let list = |v: Vec<String>| format!("[{}]", v.join(","));
        let seeds_json = list(
            seeded
                .iter()
                .map(|(seed, rows, blocks)| {
                    format!("{{\"seed\":{seed},\"rows_mse\":{rows:.6},\"blocks_mse\":{blocks:.6}}}")
                })
                .collect(),
        );
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.1}"));
        println!(
            "{{\"file_gib\":{:.2},\"rows\":{rows},\"machine_memory_gib\":{:.2},\
             \"samples_per_s\":{ooc_rate:.1},\"in_memory_samples_per_s\":{mem_rate:.1},\
             \"ratio\":{ratio:.4},\"peak_rss_mb\":{},\"read_mb_per_s\":{},\
             \"in_memory_consumes_mb_per_s\":{needed_rate:.1},\"epoch_seconds\":{:.2},\
             \"read_wait_seconds\":{:.2},\"disk_bound\":{disk_bound},\
             \"in_memory_rows\":{m},\"in_memory_epochs\":{epochs},\
             \"held_out_mse\":{ooc_loss:.6},\"in_memory_held_out_mse\":{mem_loss:.6},\
             \"held_out_variance\":{baseline:.6},\
             \"block_rows\":{},\"buffer_blocks\":{},\"threads\":{},\"seeds\":{seeds_json}}}",
            file_bytes as f64 / GIB,
            memory as f64 / GIB,
            opt(peak_mb),
            opt(read_rate),
            epoch.seconds,
            epoch.read_wait_seconds,
            args.block_rows,
            args.buffer_blocks,
            autoencoder::threads()
        );
        return Ok(());
    }
    println!(
        "file {} ({:.2} GiB, {rows} x {WIDTH} f32; {}), machine memory {:.2} GiB",
        args.path.display(),
        file_bytes as f64 / GIB,
        if wrote { "written now" } else { "reused" },
        memory as f64 / GIB
    );
    println!(
        "out of core: 1 epoch in {:.1} s, {ooc_rate:.0} samples/s, peak resident memory {} \
         (VmHWM), disk read {}",
        epoch.seconds,
        peak_mb.map_or("unknown".into(), |v| format!("{v:.0} MB")),
        read_rate.map_or("unknown".into(), |v| format!("{v:.0} MB/s")),
    );
    println!(
        "in memory:   {m} rows x {epochs} epochs ({} steps) in {mem_seconds:.1} s, \
         {mem_rate:.0} samples/s",
        epochs * m.div_ceil(BATCH)
    );
    println!(
        "ratio {:.0}% of in-memory samples/s; MSE on the last {tail} rows {ooc_loss:.5} (out of \
         core) vs {mem_loss:.5} (in memory), their variance {baseline:.5}",
        100.0 * ratio
    );
    if disk_bound {
        println!(
            "disk-bound: the step waited {:.1} s of {:.1} s ({:.0}%) for rows; training in \
             memory consumes {needed_rate:.0} MB/s, the disk delivered {}",
            epoch.read_wait_seconds,
            epoch.seconds,
            100.0 * wait_share,
            read_rate.map_or("less".into(), |v| format!("{v:.0} MB/s")),
        );
    } else if read_bound {
        println!(
            "not disk-bound: the step waited {:.1} s of {:.1} s ({:.0}%) for rows, but the \
             disk delivered {} of the {rows_rate:.0} MB/s read (the rest came from the page \
             cache): the read-ahead thread's copying, not the disk, was the limit",
            epoch.read_wait_seconds,
            epoch.seconds,
            100.0 * wait_share,
            read_rate.map_or("?".into(), |v| format!("{v:.0} MB/s")),
        );
    } else {
        println!(
            "not disk-bound: the step waited {:.1} s of {:.1} s for rows",
            epoch.read_wait_seconds, epoch.seconds
        );
    }
    if !seeded.is_empty() {
        println!(
            "held-out MSE by trainer seed, {m} rows in memory, {epochs} epochs, row shuffle vs \
             block shuffle:"
        );
        for (seed, rows, blocks) in &seeded {
            println!("  seed {seed}: {rows:.5} vs {blocks:.5}");
        }
        let mean = |f: fn(&(u64, f64, f64)) -> f64| {
            seeded.iter().map(f).sum::<f64>() / seeded.len() as f64
        };
        println!("  mean:   {:.5} vs {:.5}", mean(|s| s.1), mean(|s| s.2));
    }
    println!(
        "the file stays for the next run: rm {}",
        args.path.display()
    );
    Ok(())
}

/// For each trainer seed `1..=n`: the held-out MSE after `epochs` epochs on `x` under the
/// row shuffle and under `blocks`, each from the same initial weights.
fn shuffle_seeds(
    n: u64,
    x: ndarray::ArrayView2<'_, f32>,
    held: ndarray::ArrayView2<'_, f32>,
    epochs: usize,
    blocks: Shuffle,
) -> autoencoder::Result<Vec<(u64, f64, f64)>> {
    let mse = |seed: u64, shuffle: Shuffle| -> autoencoder::Result<f64> {
        let mut ae = w_shallow()?;
        trainer(epochs)
            .seed(seed)
            .shuffle(shuffle)
            .fit(&mut ae, x, None)?;
        ae.evaluate(held, held, Loss::MeanSquaredError)
    };
    (1..=n)
        .map(|seed| Ok((seed, mse(seed, Shuffle::Rows)?, mse(seed, blocks)?)))
        .collect()
}

fn w_shallow() -> autoencoder::Result<Autoencoder<f32>> {
    Autoencoder::<f32>::builder(WIDTH)
        .latent(32, Activation::Relu)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut ChaCha8Rng::seed_from_u64(42))
}

fn trainer(epochs: usize) -> Trainer<Adam<f32>> {
    Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(epochs)
        .batch_size(BATCH)
        .seed(7)
}

/// Samples and seconds over all epochs of `history` on `rows` rows.
fn totals(history: &History, rows: usize) -> (f64, f64) {
    let seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    ((rows * history.epochs.len()) as f64, seconds)
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the synthetic data set of `rows` rows to `path` (through a `.partial` file,
/// renamed when complete) unless a `(rows, 784)` `f32` file is there. Returns whether it
/// wrote.
fn ensure_file(path: &Path, rows: usize, talk: bool) -> autoencoder::Result<bool> {
    if let Ok(existing) = NpyRows::<f32>::open(path) {
        if (existing.n_rows(), existing.width()) == (rows, WIDTH) {
            return Ok(false);
        }
    }
    let partial = path.with_extension("npy.partial");
    let start = Instant::now();
    let file = File::create(&partial).map_err(|e| io("cannot create", &partial, e))?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    out.write_all(&npy_header(rows))
        .map_err(|e| io("cannot write", &partial, e))?;
    let model = Mixture::new();
    let chunk = 16_384;
    let mut block = Array2::<f32>::zeros((chunk, WIDTH));
    let mut bytes = Vec::with_capacity(chunk * WIDTH * 4);
    for first in (0..rows).step_by(chunk) {
        let n = chunk.min(rows - first);
        let mut part = block.slice_mut(s![..n, ..]);
        model.fill(first, part.view_mut());
        bytes.clear();
        for v in part.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&bytes)
            .map_err(|e| io("cannot write", &partial, e))?;
        if talk && (first / chunk) % 128 == 0 {
            eprint!(
                "\rwriting {}: {:.1} of {:.1} GiB",
                path.display(),
                (first * WIDTH * 4) as f64 / GIB,
                (rows * WIDTH * 4) as f64 / GIB
            );
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| io("cannot write", &partial, e.into_error()))?;
    file.sync_all()
        .map_err(|e| io("cannot sync", &partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| io("cannot rename", &partial, e))?;
    if talk {
        let gib = (rows * WIDTH * 4) as f64 / GIB;
        eprintln!(
            "\rwrote {}: {gib:.1} GiB in {:.0} s ({:.0} MB/s)",
            path.display(),
            start.elapsed().as_secs_f64(),
            gib * GIB / 1e6 / start.elapsed().as_secs_f64()
        );
    }
    Ok(true)
}

/// The `.npy` 1.0 header of a C-order `(rows, 784)` little-endian `f32` array, padded with
/// spaces to a multiple of 64 bytes as NumPy pads it.
fn npy_header(rows: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {WIDTH}), }}");
    let unpadded = 10 + dict.len() + 1;
    let len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend_from_slice(&(len as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(10 + len - 1, b' ');
    header.push(b'\n');
    header
}

/// 8 clusters, each a centre in `[0.2, 0.8]^784` and an 8-dimensional basis; a row is
/// `centre + codes basis + noise`, clipped to `[0, 1]`, from a generator seeded by the row's
/// group of 256, so the file's content does not depend on how it is written.
struct Mixture {
    centres: Array2<f32>,    // (8, 784)
    bases: Vec<Array2<f32>>, // 8 x (8, 784)
}

impl Mixture {
    fn new() -> Mixture {
        let mut rng = ChaCha8Rng::seed_from_u64(2026);
        let centres = Array2::from_shape_fn((8, WIDTH), |_| rng.random_range(0.2..0.8f32));
        let bases = (0..8)
            .map(|_| Array2::from_shape_fn((8, WIDTH), |_| rng.random_range(-0.15..0.15f32)))
            .collect();
        Mixture { centres, bases }
    }

    /// Rows `first ..` of the data set into `out` (`first` a multiple of 256), on two
    /// threads: each group of 256 rows draws from a generator seeded by its first row.
    fn fill(&self, first: usize, mut out: ndarray::ArrayViewMut2<'_, f32>) {
        let n = out.nrows();
        let half = (n.div_ceil(512) * 256).min(n);
        let (a, b) = out.view_mut().split_at(ndarray::Axis(0), half);
        std::thread::scope(|scope| {
            scope.spawn(|| self.fill_groups(first, a));
            self.fill_groups(first + half, b);
        });
    }

    fn fill_groups(&self, first: usize, mut out: ndarray::ArrayViewMut2<'_, f32>) {
        for (g, mut group) in out.axis_chunks_iter_mut(ndarray::Axis(0), 256).enumerate() {
            let mut rng = SplitMix((first + g * 256) as u64);
            for mut row in group.rows_mut() {
                let k = (rng.next() >> 61) as usize; // 0..8
                let codes: [f32; 8] = std::array::from_fn(|_| rng.uniform() * 2.0 - 1.0);
                row.assign(&self.centres.row(k));
                for (c, b) in codes.iter().zip(self.bases[k].rows()) {
                    row.scaled_add(*c, &b);
                }
                row.mapv_inplace(|v| (v + 0.1 * rng.uniform() - 0.05).clamp(0.0, 1.0));
            }
        }
    }
}

/// SplitMix64: a small, fast generator, good enough for synthetic data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes (Linux).
fn meminfo_total() -> Option<u64> {
    proc_field("/proc/meminfo", "MemTotal:").map(|kb| kb * 1024)
}

/// Peak resident memory, `VmHWM` of `/proc/self/status`, in bytes (Linux).
fn vm_hwm_bytes() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:").map(|kb| kb * 1024)
}

/// Bytes this process caused to be read from storage (`read_bytes` of `/proc/self/io`).
fn proc_io_read_bytes() -> Option<u64> {
    proc_field("/proc/self/io", "read_bytes:")
}

/// The first number after `key` in the file at `path`.
fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    #[test]
    fn the_flag_definitions_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse() -> Result<(), String> {
        let a: Args = cli::parsed("")?;
        assert_eq!(
            (a.gb, a.memory_rows, a.block_rows, a.json),
            (None, 65_536, 1024, false)
        );
        let a: Args = cli::parsed("--gb 0.5 --path x.npy --buffer-blocks 8 --seeds 3 --json")?;
        assert_eq!(
            (a.gb, a.buffer_blocks, a.seeds, a.json),
            (Some(0.5), 8, 3, true)
        );
        for bad in [
            "--gb 0",
            "--gb -1",
            "--gb nan",
            "--block-rows 0",
            "--memory-rows 0",
        ] {
            assert_eq!(
                cli::refused::<Args>(bad),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
        assert_eq!(cli::refused::<Args>("--bogus"), ErrorKind::UnknownArgument);
        Ok(())
    }

    #[test]
    fn every_flag_the_readme_mentions_parses() {
        let failures = cli::readme::check::<Args>("out_of_core");
        assert!(
            failures.is_empty(),
            "README flags the parser refuses:\n{}",
            failures.join("\n")
        );
    }

    /// The header is what NumPy writes and the crate's reader accepts.
    #[test]
    fn the_header_reads_back() -> autoencoder::Result<()> {
        let dir = std::env::temp_dir().join(format!("ooc-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let path = dir.join("h.npy");
        let mut bytes = npy_header(3);
        assert_eq!(bytes.len() % 64, 0);
        bytes.extend(std::iter::repeat_n(0u8, 3 * WIDTH * 4));
        std::fs::write(&path, bytes).map_err(|e| io("cannot write", &path, e))?;
        let rows = NpyRows::<f32>::open(&path)?;
        assert_eq!((rows.n_rows(), rows.width()), (3, WIDTH));
        std::fs::remove_dir_all(&dir).map_err(|e| io("cannot remove", &dir, e))?;
        Ok(())
    }
}
