//! The conformance vectors of the C composefs project: each dumpfile must give exactly the
//! image C `mkcomposefs` gives (pinned by sha256), the image must read back to the same tree
//! and be written again byte for byte, `fsck.erofs` must accept it, and every
//! `should-fail-*` vector must be refused.

use std::io::Read;
use std::path::{Path, PathBuf};

use sealroot_format::{dumpfile, erofs};
use sha2::{Digest, Sha256};

fn vectors_dir() -> PathBuf {
    // The repository lives beside the shared/ folder that holds the vectors.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for candidate in [
        here.join("../../../shared/vectors/composefs-c"),
        here.join("../../shared/vectors/composefs-c"),
        PathBuf::from("/work/shared/vectors/composefs-c"),
    ] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!("conformance vectors not found beside the repository (shared/vectors/composefs-c)");
}

fn load(path: &Path) -> Vec<u8> {
    let mut raw = std::fs::read(path).unwrap();
    // A git symlink stored as a file (special_v1.dump names special.dump): follow it.
    if raw.len() < 64 && !raw.contains(&b' ') && raw.ends_with(b".dump") {
        let target = path.with_file_name(String::from_utf8(raw.clone()).unwrap());
        raw = std::fs::read(target).unwrap();
    }
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

fn options_for(dir: &Path, name: &str) -> erofs::WriteOptions {
    match std::fs::read_to_string(dir.join(format!("{name}.version"))) {
        Ok(v) => {
            let v: u32 = v.trim().parse().unwrap();
            erofs::WriteOptions {
                min_version: v,
                max_version: v,
            }
        }
        Err(_) => erofs::WriteOptions::default(),
    }
}

fn checksum_vectors() -> Vec<(String, PathBuf, String)> {
    let dir = vectors_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(name) = file.strip_suffix(".sha256") {
            let expected = std::fs::read_to_string(&path).unwrap().trim().to_owned();
            out.push((name.to_owned(), dir.join(name), expected));
        }
    }
    out.sort();
    assert!(
        out.len() >= 14,
        "expected the 14 checksum vectors, found {}",
        out.len()
    );
    out
}

#[test]
fn images_match_c_mkcomposefs() {
    let dir = vectors_dir();
    let mut failures = Vec::new();
    for (name, path, expected) in checksum_vectors() {
        let input = load(&path);
        let tree = dumpfile::parse(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let opts = options_for(&dir, &name);
        let image = erofs::write(&tree, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = hex(&Sha256::digest(&image));
        if got != expected {
            failures.push(format!("{name}: got {got}, want {expected}"));
            continue;
        }
        // Image -> tree -> image is byte-identical.
        let (back, sb) =
            erofs::read_with_superblock(&image).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = erofs::write(
            &back,
            &erofs::WriteOptions {
                min_version: sb.composefs_version,
                max_version: sb.composefs_version,
            },
        )
        .unwrap();
        if again != image {
            failures.push(format!("{name}: image -> tree -> image differs"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn should_fail_vectors_are_refused() {
    let dir = vectors_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !file.starts_with("should-fail-") {
            continue;
        }
        n += 1;
        let input = load(&path);
        let result = dumpfile::parse(&input)
            .map_err(|e| e.to_string())
            .and_then(|tree| {
                erofs::write(&tree, &erofs::WriteOptions::default()).map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => panic!("{file}: accepted, but C mkcomposefs refuses it"),
            Err(msg) => assert!(!msg.is_empty(), "{file}: empty error message"),
        }
    }
    assert_eq!(n, 14, "expected the 14 should-fail vectors");
}

#[test]
fn fsck_erofs_accepts_images() {
    let Ok(status) = std::process::Command::new("fsck.erofs")
        .arg("--help")
        .output()
    else {
        eprintln!("SKIPPED: fsck.erofs (erofs-utils) is not installed");
        return;
    };
    let _ = status;
    let dir = vectors_dir();
    let tmp = tempfile::tempdir().unwrap();
    for (name, path, _) in checksum_vectors() {
        let tree = dumpfile::parse(&load(&path)).unwrap();
        let image = erofs::write(&tree, &options_for(&dir, &name)).unwrap();
        let img_path = tmp.path().join(format!("{name}.img"));
        std::fs::write(&img_path, &image).unwrap();
        let out = std::process::Command::new("fsck.erofs")
            .arg(&img_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: fsck.erofs refused the image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
