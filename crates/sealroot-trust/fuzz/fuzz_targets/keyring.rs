//! Keyrings from arbitrary key files, and the signature policy over them. The input is split
//! at `\0\0`: a signature file, a revoked-keys file, then the trusted key files, which go into
//! a scratch directory (`k000`, `k001`, …; a part starting with `.` is the hidden file
//! `.k00N`, which loading must skip) or, when there is exactly one, are loaded as a file.
//!
//! `Keyring::load` must hold exactly the keys that `parse_public_keys` gives for the files it
//! reads, in name order, each once, and refuse what any of them refuses; `verify` must accept
//! a commit exactly when the keyring trusts at least one key, every signature by a trusted,
//! non-revoked key verifies and there is one; and never a commit the file does not name.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealroot_trust::ed25519::{
    parse_public_keys, verify, Keyring, KeyringError, PublicKey, SignatureFile, MAX_KEYS,
};
use sealroot_verity::AnyDigest;

/// This process's scratch directory (under `$TMPDIR`, which `scripts/fuzz.sh` points at its
/// scratch space).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("sealroot-fuzz-keyring.{}", std::process::id()))
    })
}

/// What loading `parts` as key files, in this order, must give: every key once, or `None`
/// where a file is refused or the keys go over [`MAX_KEYS`].
fn expected_keys<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Option<Vec<PublicKey>> {
    let mut all: Vec<PublicKey> = Vec::new();
    for part in parts {
        all.extend(parse_public_keys(part, "fuzz").ok()?);
        if all.len() > MAX_KEYS {
            return None;
        }
    }
    let mut once: Vec<PublicKey> = Vec::new();
    for key in all {
        if !once.contains(&key) {
            once.push(key);
        }
    }
    Some(once)
}

/// Loads the keys at `path` (whose readable files hold `visible`) through `load`, which
/// must succeed exactly when [`expected_keys`] does.
fn load_checked(
    keyring: &mut Keyring,
    path: &Path,
    visible: &[&[u8]],
    load: fn(&mut Keyring, &Path) -> Result<usize, KeyringError>,
) -> bool {
    let expected = expected_keys(visible.iter().copied());
    let loaded = load(keyring, path);
    assert_eq!(
        loaded.is_ok(),
        expected.is_some(),
        "keyring load {loaded:?}, expected {expected:?}"
    );
    loaded.is_ok()
}

fuzz_target!(|data: &[u8]| {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(2).position(|w| w == b"\0\0") {
        parts.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    parts.push(rest);
    if parts.len() < 3 || parts.len() > 12 {
        return;
    }
    let (signatures, revoked, trusted) = (parts[0], parts[1], &parts[2..]);

    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    let keys_dir = dir.join("trusted.d");
    std::fs::create_dir_all(&keys_dir).expect("scratch directory");
    let mut visible = Vec::new();
    for (i, part) in trusted.iter().enumerate() {
        let hidden = part.first() == Some(&b'.');
        let name = format!("{}k{i:03}", if hidden { "." } else { "" });
        std::fs::write(keys_dir.join(name), part).expect("scratch file");
        if !hidden {
            visible.push(*part);
        }
    }
    let trusted_path = match trusted {
        [one] if one.first() != Some(&b'.') => keys_dir.join("k000"),
        _ => keys_dir.clone(),
    };
    let revoked_path = dir.join("revoked");
    std::fs::write(&revoked_path, revoked).expect("scratch file");

    let mut keyring = Keyring::new();
    if !load_checked(&mut keyring, &trusted_path, &visible, Keyring::load_trusted) {
        return;
    }
    assert_eq!(
        Some(keyring.trusted.clone()),
        expected_keys(visible.iter().copied())
    );
    if !load_checked(
        &mut keyring,
        &revoked_path,
        &[revoked],
        Keyring::load_revoked,
    ) {
        return;
    }

    let Ok(file) = SignatureFile::parse(signatures, "fuzz") else {
        return;
    };
    let commit = *file.commit();
    let counted: Vec<_> = file
        .signatures()
        .iter()
        .filter(|s| keyring.is_trusted(&s.key))
        .collect();
    let should_accept =
        !keyring.is_empty() && !counted.is_empty() && counted.iter().all(|s| s.verifies(&commit));
    match verify(&keyring, &commit, &file) {
        Ok(verified) => {
            assert!(should_accept, "accepted {verified:?}");
            let keys: Vec<PublicKey> = counted.iter().map(|s| s.key).collect();
            assert_eq!(verified.keys, keys);
            assert!(verified.revoked.iter().all(|k| keyring.is_revoked(k)));
            assert!(verified
                .untrusted
                .iter()
                .all(|k| !keyring.trusted.contains(k)));
        }
        Err(e) => assert!(!should_accept, "refused {e:?}"),
    }
    let mut other = commit.as_bytes().to_vec();
    other[0] ^= 1;
    let other = AnyDigest::from_slice(commit.algorithm(), &other).expect("a digest's own length");
    assert!(verify(&keyring, &other, &file).is_err());
});
