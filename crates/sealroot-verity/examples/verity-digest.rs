//! `fsverity digest` in miniature, to time our hashing against fsverity-utils on equal terms
//! (same process start, same file, same output):
//!
//! ```text
//! cargo run --release -p sealroot-verity --example verity-digest -- \
//!     [--hash-alg=sha256|sha512] [--block-size=N] [--salt=HEX] FILE...
//! ```
//!
//! Prints `ALG:HEX FILE` per file, as `fsverity digest` does.

use std::process::ExitCode;

use sealroot_verity::{digest_file, HashAlgorithm, Params};

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn run() -> Result<(), String> {
    let mut algorithm = HashAlgorithm::Sha256;
    let mut block_size = 4096usize;
    let mut salt = Vec::new();
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        if let Some(v) = arg.strip_prefix("--hash-alg=") {
            algorithm = v.parse().map_err(|e| format!("{e}"))?;
        } else if let Some(v) = arg.strip_prefix("--block-size=") {
            block_size = v.parse().map_err(|e| format!("--block-size: {e}"))?;
        } else if let Some(v) = arg.strip_prefix("--salt=") {
            salt = parse_hex(v).ok_or("--salt: not hex")?;
        } else if arg.starts_with("--") {
            return Err(format!("unknown option {arg}"));
        } else {
            files.push(arg);
        }
    }
    if files.is_empty() {
        return Err(
            "usage: verity-digest [--hash-alg=A] [--block-size=N] [--salt=HEX] FILE...".into(),
        );
    }
    let params = Params::new(algorithm, block_size, &salt).map_err(|e| e.to_string())?;
    for path in files {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        let d = digest_file(&params, &file).map_err(|e| format!("{path}: {e}"))?;
        println!("{}:{d} {path}", d.algorithm());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verity-digest: {e}");
            ExitCode::FAILURE
        }
    }
}
