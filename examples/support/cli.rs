//! What the examples share beyond the command line's common parts (those, with `main_with`,
//! are in `src/bin/autoencoder/args.rs`, the `autoencoder` tool's own, included by each
//! example beside this file): `--out DIR`, and for the examples' tests a parser helper and
//! the README's flag mentions.
//!
//! Each example declares its flags once, as a `#[derive(clap::Parser)]` struct: the same
//! definitions parse the command line and write `--help`, so the two cannot drift apart.

/// The value parser of `--out DIR` for `example`: the folder, or, without the `viz`
/// feature, an error saying how to build with it.
#[allow(dead_code)] // mnist_deep and throughput write no pictures
pub fn out_dir(
    example: &'static str,
) -> impl Fn(&str) -> Result<std::path::PathBuf, String> + Clone + Send + Sync + 'static {
    move |dir| {
        if cfg!(feature = "viz") {
            Ok(dir.into())
        } else {
            Err(format!(
                "--out needs the `viz` feature: cargo run --release --features viz \
                 --example {example} -- --out DIR"
            ))
        }
    }
}

/// Parses `line`, split at spaces, as the example's flags (for the tests).
#[cfg(test)]
pub fn parse<C: clap::Parser>(line: &str) -> Result<C, clap::Error> {
    C::try_parse_from(std::iter::once("example").chain(line.split_whitespace()))
}

/// As [`parse`], with the error as the one line a user would see (for the tests).
#[cfg(test)]
#[allow(dead_code)] // not every example's tests use it
pub fn parsed<C: clap::Parser>(line: &str) -> Result<C, String> {
    parse(line).map_err(|e| crate::args::one_line(&e))
}

/// The error kind of a line that must not parse (for the tests).
///
/// # Panics
/// If `line` parses: that is the test failing.
#[cfg(test)]
#[allow(dead_code)] // not every example's tests use it
pub fn refused<C: clap::Parser + std::fmt::Debug>(line: &str) -> clap::error::ErrorKind {
    match parse::<C>(line) {
        Ok(c) => panic!("`{line}` parsed: {c:?}"),
        Err(e) => e.kind(),
    }
}

/// The README's mentions of each example's flags, so a test can check that the example's
/// parser accepts every one of them.
#[cfg(test)]
pub mod readme {
    use clap::CommandFactory;

    /// The README, as compiled in.
    pub const README: &str = include_str!("../../README.md");

    /// Cargo's own flags, named in prose ("with `--features viz`"); skipped with their value.
    /// (In a `cargo ...` command, everything before its ` -- ` is skipped anyway.)
    const CARGO_FLAGS: &[&str] = &[
        "--release",
        "--features",
        "--example",
        "--no-default-features",
    ];

    /// Values tried for the README's placeholders (`--seed N`, `--out DIR`,
    /// `--noise masking:F`) and for the parser's own value names when the README gives none.
    const SAMPLES: &[(&str, &str)] = &[
        ("N", "2"),
        ("E", "2"),
        ("K", "2"),
        ("X", "0.5"),
        ("F", "0.3"),
        ("STD", "0.5"),
        ("L", "1e-4"),
        ("DIR", "pictures"),
        ("LIST", "128,64"),
        ("S", "sigmoid"),
        ("I", "glorot"),
        ("V", "denoising"),
        ("O", "sgd"),
        ("P", "l2-weights:1e-4"),
        ("W", "shallow"),
        ("NOISE", "masking:0.3"),
        ("PATH", "data.csv"),
        ("NAME", "label"),
        ("VALUE", "normal"),
    ];

    /// One place in the README that uses a flag of an example: the command line to try.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Mention {
        /// Line number in README.md (from 1).
        pub line: usize,
        /// The flags and values, as the README writes them (placeholders not yet filled in).
        pub args: Vec<String>,
    }

    /// A code span, a code-block line (joined over `\` continuations) or a stretch of prose,
    /// with the line it starts on.
    struct Piece {
        line: usize,
        text: String,
        code: bool,
    }

    /// Every mention of `example`'s flags in the README.
    ///
    /// The README is cut into `## ` sections and each section into pieces. A piece that runs
    /// the example (`--example NAME -- ARGS`) gives one mention, ARGS as a whole; any other
    /// piece gives one mention per flag in it, with the words after it in the same code span
    /// as its value (`--seed N`, `--noise gaussian:STD|masking:F`). A piece belongs to the
    /// example it names, else to the nearest one named before it in its section, else to the
    /// first one named after it there.
    pub fn mentions(example: &str) -> Vec<Mention> {
        let mut all = Vec::new();
        for section in sections() {
            let named: Vec<Option<String>> = section.iter().map(|p| example_of(&p.text)).collect();
            for (i, piece) in section.iter().enumerate() {
                let owner = named[..=i]
                    .iter()
                    .rev()
                    .flatten()
                    .next()
                    .or_else(|| named[i..].iter().flatten().next());
                // A flag in a section that names no example counts for every example, so
                // that the test fails (and says where) unless each of them takes it.
                if owner.is_some_and(|o| o != example) || runs_a_script(piece) {
                    continue;
                }
                all.extend(flags_in(piece));
            }
        }
        all
    }

    /// Whether a code piece runs a Python script (the PyTorch side-by-side runner): its
    /// flags are the script's, not an example's.
    fn runs_a_script(piece: &Piece) -> bool {
        piece.code
            && piece
                .text
                .split_whitespace()
                .next()
                .map(|w| w.rsplit('/').next().unwrap_or(w))
                .is_some_and(|w| w.starts_with("python") || w.ends_with(".py"))
    }

    #[allow(dead_code)] // for the tool's own test (src/bin/autoencoder/main.rs)
    /// Every command line of the `autoencoder` tool in the README's code (a code line or
    /// span starting with `autoencoder`), its arguments after the program's name.
    pub fn tool_commands() -> Vec<Mention> {
        sections()
            .into_iter()
            .flatten()
            .filter(|p| p.code)
            .filter_map(|p| {
                let words: Vec<&str> = p.text.split_whitespace().collect();
                // Not the name alone (prose), nor `autoencoder = { ... }` (Cargo.toml).
                match words[..] {
                    [TOOL, second, ..] if second != "=" => Some(Mention {
                        line: p.line,
                        args: words[1..].iter().map(|w| w.to_string()).collect(),
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    /// The command-line tool's name: its pieces belong to it, not to an example.
    const TOOL: &str = "autoencoder";

    /// The program a piece runs: the word after `--example` or `--bin`, or the tool itself.
    fn example_of(text: &str) -> Option<String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.first() == Some(&TOOL) && words.get(1) != Some(&"=") {
            return Some(TOOL.to_string());
        }
        let at = words
            .iter()
            .position(|&w| w == "--example" || w == "--bin")?;
        words.get(at + 1).map(|w| w.to_string())
    }

    /// The mentions in one piece.
    fn flags_in(piece: &Piece) -> Vec<Mention> {
        let words: Vec<&str> = piece.text.split_whitespace().collect();
        let mention = |args: Vec<String>| Mention {
            line: piece.line,
            args,
        };
        if !piece.code {
            // Prose outside code spans: bare `--flag` words, no value.
            return words
                .iter()
                .filter_map(|w| {
                    let w = w.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
                    (is_flag(w) && !CARGO_FLAGS.contains(&w)).then(|| mention(vec![w.to_string()]))
                })
                .collect();
        }
        let args_from = match words.iter().position(|&w| w == "--") {
            // `cargo ... -- ARGS`: only ARGS are the example's.
            Some(at) if words.contains(&"cargo") => {
                let args: Vec<String> = words[at + 1..].iter().map(|w| w.to_string()).collect();
                return if args.is_empty() {
                    Vec::new()
                } else {
                    vec![mention(args)]
                };
            }
            Some(at) => at + 1,
            None if words.contains(&"cargo") => return Vec::new(),
            None => 0,
        };
        let mut found = Vec::new();
        let mut i = args_from;
        while i < words.len() {
            let w = words[i];
            i += 1;
            let value = words.get(i).filter(|v| !v.starts_with("--"));
            if CARGO_FLAGS.contains(&w) {
                i += usize::from(value.is_some() && w != "--release");
                continue;
            }
            if !is_flag(w) {
                continue;
            }
            match value {
                // `--noise gaussian:STD|masking:F`: one mention per alternative.
                Some(v) => {
                    i += 1;
                    for alternative in v.split('|') {
                        found.push(mention(vec![w.to_string(), alternative.to_string()]));
                    }
                }
                None => found.push(mention(vec![w.to_string()])),
            }
        }
        found
    }

    fn is_flag(w: &str) -> bool {
        w.len() > 2
            && w.starts_with("--")
            && w[2..].starts_with(|c: char| c.is_ascii_lowercase())
            && w[2..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    /// The README cut into `## ` sections of pieces: code spans, code-block lines (a
    /// trailing `\` joins the next line, a ` #` starts a comment) and the prose between.
    fn sections() -> Vec<Vec<Piece>> {
        let mut sections = vec![Vec::new()];
        let mut in_block = false;
        let mut in_span = false;
        let mut text = String::new();
        let mut start = 1;
        let mut continued: Option<Piece> = None;
        for (n, line) in README.lines().enumerate() {
            let n = n + 1;
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if in_block {
                let code = line.split(" #").next().unwrap_or("").trim_end();
                let (code, more) = match code.strip_suffix('\\') {
                    Some(c) => (c, true),
                    None => (code, false),
                };
                let mut piece = continued.take().unwrap_or(Piece {
                    line: n,
                    text: String::new(),
                    code: true,
                });
                piece.text.push(' ');
                piece.text.push_str(code);
                if more {
                    continued = Some(piece);
                } else {
                    sections.last_mut().expect("one section").push(piece);
                }
                continue;
            }
            if line.starts_with("## ") && !in_span {
                sections.push(Vec::new());
                continue;
            }
            for (k, part) in line.split('`').enumerate() {
                if k > 0 {
                    // A backtick: the piece so far ends.
                    let piece = Piece {
                        line: start,
                        text: std::mem::take(&mut text),
                        code: in_span,
                    };
                    sections.last_mut().expect("one section").push(piece);
                    in_span = !in_span;
                    start = n;
                }
                text.push_str(part);
            }
            text.push(' ');
        }
        let last = sections.last_mut().expect("one section");
        last.extend(continued);
        last.push(Piece {
            line: start,
            text,
            code: in_span,
        });
        sections
    }

    /// Fills in the placeholders of `args` (`N`, `gaussian:STD`) and gives a flag the README
    /// names without a value (`--lambda`) a sample value for its value name.
    fn concrete<C: CommandFactory>(args: &[String]) -> Result<Vec<String>, String> {
        let command = C::command();
        let sample = |name: &str| {
            SAMPLES
                .iter()
                .find(|(p, _)| *p == name)
                .map(|(_, v)| v.to_string())
                .ok_or(format!(
                    "no sample value for the placeholder `{name}`: add one to SAMPLES in \
                     examples/support/cli.rs"
                ))
        };
        let is_placeholder = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase());
        let mut out = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if a.starts_with("--") {
                out.push(a.clone());
                let arg = command
                    .get_arguments()
                    .find(|x| x.get_long() == a.strip_prefix("--"));
                let given = args.get(i + 1).is_some_and(|v| !v.starts_with("--"));
                if let Some(arg) = arg.filter(|x| x.get_action().takes_values() && !given) {
                    let name = arg
                        .get_value_names()
                        .and_then(|n| n.first())
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    out.push(sample(&name)?);
                }
            } else {
                let parts: Result<Vec<String>, String> = a
                    .split(':')
                    .map(|p| {
                        if is_placeholder(p) {
                            sample(p)
                        } else {
                            Ok(p.to_string())
                        }
                    })
                    .collect();
                out.push(parts?.join(":"));
            }
        }
        Ok(out)
    }

    /// Parses every README mention of `example` with `C`; returns the failures, one line each.
    ///
    /// Without the `viz` feature, `--out` must fail with a message naming `--features viz`
    /// (the README always says it needs that feature).
    pub fn check<C: clap::Parser>(example: &str) -> Vec<String> {
        let mut failures = Vec::new();
        for m in mentions(example) {
            let args = match concrete::<C>(&m.args) {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("README.md:{} {:?}: {e}", m.line, m.args));
                    continue;
                }
            };
            let parsed =
                C::try_parse_from(std::iter::once(example.to_string()).chain(args.clone()));
            let needs_viz = !cfg!(feature = "viz") && args.iter().any(|a| a == "--out");
            match parsed {
                Ok(_) if !needs_viz => {}
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {}
                Err(e) if needs_viz && e.to_string().contains("--features viz") => {}
                Ok(_) => failures.push(format!(
                    "README.md:{} {args:?}: --out accepted without the viz feature",
                    m.line
                )),
                Err(e) => failures.push(format!(
                    "README.md:{} {example} {}: {}",
                    m.line,
                    args.join(" "),
                    crate::args::one_line(&e)
                )),
            }
        }
        failures
    }
}
