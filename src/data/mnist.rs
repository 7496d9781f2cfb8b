//! MNIST: finding the four files, downloading them if missing (feature `download`, on by
//! default), and loading them.
//!
//! Where the files are looked for, in order ([`search_dirs`]):
//! 1. the folder in the environment variable `MNIST_DIR`, if set;
//! 2. `./data/mnist` (relative to the working directory);
//! 3. `../shared/data/mnist` (relative to the working directory): a data folder shared by
//!    several checkouts side by side, as this project's development machines and CI keep it.
//!
//! The examples ([`locate`]) and the MNIST tests search the same list. If no folder holds
//! all four files, [`locate`] downloads the missing ones into
//! `./data/mnist` from the mirrors in the environment variable `MNIST_MIRRORS` (base URLs
//! separated by spaces or commas; default [`DEFAULT_MIRRORS`]), trying each mirror in turn.
//! Every download is checked against the file's known size and SHA-256 before it is written
//! (atomically: a temporary file in the same folder, fsync, rename).
//! Each file may be stored gzipped (`NAME.gz`, as distributed) or not (`NAME`).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

use crate::data::idx;
use crate::error::{Error, Result};
use crate::float::Float;

/// Environment variable naming the folder that holds the MNIST files.
pub const DIR_VAR: &str = "MNIST_DIR";
/// Environment variable listing download mirrors (base URLs, separated by spaces or commas).
pub const MIRRORS_VAR: &str = "MNIST_MIRRORS";
/// Folder searched after `MNIST_DIR`, and where downloads go (relative to the working directory).
pub const DEFAULT_DIR: &str = "data/mnist";
/// Folder searched last (relative to the working directory): a data folder shared by
/// checkouts side by side. Nothing is downloaded there.
pub const SHARED_DIR: &str = "../shared/data/mnist";
/// Mirrors used when `MNIST_MIRRORS` is not set: the copies PyTorch's torchvision and
/// TensorFlow download from. Both serve the original gzipped files.
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// One of the four distributed MNIST files: its name, size and SHA-256 (of the `.gz` file,
/// byte for byte as published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MnistFile {
    /// File name, e.g. `"train-images-idx3-ubyte.gz"`.
    pub name: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
}

/// The four files: training images, training labels, test images, test labels.
pub const FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte.gz",
        bytes: 9_912_422,
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte.gz",
        bytes: 28_881,
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte.gz",
        bytes: 1_648_877,
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte.gz",
        bytes: 4_542,
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

/// MNIST in memory: 60,000 training and 10,000 test images of 28 x 28 pixels, as rows of
/// 784 values in `[0, 1]`, with their labels (0-9).
///
/// ```no_run
/// use autoencoder::data::{mnist, Mnist};
/// # fn main() -> autoencoder::Result<()> {
/// let data = Mnist::<f32>::load(mnist::locate()?)?;
/// assert_eq!(data.train_images.dim(), (60_000, 784));
/// assert_eq!(data.test_labels[0], 7);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Mnist<T> {
    /// `(60000, 784)`, pixels in `[0, 1]`.
    pub train_images: Array2<T>,
    /// `(60000)`, digits 0-9.
    pub train_labels: Array1<u8>,
    /// `(10000, 784)`, pixels in `[0, 1]`.
    pub test_images: Array2<T>,
    /// `(10000)`, digits 0-9.
    pub test_labels: Array1<u8>,
}

impl<T: Float> Mnist<T> {
    /// Loads the four files from `dir` (each `NAME.gz` or the uncompressed `NAME`).
    ///
    /// # Errors
    /// [`Error::MissingData`] if a file is in neither form; [`Error::Io`] or
    /// [`Error::Format`] from [`idx::read_images`] / [`idx::read_labels`]; [`Error::Format`]
    /// if a label file's count differs from its image file's.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let missing = missing_files(dir);
        if !missing.is_empty() {
            return Err(not_found(&[dir.to_path_buf()], &missing, None));
        }
        let path = |i: usize| existing_path(dir, &FILES[i]).expect("checked above");
        let (train_images, train_labels) = load_pair::<T>(&path(0), &path(1))?;
        let (test_images, test_labels) = load_pair::<T>(&path(2), &path(3))?;
        Ok(Mnist {
            train_images,
            train_labels,
            test_images,
            test_labels,
        })
    }
}

fn load_pair<T: Float>(images: &Path, labels: &Path) -> Result<(Array2<T>, Array1<u8>)> {
    idx::read_set(images, labels).map_err(|e| match e {
        Error::Format { path, reason } if reason.contains("do not belong together") => {
            Error::Format {
                path,
                reason: format!("{reason}; download them again"),
            }
        }
        other => other,
    })
}

/// Where `file` is in `dir`: `NAME.gz` or the uncompressed `NAME`, if either exists.
///
/// ```
/// use autoencoder::data::mnist::{existing_path, FILES};
/// assert_eq!(existing_path(std::path::Path::new("/no/such/folder"), &FILES[0]), None);
/// ```
pub fn existing_path(dir: &Path, file: &MnistFile) -> Option<PathBuf> {
    let gz = dir.join(file.name);
    let plain = dir.join(file.name.trim_end_matches(".gz"));
    [gz, plain].into_iter().find(|p| p.is_file())
}

/// The files of [`FILES`] that `dir` holds in neither form.
///
/// ```
/// use autoencoder::data::mnist::{missing_files, FILES};
/// assert_eq!(missing_files(std::path::Path::new("/no/such/folder")), FILES.to_vec());
/// ```
pub fn missing_files(dir: &Path) -> Vec<MnistFile> {
    FILES
        .iter()
        .filter(|f| existing_path(dir, f).is_none())
        .copied()
        .collect()
}

/// The folders searched, in order: `$MNIST_DIR` if set (and not empty), then
/// `./data/mnist` ([`DEFAULT_DIR`]), then `../shared/data/mnist` ([`SHARED_DIR`]), the last
/// two relative to the working directory.
///
/// ```
/// use std::path::Path;
/// let dirs = autoencoder::data::mnist::search_dirs();
/// let n = dirs.len();
/// assert_eq!(dirs[n - 2], Path::new("data/mnist"));
/// assert_eq!(dirs[n - 1], Path::new("../shared/data/mnist"));
/// ```
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from(DEFAULT_DIR));
    dirs.push(PathBuf::from(SHARED_DIR));
    dirs
}

/// The download mirrors: `$MNIST_MIRRORS` split at spaces and commas if set and non-empty,
/// else [`DEFAULT_MIRRORS`]. Each ends with `/`.
///
/// ```
/// let mirrors = autoencoder::data::mnist::mirrors();
/// assert!(!mirrors.is_empty() && mirrors.iter().all(|m| m.ends_with('/')));
/// ```
pub fn mirrors() -> Vec<String> {
    let from_env: Vec<String> = std::env::var(MIRRORS_VAR)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let list = if from_env.is_empty() {
        DEFAULT_MIRRORS.iter().map(|s| s.to_string()).collect()
    } else {
        from_env
    };
    list.into_iter()
        .map(|m| if m.ends_with('/') { m } else { m + "/" })
        .collect()
}

/// The first folder of [`search_dirs`] that holds all four files; if none does, downloads
/// the missing files into `./data/mnist` from [`mirrors`] (with the `download` feature).
///
/// # Errors
/// [`Error::MissingData`] if the files are not found and cannot be downloaded (or the
/// `download` feature is off): the message lists the files, where to put them and where
/// to get them.
///
/// ```no_run
/// use autoencoder::data::{mnist, Mnist};
/// # fn main() -> autoencoder::Result<()> {
/// let dir = mnist::locate()?; // e.g. "data/mnist"
/// let data = Mnist::<f32>::load(&dir)?;
/// # Ok(()) }
/// ```
pub fn locate() -> Result<PathBuf> {
    let dirs = search_dirs();
    if let Some(dir) = dirs.iter().find(|d| missing_files(d).is_empty()) {
        return Ok(dir.clone());
    }
    let target = PathBuf::from(DEFAULT_DIR);
    let missing = missing_files(&target);
    #[cfg(feature = "download")]
    {
        match download(&target, &mirrors()) {
            Ok(()) => Ok(target),
            Err(Error::MissingData { what, .. }) => Err(not_found(&dirs, &missing, Some(what))),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(feature = "download"))]
    Err(not_found(
        &dirs,
        &missing,
        Some("the `download` feature is off (build with it to fetch the files)".into()),
    ))
}

/// Downloads each file of [`FILES`] missing from `dir` into `dir` (created if needed),
/// trying the `mirrors` (base URLs) in order. A download is kept only if its size and
/// SHA-256 match [`FILES`]; it is then written atomically (temporary file in `dir`, fsync,
/// rename), so `dir` never holds a partial or corrupt file.
///
/// # Errors
/// [`Error::MissingData`] if every mirror fails for some file (the message says why for
/// each mirror); files fetched before that stay. [`Error::Io`] if `dir` cannot be written.
///
/// ```no_run
/// use autoencoder::data::mnist;
/// # fn main() -> autoencoder::Result<()> {
/// let dir = std::path::Path::new("data/mnist");
/// mnist::download(dir, &["https://ossci-datasets.s3.amazonaws.com/mnist/".to_string()])?;
/// assert!(mnist::missing_files(dir).is_empty());
/// # Ok(()) }
/// ```
#[cfg(feature = "download")]
pub fn download(dir: &Path, mirrors: &[String]) -> Result<()> {
    use std::time::Duration;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    for file in missing_files(dir) {
        let mut failures = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
            match fetch(&agent, &url, &file) {
                Ok(bytes) => {
                    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                        action: "cannot create folder",
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    crate::fs::write_atomic(&dir.join(file.name), |f| {
                        std::io::Write::write_all(f, &bytes)
                    })?;
                    done = true;
                    break;
                }
                Err(reason) => failures.push(format!("{url}: {reason}")),
            }
        }
        if mirrors.is_empty() {
            failures.push("no mirror given".to_string());
        }
        if !done {
            return Err(Error::MissingData {
                what: format!("{}: {}", file.name, failures.join("; ")),
                help: String::new(),
            });
        }
    }
    Ok(())
}

/// Fetches `url` and checks its size and SHA-256 against `file`.
#[cfg(feature = "download")]
fn fetch(agent: &ureq::Agent, url: &str, file: &MnistFile) -> std::result::Result<Vec<u8>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    eprintln!("downloading {url} ...");
    let bytes = response
        .body_mut()
        .with_config()
        .limit(file.bytes + 1)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 != file.bytes {
        return Err(format!(
            "got {} bytes, expected {}",
            bytes.len(),
            file.bytes
        ));
    }
    let sha = sha256_hex(&bytes);
    if sha != file.sha256 {
        return Err(format!(
            "SHA-256 {sha} does not match the known {}; file rejected",
            file.sha256
        ));
    }
    Ok(bytes)
}

/// SHA-256 of `bytes`, lowercase hex.
///
/// ```
/// assert_eq!(
///     autoencoder::data::mnist::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn list_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The one message for "MNIST is not here": which files, where to put them, where to get them.
fn not_found(dirs: &[PathBuf], missing: &[MnistFile], why: Option<String>) -> Error {
    let missing = if missing.len() == FILES.len() {
        "all 4 missing".to_string()
    } else {
        let names: Vec<&str> = missing.iter().map(|f| f.name).collect();
        format!("missing {}", names.join(", "))
    };
    let what = format!(
        "MNIST not found: this needs the files {} (gzipped or not); looked in {} ({missing}).",
        FILES.map(|f| f.name).join(", "),
        list_dirs(dirs),
    );
    let mut help = format!(
        "Put them in ./{DEFAULT_DIR} (relative to where you run this) or set {DIR_VAR} to their folder. \
         Get them from {} (or set {MIRRORS_VAR} to other mirrors; their SHA-256 are in src/data/mnist.rs).",
        DEFAULT_MIRRORS.join(" or ")
    );
    if let Some(why) = why {
        help.push_str(&format!("\nAutomatic download failed: {why}"));
    }
    Error::MissingData { what, help }
}
