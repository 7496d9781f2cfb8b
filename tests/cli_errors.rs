//! The `autoencoder` tool's failures, run as a user runs it: exit statuses (0 success, 1
//! runtime error, 2 usage error), one-line errors that say what was wrong and where, and no
//! file written by a failed run.

mod cli_support;

use autoencoder::data::npy;
use autoencoder::Result;
use ndarray::Array2;

use cli_support::{data, failed, folder, stderr, stdout, tool};

#[test]
fn usage_errors_exit_2_on_one_line() {
    let dir = folder("usage");
    failed(&tool(&dir, &["train"]), 2, "DATA");
    failed(&tool(&dir, &["frobnicate"]), 2, "frobnicate");
    failed(
        &tool(&dir, &["train", "x.npy", "-o", "m", "--lr", "fast"]),
        2,
        "--lr",
    );
    failed(
        &tool(&dir, &["train", "x.npy", "-o", "m", "--penalty", "kl:2:1"]),
        2,
        "rho",
    );
    failed(
        &tool(
            &dir,
            &[
                "score",
                "m",
                "x.npy",
                "-o",
                "s.npy",
                "--contamination",
                "1.5",
            ],
        ),
        2,
        "fraction",
    );
    let help = tool(&dir, &["train", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Examples:"));
}

#[test]
fn runtime_errors_exit_1_on_one_line_and_write_nothing() -> Result<()> {
    let dir = folder("runtime");
    failed(
        &tool(&dir, &["train", "missing.npy", "-o", "m.model"]),
        1,
        "missing.npy",
    );
    failed(
        &tool(&dir, &["train", "x.txt", "-o", "m.model"]),
        1,
        "unknown kind of data file",
    );
    std::fs::write(dir.join("bad.npy"), b"not a numpy file").expect("write");
    failed(
        &tool(&dir, &["train", "bad.npy", "-o", "m.model"]),
        1,
        "bad.npy",
    );
    assert!(!dir.join("m.model").exists());
    let mut x = data();
    x[[7, 3]] = f64::NAN;
    npy::write(dir.join("nan.npy"), x.view())?;
    failed(
        &tool(&dir, &["train", "nan.npy", "-o", "m.model"]),
        1,
        "non-finite",
    );
    assert!(!dir.join("m.model").exists());
    failed(&tool(&dir, &["inspect", "nan.npy"]), 1, "nan.npy");
    Ok(())
}

#[test]
fn bad_inputs_say_what_and_where() -> Result<()> {
    let dir = folder("bad");
    npy::write(dir.join("x.npy"), data().view())?;
    npy::write(dir.join("narrow.npy"), Array2::<f64>::zeros((5, 7)).view())?;
    std::fs::write(dir.join("cells.csv"), "a,b\n1,2\n3,oops\n").expect("write");
    let ok = tool(
        &dir,
        &[
            "train", "x.npy", "-o", "x.model", "--hidden", "none", "--latent", "2", "--epochs", "1",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // A file of another width than the model's input.
    failed(
        &tool(&dir, &["encode", "x.model", "narrow.npy", "-o", "c.npy"]),
        1,
        "12",
    );
    assert!(!dir.join("c.npy").exists());
    // A non-numeric cell: its line and column.
    failed(
        &tool(&dir, &["train", "cells.csv", "-o", "c.model"]),
        1,
        "oops",
    );
    // An architecture that cannot be built.
    failed(
        &tool(
            &dir,
            &[
                "train",
                "x.npy",
                "-o",
                "big.model",
                "--hidden",
                "18446744073709551615",
            ],
        ),
        1,
        "memory limit",
    );
    failed(
        &tool(&dir, &["train", "x.npy", "-o", "z.model", "--latent", "0"]),
        1,
        "layer width",
    );
    // A label asked of a file without columns, an unknown label column.
    failed(
        &tool(&dir, &["train", "x.npy", "-o", "m", "--label-column", "y"]),
        1,
        "CSV",
    );
    failed(
        &tool(
            &dir,
            &["train", "cells.csv", "-o", "m", "--label-column", "nope"],
        ),
        1,
        "nope",
    );
    // An unknown flag and a missing model.
    failed(
        &tool(
            &dir,
            &["encode", "x.model", "x.npy", "-o", "c.npy", "--fast"],
        ),
        2,
        "--fast",
    );
    failed(
        &tool(&dir, &["score", "none.model", "x.npy", "-o", "s.npy"]),
        1,
        "none.model",
    );
    // Early stopping without validation rows.
    failed(
        &tool(
            &dir,
            &[
                "train",
                "x.npy",
                "-o",
                "m",
                "--valid-fraction",
                "0",
                "--early-stopping",
                "2",
            ],
        ),
        1,
        "--valid-fraction",
    );
    Ok(())
}
