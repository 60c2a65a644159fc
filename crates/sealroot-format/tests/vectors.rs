//! The conformance vectors of the C composefs project: each dumpfile must give exactly the
//! image C `mkcomposefs` gives (pinned by sha256), the image must read back to the same tree
//! and be written again byte for byte, `fsck.erofs` must accept it, and every
//! `should-fail-*` vector must be refused.

use sealroot_format::{dumpfile, erofs};
use sealroot_testkit::vectors;
use sha2::{Digest, Sha256};

fn options_for(name: &str) -> erofs::WriteOptions {
    match vectors::version(name) {
        Some(v) => erofs::WriteOptions {
            min_version: v,
            max_version: v,
        },
        None => erofs::WriteOptions::default(),
    }
}

fn image_of(name: &str) -> Vec<u8> {
    let tree =
        dumpfile::parse_compat(&vectors::load(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    erofs::write(&tree, &options_for(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn images_match_c_mkcomposefs() {
    let mut failures = Vec::new();
    for (name, expected) in vectors::checksums() {
        let image = image_of(&name);
        let got = hex(&Sha256::digest(&image));
        if got != expected {
            failures.push(format!("{name}: got {got}, want {expected}"));
            continue;
        }
        // Image -> tree -> image is byte-identical.
        let (back, sb) =
            erofs::read_with_superblock(&image).unwrap_or_else(|e| panic!("{name}: {e}"));
        let version = sb.composefs_version;
        let again = erofs::write(
            &back,
            &erofs::WriteOptions {
                min_version: version,
                max_version: version,
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
    let names = vectors::should_fail();
    assert_eq!(names.len(), 14, "expected the 14 should-fail vectors");
    for file in names {
        let result = dumpfile::parse_compat(&vectors::load(&file))
            .map_err(|e| e.to_string())
            .and_then(|tree| {
                erofs::write(&tree, &erofs::WriteOptions::default()).map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => panic!("{file}: accepted, but C mkcomposefs refuses it"),
            Err(msg) => assert!(!msg.is_empty(), "{file}: empty error message"),
        }
    }
}

#[test]
fn fsck_erofs_accepts_images() {
    if std::process::Command::new("fsck.erofs")
        .arg("--help")
        .output()
        .is_err()
    {
        sealroot_testkit::skip(
            "fsck_erofs_accepts_images",
            "fsck.erofs (erofs-utils) is not installed",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, _) in vectors::checksums() {
        let img_path = tmp.path().join(format!("{name}.img"));
        std::fs::write(&img_path, image_of(&name)).unwrap();
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
