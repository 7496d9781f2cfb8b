//! The MNIST download path against a local HTTP server on 127.0.0.1 that serves the real
//! files (found where the examples look, see `common::mnist_dir`) under `/good/`, corrupted
//! copies (one byte changed) under `/bad/`, and 404 for anything else.
#![cfg(feature = "download")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autoencoder::data::mnist::{self, download, sha256_hex, FILES};
use autoencoder::{Error, Result};

/// Starts a server thread; returns its base URL `http://127.0.0.1:PORT`.
fn serve(dir: &Path) -> String {
    let mut files = HashMap::new();
    for f in FILES {
        let bytes = std::fs::read(dir.join(f.name)).expect("read MNIST file");
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x01;
        files.insert(format!("/good/{}", f.name), bytes);
        files.insert(format!("/bad/{}", f.name), bad);
    }
    let files = Arc::new(files);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line.trim_end() != "" {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let _ = match files.get(path) {
                    Some(body) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(body)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            });
        }
    });
    url
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn corrupt_and_missing_mirrors_are_skipped_and_good_files_verified() -> Result<()> {
    let Some(src) = common::mnist_dir()? else {
        return Ok(());
    };
    let url = serve(&src);
    let dir = fresh_dir("download_ok");
    let mirrors = [
        format!("{url}/bad/"),
        format!("{url}/nothing-here"), // 404
        format!("{url}/good"),
    ];
    download(&dir, &mirrors)?;
    let mut expected: Vec<String> = FILES.iter().map(|f| f.name.to_string()).collect();
    expected.sort();
    assert_eq!(entries(&dir), expected, "no temporary files left");
    for f in FILES {
        let bytes = std::fs::read(dir.join(f.name)).expect("downloaded");
        assert_eq!(sha256_hex(&bytes), f.sha256);
    }
    assert!(mnist::missing_files(&dir).is_empty());
    // A second call finds nothing missing and fetches nothing (no mirror works now).
    download(&dir, &[format!("{url}/bad/")])?;
    Ok(())
}

#[test]
fn a_corrupted_copy_is_rejected_and_never_written() -> Result<()> {
    let Some(src) = common::mnist_dir()? else {
        return Ok(());
    };
    let url = serve(&src);
    let dir = fresh_dir("download_bad");
    match download(&dir, &[format!("{url}/bad/"), format!("{url}/missing/")]) {
        Err(e @ Error::MissingData { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("SHA-256") && msg.contains("404"), "{msg}");
        }
        other => panic!("expected Error::MissingData, got {other:?}"),
    }
    assert_eq!(entries(&dir), Vec::<String>::new(), "nothing written");
    Ok(())
}

#[test]
fn an_unreachable_mirror_fails_over_to_the_next() -> Result<()> {
    let Some(src) = common::mnist_dir()? else {
        return Ok(());
    };
    let url = serve(&src);
    // A port nothing listens on: bind, note it, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let dir = fresh_dir("download_failover");
    download(&dir, &[format!("http://{closed}/"), format!("{url}/good/")])?;
    assert!(mnist::missing_files(&dir).is_empty());
    Ok(())
}

#[test]
fn no_mirror_is_an_error_not_a_panic() {
    let dir = fresh_dir("download_none");
    match download(&dir, &[]) {
        Err(e @ Error::MissingData { .. }) => assert!(e.to_string().contains("no mirror")),
        other => panic!("expected Error::MissingData, got {other:?}"),
    }
}
