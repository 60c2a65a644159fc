//! The fs-verity ioctls against this machine's kernel, and the argument layouts against the
//! kernel's UAPI header.
//!
//! Where the kernel or filesystem lacks fs-verity (the development machines: no
//! `CONFIG_FS_VERITY`, ext4 and tmpfs), the ioctls must fail with the typed
//! [`VerityError::NotSupported`]. Where fs-verity works (the VM tests), the same tests check the
//! real behaviour instead, and print which case ran.

use std::io::Write as _;
use std::mem::{offset_of, size_of};
use std::path::Path;

use sealroot_sys::fsverity::{
    enable_verity, is_verity_enabled, measure_verity, EnableParams, FsverityDigestHeader,
    FsverityEnableArg, VerityError, FS_IOC_ENABLE_VERITY, FS_IOC_MEASURE_VERITY,
    FS_VERITY_HASH_ALG_SHA256,
};

#[test]
fn enable_arg_matches_the_kernel_layout() {
    // struct fsverity_enable_arg in include/uapi/linux/fsverity.h.
    assert_eq!(size_of::<FsverityEnableArg>(), 128);
    assert_eq!(offset_of!(FsverityEnableArg, version), 0);
    assert_eq!(offset_of!(FsverityEnableArg, hash_algorithm), 4);
    assert_eq!(offset_of!(FsverityEnableArg, block_size), 8);
    assert_eq!(offset_of!(FsverityEnableArg, salt_size), 12);
    assert_eq!(offset_of!(FsverityEnableArg, salt_ptr), 16);
    assert_eq!(offset_of!(FsverityEnableArg, sig_size), 24);
    assert_eq!(offset_of!(FsverityEnableArg, reserved1), 28);
    assert_eq!(offset_of!(FsverityEnableArg, sig_ptr), 32);
    assert_eq!(offset_of!(FsverityEnableArg, reserved2), 40);
    // The fixed part of struct fsverity_digest.
    assert_eq!(size_of::<FsverityDigestHeader>(), 4);
    assert_eq!(offset_of!(FsverityDigestHeader, digest_algorithm), 0);
    assert_eq!(offset_of!(FsverityDigestHeader, digest_size), 2);
}

/// The opcode values on the architectures with the generic `_IOC` encoding (direction in the
/// top two bits), as C's `printf("%#x", FS_IOC_ENABLE_VERITY)` prints them there.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
#[test]
fn opcodes_match_the_kernel() {
    assert_eq!(u64::from(FS_IOC_ENABLE_VERITY), 0x4080_6685);
    assert_eq!(u64::from(FS_IOC_MEASURE_VERITY), 0xc004_6686);
}

/// Writes a small file in `dir`, closes it, and opens it again read-only, as enabling requires.
fn read_only_file(dir: &Path) -> (tempfile::TempPath, std::fs::File) {
    let mut f = tempfile::NamedTempFile::new_in(dir).expect("create a file");
    f.write_all(&[0x5a; 10_000]).expect("write it");
    let path = f.into_temp_path();
    let file = std::fs::File::open(&path).expect("reopen read-only");
    (path, file)
}

#[test]
fn tmpfs_has_no_verity() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        sealroot_testkit::skip("tmpfs_has_no_verity", "no /dev/shm tmpfs here");
        return;
    }
    let (_path, file) = read_only_file(shm);
    let err = enable_verity(&file, &EnableParams::composefs_default(), None)
        .expect_err("tmpfs does not implement fs-verity");
    assert!(
        matches!(err, VerityError::NotSupported(_)),
        "enable on tmpfs: {err:?}"
    );
    let err = measure_verity(&file).expect_err("tmpfs does not implement fs-verity");
    assert!(
        matches!(err, VerityError::NotSupported(_) | VerityError::NotEnabled),
        "measure on tmpfs: {err:?}"
    );
    assert!(!is_verity_enabled(&file).expect("statx"));
    // The typed error still converts for callers that speak io::Error.
    let io: std::io::Error = err.into();
    assert!(matches!(
        io.kind(),
        std::io::ErrorKind::Unsupported | std::io::ErrorKind::Other
    ));
}

#[test]
fn regular_file_in_temp_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_path, file) = read_only_file(dir.path());
    assert!(!is_verity_enabled(&file).expect("statx"));
    match measure_verity(&file) {
        Err(VerityError::NotEnabled | VerityError::NotSupported(_)) => {}
        other => panic!("measure before enabling: {other:?}"),
    }
    let params = EnableParams {
        hash_algorithm: FS_VERITY_HASH_ALG_SHA256,
        block_size: 4096,
        salt: b"sealroot",
    };
    match enable_verity(&file, &params, None) {
        Err(VerityError::NotSupported(errno)) => {
            println!(
                "fs-verity not supported on {}: {errno}",
                dir.path().display()
            );
        }
        Ok(()) => {
            println!(
                "fs-verity supported on {}: testing it for real",
                dir.path().display()
            );
            assert!(is_verity_enabled(&file).expect("statx"));
            let (alg, digest) = measure_verity(&file).expect("measure a verity file");
            assert_eq!((alg, digest.len()), (FS_VERITY_HASH_ALG_SHA256, 32));
            assert!(matches!(
                enable_verity(&file, &params, None),
                Err(VerityError::AlreadyEnabled)
            ));
        }
        Err(other) => panic!("enable on a regular file: {other:?}"),
    }
}

#[test]
fn file_open_for_writing_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = tempfile::NamedTempFile::new_in(dir.path()).expect("create a file");
    writer.write_all(b"still being written").expect("write");
    let reader = std::fs::File::open(writer.path()).expect("open read-only");
    match enable_verity(&reader, &EnableParams::composefs_default(), None) {
        Err(VerityError::FileOpenForWriting) => {}
        // Without fs-verity the kernel says so before it looks for writers.
        Err(VerityError::NotSupported(_)) => println!("fs-verity not supported here"),
        other => panic!("enable with a writer open: {other:?}"),
    }
    drop(writer);
}
