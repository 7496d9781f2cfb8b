//! The `autoencoder` tool, run as a user runs it: the files it writes and a whole session
//! (train, inspect, encode, decode, reconstruct, score, evaluate) on a small data set, in
//! `.npy` and CSV. Exit statuses and errors are in `cli_errors.rs`.

mod cli_support;

use autoencoder::data::npy;
use autoencoder::Result;
use ndarray::{Array1, Array2, Ix2};

use cli_support::{data, failed, folder, stderr, stdout, tool};

#[test]
fn a_whole_session() -> Result<()> {
    let dir = folder("session");
    let x = data();
    npy::write(dir.join("x.npy"), x.view())?;
    let train = tool(
        &dir,
        &[
            "train", "x.npy", "-o", "x.model", "--hidden", "8", "--latent", "3", "--epochs", "30",
            "--lr", "1e-2", "--json", "--scale", "none",
        ],
    );
    assert_eq!(train.status.code(), Some(0), "{}", stderr(&train));
    let line = stdout(&train);
    let report: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    for key in ["train_loss", "valid_loss", "epochs", "seconds"] {
        assert!(report.get(key).is_some(), "{key} missing from {line}");
    }
    assert_eq!(report["epochs"], 30);

    let inspect = tool(&dir, &["inspect", "x.model"]);
    assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
    assert!(
        stdout(&inspect).contains("12-8-3-8-12"),
        "{}",
        stdout(&inspect)
    );

    for (cmd, input, out, width) in [
        ("encode", "x.npy", "codes.npy", 3),
        ("decode", "codes.npy", "decoded.npy", 12),
        ("reconstruct", "x.npy", "recon.npy", 12),
    ] {
        let o = tool(&dir, &[cmd, "x.model", input, "-o", out]);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stderr(&o));
        let y: Array2<f64> = npy::read::<f64, Ix2>(dir.join(out))?;
        assert_eq!(y.dim(), (400, width), "{cmd}");
    }
    // Decoding the codes is reconstructing.
    let decoded: Array2<f64> = npy::read::<f64, Ix2>(dir.join("decoded.npy"))?;
    let recon: Array2<f64> = npy::read::<f64, Ix2>(dir.join("recon.npy"))?;
    assert_eq!(decoded, recon);

    let score = tool(
        &dir,
        &[
            "score",
            "x.model",
            "x.npy",
            "-o",
            "scores.npy",
            "--contamination",
            "0.05",
        ],
    );
    assert_eq!(score.status.code(), Some(0), "{}", stderr(&score));
    let scores: Array2<f64> = npy::read::<f64, Ix2>(dir.join("scores.npy"))?;
    assert_eq!(scores.dim(), (400, 2));
    assert_eq!(scores.column(1).sum(), 20.0, "5% of 400 rows flagged");
    // Each score is the row's mean squared reconstruction error (computed in the model's
    // f32, so to f32's rounding).
    let by_hand: Array1<f64> = (&recon - &x)
        .mapv(|d| d * d)
        .mean_axis(ndarray::Axis(1))
        .expect("rows");
    for (a, b) in scores.column(0).iter().zip(&by_hand) {
        assert!((a - b).abs() <= 1e-6 * b.max(1.0), "{a} vs {b}");
    }
    // The flagged rows are the highest scores.
    let cut = scores
        .rows()
        .into_iter()
        .filter(|r| r[1] == 1.0)
        .map(|r| r[0])
        .fold(f64::INFINITY, f64::min);
    assert!(scores.rows().into_iter().all(|r| r[1] == 1.0 || r[0] < cut));

    let evaluate = tool(&dir, &["evaluate", "x.model", "x.npy", "--json"]);
    assert_eq!(evaluate.status.code(), Some(0), "{}", stderr(&evaluate));
    let e: serde_json::Value = serde_json::from_str(stdout(&evaluate).trim()).expect("JSON");
    assert_eq!(e["rows"], 400);
    assert_eq!(e["pca_components"], 3);
    Ok(())
}

#[cfg(feature = "viz")]
#[test]
fn pictures_of_a_model_and_of_a_checkpoint() -> Result<()> {
    let dir = folder("pictures");
    let x = Array2::from_shape_fn((64, 36), |(i, j)| ((i * 7 + j * 3) % 11) as f64 / 10.0);
    npy::write(dir.join("img.npy"), x.view())?;
    let train = tool(
        &dir,
        &[
            "train",
            "img.npy",
            "-o",
            "img.model",
            "--hidden",
            "none",
            "--latent",
            "4",
            "--epochs",
            "2",
            "--checkpoint",
            "run.ckpt",
        ],
    );
    assert_eq!(train.status.code(), Some(0), "{}", stderr(&train));
    for (file, out, expected) in [
        (
            "img.model",
            "a",
            &["reconstructions.png", "features.png"][..],
        ),
        (
            "run.ckpt",
            "b",
            &["reconstructions.png", "features.png", "loss.png"][..],
        ),
    ] {
        let o = tool(&dir, &["pictures", file, "img.npy", "--out", out]);
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
        for png in expected {
            let bytes = std::fs::read(dir.join(out).join(png)).expect("picture written");
            assert!(bytes.starts_with(b"\x89PNG"), "{out}/{png}");
        }
    }
    // Rows that are not square images need a size.
    npy::write(dir.join("wide.npy"), Array2::<f64>::zeros((4, 10)).view())?;
    assert_eq!(
        tool(
            &dir,
            &[
                "train",
                "wide.npy",
                "-o",
                "wide.model",
                "--hidden",
                "none",
                "--latent",
                "2",
                "--epochs",
                "1"
            ]
        )
        .status
        .code(),
        Some(0)
    );
    failed(
        &tool(&dir, &["pictures", "wide.model", "wide.npy", "--out", "c"]),
        1,
        "--image HxW",
    );
    Ok(())
}

#[test]
fn a_resumed_run_saves_the_same_model_as_an_uninterrupted_one() -> Result<()> {
    let dir = folder("resume");
    npy::write(dir.join("x.npy"), data().view())?;
    let common = [
        "train",
        "x.npy",
        "--hidden",
        "6",
        "--latent",
        "2",
        "--noise",
        "gaussian:0.1",
        "--seed",
        "4",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = common.iter().chain(extra).copied().collect();
        let o = tool(&dir, &args);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
    };
    run(&["--epochs", "4", "-o", "whole.model"]);
    run(&[
        "--epochs",
        "2",
        "--checkpoint",
        "run.ckpt",
        "-o",
        "half.model",
    ]);
    run(&[
        "--epochs",
        "4",
        "--resume",
        "run.ckpt",
        "-o",
        "resumed.model",
    ]);
    let whole = std::fs::read(dir.join("whole.model")).expect("model");
    let resumed = std::fs::read(dir.join("resumed.model")).expect("model");
    assert_eq!(whole, resumed, "bit for bit");
    assert_ne!(whole, std::fs::read(dir.join("half.model")).expect("model"));
    Ok(())
}

#[test]
fn the_scaler_travels_with_the_model() -> Result<()> {
    // Data far from [0, 1]: the tool standardizes them, saves the scaler in the model, and
    // every later command takes and gives raw data.
    let dir = folder("scaler");
    let x = data();
    npy::write(dir.join("x.npy"), x.view())?;
    let train = tool(
        &dir,
        &[
            "train", "x.npy", "-o", "x.model", "--hidden", "8", "--latent", "3", "--epochs", "40",
            "--lr", "1e-2",
        ],
    );
    assert_eq!(train.status.code(), Some(0), "{}", stderr(&train));
    assert!(
        stderr(&train).contains("scale standard"),
        "{}",
        stderr(&train)
    );
    let inspect = tool(&dir, &["inspect", "x.model"]);
    assert!(
        stdout(&inspect).contains("scaler: Standard"),
        "{}",
        stdout(&inspect)
    );
    let o = tool(
        &dir,
        &["reconstruct", "x.model", "x.npy", "-o", "recon.npy"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recon: Array2<f64> = npy::read::<f64, Ix2>(dir.join("recon.npy"))?;
    // In the data's units: the error is small against the data's own spread around 5.
    let error = (&recon - &x).mapv(|d| d * d).mean().expect("values");
    let spread = x.mapv(|v| (v - 5.0) * (v - 5.0)).mean().expect("values");
    assert!(error < 0.1 * spread, "error {error}, spread {spread}");
    Ok(())
}

#[test]
fn round_trips_in_csv() -> Result<()> {
    let dir = folder("csv");
    let x = data();
    let mut text = String::from("label,");
    text += &(0..12)
        .map(|j| format!("f{j}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for (i, row) in x.rows().into_iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text += &format!(
            "{},{}\n",
            if i % 10 == 0 { "odd" } else { "usual" },
            cells.join(",")
        );
    }
    std::fs::write(dir.join("x.csv"), text).expect("write");
    let run = |args: &[&str]| {
        let o = tool(&dir, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        o
    };
    run(&[
        "train",
        "x.csv",
        "--label-column",
        "label",
        "-o",
        "x.model",
        "--hidden",
        "8",
        "--latent",
        "3",
        "--epochs",
        "20",
    ]);
    run(&[
        "encode",
        "x.model",
        "x.csv",
        "--label-column",
        "label",
        "-o",
        "codes.csv",
    ]);
    run(&["decode", "x.model", "codes.csv", "-o", "decoded.csv"]);
    run(&[
        "reconstruct",
        "x.model",
        "x.csv",
        "--label-column",
        "0",
        "-o",
        "recon.csv",
    ]);
    run(&[
        "score",
        "x.model",
        "x.csv",
        "--label-column",
        "label",
        "-o",
        "scores.csv",
        "--threshold",
        "0.5",
    ]);
    let codes = std::fs::read_to_string(dir.join("codes.csv")).expect("codes");
    assert!(codes.starts_with("z0,z1,z2\n"), "{codes:.40}");
    assert_eq!(codes.lines().count(), 401);
    // Decoding the codes written as text gives the reconstructions to the text's precision.
    let decoded = std::fs::read_to_string(dir.join("decoded.csv")).expect("decoded");
    let recon = std::fs::read_to_string(dir.join("recon.csv")).expect("recon");
    assert_eq!(decoded.lines().count(), 401);
    for (a, b) in decoded.lines().zip(recon.lines()).skip(1) {
        for (u, v) in a.split(',').zip(b.split(',')) {
            let (u, v): (f64, f64) = (u.parse().expect("number"), v.parse().expect("number"));
            assert!((u - v).abs() <= 1e-4 * v.abs().max(1.0), "{u} vs {v}");
        }
    }
    let scores = std::fs::read_to_string(dir.join("scores.csv")).expect("scores");
    assert!(scores.starts_with("score,anomaly\n"));
    let evaluate = run(&[
        "evaluate",
        "x.model",
        "x.csv",
        "--label-column",
        "label",
        "--normal",
        "usual",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(stdout(&evaluate).trim()).expect("JSON");
    assert!(
        e["roc_auc"]
            .as_f64()
            .is_some_and(|a| (0.0..=1.0).contains(&a)),
        "{e}"
    );
    Ok(())
}

#[test]
fn labels_from_a_file_of_their_own() -> Result<()> {
    let dir = folder("labels");
    npy::write(dir.join("x.npy"), data().view())?;
    let labels = Array1::from_shape_fn(400, |i| f64::from(u8::from(i % 8 == 0)));
    npy::write(dir.join("y.npy"), labels.view())?;
    npy::write(dir.join("short.npy"), labels.slice(ndarray::s![..10]))?;
    let ok = tool(
        &dir,
        &[
            "train", "x.npy", "-o", "x.model", "--hidden", "none", "--latent", "3", "--epochs", "2",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let o = tool(
        &dir,
        &[
            "evaluate", "x.model", "x.npy", "--labels", "y.npy", "--normal", "0", "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert!(e["roc_auc"].as_f64().is_some(), "{e}");
    assert!(e["bce"].is_null(), "no BCE for data outside [0, 1]: {e}");
    failed(
        &tool(
            &dir,
            &[
                "evaluate",
                "x.model",
                "x.npy",
                "--labels",
                "short.npy",
                "--normal",
                "0",
            ],
        ),
        1,
        "400 labels",
    );
    failed(
        &tool(&dir, &["evaluate", "x.model", "x.npy", "--normal", "0"]),
        1,
        "--normal needs labels",
    );
    Ok(())
}
