//! What the boot-partition tests share: a loop-mounted ext4 partition, foreign entries,
//! two sets of sealroot's entries with their boot files, and views of `loader/entries`.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealroot_deploy::bls::{BootCounter, EntryName, EntrySpec};
use sealroot_deploy::boot::{file_path, BootDir, BootFile, FsKind, OurEntry, SwitchMethod};
use sealroot_testkit::{pattern, scratch, skip};
use sealroot_verity::{digest, AnyDigest, HashAlgorithm, Params};

pub const TMP: &str = env!("CARGO_TARGET_TMPDIR");

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A fresh ext4 filesystem of `mib` MiB loop-mounted in the test's private mount namespace
/// (its root is the partition's root, as `bootctl` wants). `None` (after a skip) without
/// `mkfs.ext4`.
pub struct Part {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
    pub work: PathBuf,
}

impl Drop for Part {
    /// Unmounts the partition, so that the scratch directory (its image and mount point)
    /// can be removed.
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.mnt, rustix::mount::UnmountFlags::DETACH);
    }
}

pub fn ext4(test: &str, mib: u64) -> Option<Part> {
    if !have("mkfs.ext4") {
        skip(test, "mkfs.ext4 (e2fsprogs) is not installed");
        return None;
    }
    let dir = scratch(TMP, "bls-");
    let image = dir.path().join("boot.img");
    let mnt = dir.path().join("boot");
    let work = dir.path().join("work");
    fs::create_dir(&mnt).unwrap();
    fs::create_dir(&work).unwrap();
    fs::File::create(&image)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    // No blocks reserved for root: the tests run as root and must see the partition full.
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .arg(&image)
        .status()
        .unwrap();
    assert!(st.success(), "mkfs.ext4");
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount -o loop");
    Some(Part {
        _dir: dir,
        mnt,
        work,
    })
}

/// Entries another OS, a user, or another boot loader's tooling put there, byte for byte as
/// such tools write them: CRLF endings, GRUB's keys, a missing last newline, a boot counter,
/// an upper-case suffix, and a file that is no entry at all.
pub const FOREIGN: &[(&str, &[u8])] = &[
    (
        "debian-6.1.0-13-amd64.conf",
        b"title Debian GNU/Linux 12 (bookworm)\r\nversion 6.1.0-13-amd64\r\nmachine-id 8f3e0c6b2a5d4e7f9a1b2c3d4e5f6a7b\r\nsort-key debian\r\nlinux /8f3e0c6b/6.1.0-13-amd64/linux\r\ninitrd /8f3e0c6b/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64\r\noptions root=UUID=5d2e ro quiet\r\n",
    ),
    (
        "fedora-6.5.6+2-1.conf",
        b"# hand edited, keep!\ntitle Fedora Linux (6.5.6-300.fc39.x86_64) 39\nversion 6.5.6-300.fc39.x86_64\nlinux /vmlinuz-6.5.6-300.fc39.x86_64\ninitrd /initramfs-6.5.6-300.fc39.x86_64.img\n\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class fedora\noptions  root=/dev/mapper/f-root ro   \n\toptions rhgb quiet\ntitle   Fedora 39 (custom)  ",
    ),
    (
        "Windows.CONF",
        b"title Windows Boot Manager\nefi /EFI/Microsoft/Boot/bootmgfw.efi\n",
    ),
    ("README", b"Entries here follow the Boot Loader Specification.\n"),
];

/// Writes [`FOREIGN`] into `loader/entries` (and a `loader/loader.conf` and
/// `loader/entries.srel` beside it, as `bootctl install` makes them).
pub fn put_foreign(mnt: &Path) {
    let entries = mnt.join("loader/entries");
    fs::create_dir_all(&entries).unwrap();
    for (name, bytes) in FOREIGN {
        fs::write(entries.join(name), bytes).unwrap();
    }
    fs::write(mnt.join("loader/loader.conf"), b"timeout 3\n").unwrap();
    fs::write(mnt.join("loader/entries.srel"), b"type1\n").unwrap();
}

/// A boot file made in `work`: its content and digest.
pub struct Blob {
    pub path: PathBuf,
    pub digest: AnyDigest,
    pub fd: OwnedFd,
}

pub fn blob(work: &Path, seed: u32, len: usize) -> Blob {
    let bytes = pattern(seed, len);
    let path = work.join(format!("blob-{seed}"));
    fs::write(&path, &bytes).unwrap();
    let digest = digest(&Params::composefs(HashAlgorithm::Sha256), &bytes);
    let fd = fs::File::open(&path).unwrap().into();
    Blob { path, digest, fd }
}

impl Blob {
    pub fn file(&self) -> BootFile<'_> {
        BootFile {
            digest: self.digest,
            source: self.fd.as_fd(),
        }
    }
}

/// One of two sets of sealroot's entries, `a` or `b`, booting kernel `k` with initramfs `i`.
/// Both have `sealroot-1.conf` (with different content); `a` has `sealroot-2+3.conf`, `b`
/// has `sealroot-3.conf`.
pub fn our_set(tag: char, k: &Blob, i: &Blob) -> Vec<OurEntry> {
    let (second, counter) = if tag == 'a' {
        (
            "sealroot-2",
            Some(BootCounter {
                left: 3,
                done: None,
            }),
        )
    } else {
        ("sealroot-3", None)
    };
    [("sealroot-1", None, 0), (second, counter, 1)]
        .into_iter()
        .map(|(stem, counter, n)| {
            let spec = EntrySpec {
                title: format!("Sealroot {tag}{n}"),
                version: Some(format!("{tag}.{n}")),
                machine_id: Some("0123456789abcdef0123456789abcdef".to_owned()),
                sort_key: Some(format!("sealroot-{n}")),
                linux: file_path(&k.digest),
                initrd: vec![file_path(&i.digest)],
                options: vec![
                    format!("composefs.digest=v1-sha256-12:{}", k.digest),
                    "rw".to_owned(),
                    format!("sealroot.set={tag}"),
                ],
                ..EntrySpec::default()
            };
            OurEntry {
                name: EntryName::ours(stem, counter).unwrap(),
                entry: spec.to_entry().unwrap(),
            }
        })
        .collect()
}

/// Every file of `loader/entries` by name, with its bytes.
pub fn live(mnt: &Path) -> BTreeMap<String, Vec<u8>> {
    files_of(&mnt.join("loader/entries"))
}

pub fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(rd) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    rd.map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The entries of a set, as files.
pub fn as_files(set: &[OurEntry]) -> BTreeMap<String, Vec<u8>> {
    set.iter()
        .map(|e| (e.name.to_string(), e.entry.to_bytes()))
        .collect()
}

/// sealroot's entries among `files`.
pub fn ours(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .filter(|(n, _)| n.starts_with("sealroot-"))
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect()
}

/// The others, but for sealroot's markers.
pub fn foreign(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .filter(|(n, _)| !n.starts_with("sealroot"))
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect()
}

/// [`FOREIGN`] as files.
pub fn foreign_fixture() -> BTreeMap<String, Vec<u8>> {
    FOREIGN
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_vec()))
        .collect()
}

/// Inode number and modification time of each foreign file in `loader/entries`.
pub fn identities(mnt: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    FOREIGN
        .iter()
        .map(|(n, _)| {
            let md = fs::metadata(mnt.join("loader/entries").join(n)).unwrap();
            (n.to_string(), (md.ino(), md.mtime(), md.mtime_nsec()))
        })
        .collect()
}

/// Every combination of filesystem kind and switch method the tests run.
pub const MODES: [(FsKind, SwitchMethod); 4] = [
    (FsKind::Ext4, SwitchMethod::Exchange),
    (FsKind::Vfat, SwitchMethod::Exchange),
    (FsKind::Ext4, SwitchMethod::PerEntry),
    (FsKind::Vfat, SwitchMethod::PerEntry),
];

/// Opens the partition as `fs`, switching by `method`.
pub fn open(mnt: &Path, fs: FsKind, method: SwitchMethod) -> BootDir {
    let mut dir = BootDir::open(mnt, fs).unwrap();
    dir.set_switch_method(method);
    dir
}

/// Whether every file every entry of `files` names (sealroot's and foreign with files on
/// the partition) exists.
pub fn bootable(mnt: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for (name, bytes) in ours(files) {
        let entry =
            sealroot_deploy::bls::Entry::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
        let paths = entry.boot_paths();
        if paths.is_empty() {
            return Err(format!("{name}: no boot paths"));
        }
        for p in paths {
            if !mnt.join(p.trim_start_matches('/')).is_file() {
                return Err(format!("{name}: {p} is missing"));
            }
        }
    }
    Ok(())
}

/// The usual start: a partition with the foreign entries and set a switched to, opened as
/// `fs`, switching by `method`.
pub struct Start {
    pub dir: BootDir,
    pub k: Blob,
    pub i: Blob,
    /// Last: unmounted once the rest is closed.
    pub p: Part,
}

pub fn start(test: &str, fs: FsKind, method: SwitchMethod, seed: u32) -> Option<Start> {
    let p = ext4(test, 32)?;
    put_foreign(&p.mnt);
    let (k, i) = (blob(&p.work, seed, 10_000), blob(&p.work, seed + 1, 10_000));
    let dir = open(&p.mnt, fs, method);
    dir.stage(&our_set('a', &k, &i), &[k.file(), i.file()])
        .unwrap()
        .switch()
        .unwrap();
    Some(Start { dir, k, i, p })
}
