//! The strict reader against `fsck.erofs` and the kernel: images mutated from ones the writer
//! makes (the small C conformance vectors and hand-made trees with every file type, layout and
//! xattr kind) must be refused by [`erofs::read`] whenever `fsck.erofs` (Debian erofs-utils)
//! flags them, and everything the reader accepts must be canonical: writing the tree it reads
//! gives the same bytes again, so two different images never read as the same tree.
//!
//! The mutations are seeded (the same every run) and bounded (a few thousand), and only images
//! the reader accepts are handed to `fsck.erofs`, so the test stays cheap. As root, a sample of
//! the accepted images is also mounted (in a private mount namespace) and walked: the kernel,
//! whose checks are the ones that matter, must accept them too.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use sealroot_format::erofs::{self, WriteOptions};
use sealroot_format::{dumpfile, Tree};
use sealroot_testkit::{vectors, Rng};

/// How many mutated images each seed image gives.
const MUTATIONS_PER_SEED: usize = 220;

/// Dumpfiles of small trees that between them hold every layout the writer makes.
fn hand_made() -> Vec<(String, Vec<u8>)> {
    let root = "/ 4096 40755 4 0 0 0 1700000000.0 - - - user.root=r\n";
    let digest = "a".repeat(64);
    let mut all_types = String::from(root);
    let content = |n: usize| "x".repeat(n);
    all_types += &format!(
        "/a 10 100644 1 1000 1000 0 1700000000.0 - {} - user.shared=v security.x=y\n",
        content(10)
    );
    all_types += &format!(
        "/b 4097 100644 2 70000 5 0 1700000001.5 - {} - user.shared=v\n",
        content(4097)
    );
    all_types += &format!("/c 5000 100600 1 0 0 0 1.0 - {} -\n", content(5000));
    let payload = format!("{}/{}", &digest[..2], &digest[2..]);
    all_types +=
        &format!("/ext 123456 100644 1 0 0 0 1700000000.0 {payload} - {digest} user.shared=v\n");
    all_types +=
        &format!("/huge 9007199254740992 100644 1 0 0 0 1700000000.0 {payload} - {digest}\n");
    all_types += "/empty 0 100644 1 0 0 0 1700000000.0 - - -\n";
    all_types += "/link 7 120777 1 0 0 0 1700000000.0 /a/b/cd - -\n";
    all_types += &format!(
        "/longlink 4000 120777 1 0 0 0 1700000000.0 {} - -\n",
        "l".repeat(4000)
    );
    all_types += "/chr 0 20644 1 0 0 259 1700000000.0 - - -\n";
    all_types += "/blk 0 60600 1 0 0 66000 1700000000.0 - - -\n";
    all_types += "/fifo 0 10644 1 0 0 0 1700000000.0 - - -\n";
    all_types += "/sock 0 140755 1 0 0 0 1700000000.0 - - -\n";
    all_types += "/whiteout 0 20000 1 0 0 0 1700000000.0 - - -\n";
    all_types += "/hard 0 @100644 0 0 0 0 0.0 /b - -\n";
    all_types +=
        "/d 4096 40700 2 0 0 0 1600000000.123 - - - trusted.overlay.opaque=y user.shared=v\n";
    all_types += "/d/inner 3 100644 1 0 0 0 1700000000.0 - abc - system.posix_acl_access=\\x02\\x00\\x00\\x00\\x01\\x00\\x07\\x00\\xff\\xff\\xff\\xff\\x04\\x00\\x05\\x00\\xff\\xff\\xff\\xff\\x20\\x00\\x05\\x00\\xff\\xff\\xff\\xff\n";
    let mut big_dir = String::from(root);
    big_dir += "/many 4096 40755 2 0 0 0 1700000000.0 - - -\n";
    for i in 0..300 {
        big_dir +=
            &format!("/many/file-with-a-longer-name-{i:04} 1 100644 1 0 0 0 1700000000.0 - y -\n");
    }
    let mut deep = String::from(root);
    let mut path = String::new();
    for i in 0..20 {
        path += &format!("/d{i}");
        deep += &format!("{path} 4096 40755 2 0 0 0 1700000000.{i} - - -\n");
    }
    vec![
        ("all types".to_owned(), all_types.into_bytes()),
        ("big directory".to_owned(), big_dir.into_bytes()),
        ("deep".to_owned(), deep.into_bytes()),
    ]
}

/// The images the mutations start from, with the options they were written with.
fn seeds() -> Images {
    let mut out = Vec::new();
    let mut add = |name: String, dump: &[u8], options: WriteOptions| {
        let tree = dumpfile::parse_compat(dump).unwrap_or_else(|e| panic!("{name}: {e}"));
        let image = erofs::write(&tree, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, image));
    };
    for (name, _) in vectors::checksums() {
        if name.starts_with("cs9-") || name.starts_with("config") {
            continue;
        }
        let options = match vectors::version(&name) {
            Some(v) => WriteOptions {
                min_version: v,
                max_version: v,
            },
            None => WriteOptions::default(),
        };
        add(name.clone(), &vectors::load(&name), options);
    }
    for (name, dump) in hand_made() {
        for v in [0, 1] {
            let options = WriteOptions {
                min_version: v,
                max_version: v,
            };
            add(format!("{name} (v{v})"), &dump, options);
        }
    }
    out
}

/// Values worth writing into a field.
const VALUES: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    0x7f,
    0x80,
    0xff,
    0xfff,
    0x1000,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 53,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// One mutation of `image`: a field of 1, 2, 4 or 8 bytes (aligned) in the metadata set to an
/// interesting or random value, or a bit flipped; described for failure messages.
fn mutate(image: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let sb = erofs::read_superblock(image).expect("a seed image");
    let meta_end = ((u64::from(sb.xattr_blkaddr) + 1) * erofs::BLOCK_SIZE) as usize;
    let meta_end = meta_end.min(image.len());
    let mut copy = image.to_vec();
    // Mostly the inodes and what follows them; sometimes the headers, sometimes anywhere.
    let range = match rng.below(10) {
        0 => 0..1024 + 128,
        1 => 0..image.len(),
        _ => 1024 + 128..meta_end,
    };
    let width = *rng.pick(&[1usize, 2, 2, 4, 4, 8]);
    let pos = (range.start + rng.index(range.len() - width)) / width * width;
    let old = u64::from_le_bytes({
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(&copy[pos..pos + width]);
        b
    });
    let new = match rng.below(4) {
        0 => old ^ (1 << rng.below(width as u64 * 8)),
        1 => old.wrapping_add(*rng.pick(&[1u64, u64::MAX, 32, 4096])),
        2 => rng.next_u64(),
        _ => *rng.pick(VALUES),
    };
    copy[pos..pos + width].copy_from_slice(&new.to_le_bytes()[..width]);
    (
        format!("{width} bytes at {pos}: {old:#x} -> {:#x}", {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(&copy[pos..pos + width]);
            u64::from_le_bytes(b)
        }),
        copy,
    )
}

/// A mutated image the reader accepted.
struct Accepted {
    /// The seed's name and the mutation, for messages.
    what: String,
    image: Vec<u8>,
    /// Index of the seed in [`seeds`].
    seed: usize,
    tree: Tree,
    version: u32,
    /// Whether it reads as the very tree its seed reads as.
    same_tree: bool,
}

/// Named images.
type Images = Vec<(String, Vec<u8>)>;

/// The seeds, and every mutation of them the reader accepts (with how many were tried).
fn accepted_mutations() -> (Images, Vec<Accepted>, usize) {
    let per_seed = std::env::var("SEALROOT_ORACLE_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS_PER_SEED);
    let seeds = seeds();
    let mut rng = Rng::new(2026);
    let mut total = 0;
    let mut out = Vec::new();
    for (seed, (name, image)) in seeds.iter().enumerate() {
        let original = erofs::read(image).expect("a seed image reads");
        for _ in 0..per_seed {
            let (what, copy) = mutate(image, &mut rng);
            if copy == *image {
                continue;
            }
            total += 1;
            if let Ok((tree, sb)) = erofs::read_with_superblock(&copy) {
                out.push(Accepted {
                    what: format!("{name}: {what}"),
                    image: copy,
                    seed,
                    same_tree: tree == original,
                    tree,
                    version: sb.composefs_version,
                });
            }
        }
    }
    (seeds, out, total)
}

/// What `fsck.erofs` says of `image`: `None` when it finds nothing wrong, else its complaint.
fn fsck(image: &[u8], scratch: &Path) -> Option<String> {
    let path = scratch.join("image");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(image))
        .expect("writing the image to check");
    let out = Command::new("fsck.erofs")
        .arg(&path)
        .output()
        .expect("running fsck.erofs");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (!out.status.success() || text.contains("<E>")).then(|| {
        text.lines()
            .find(|l| l.contains("<E>"))
            .unwrap_or(text.trim())
            .to_owned()
    })
}

/// Writing `tree` with format `version`: the bytes, if the writer takes it.
fn rewrite(tree: &Tree, version: u32) -> Option<Vec<u8>> {
    let options = WriteOptions {
        min_version: version,
        max_version: version,
    };
    erofs::write(tree, &options).ok()
}

/// Every accepted mutation passes `fsck.erofs`, and its tree is stable: written again and
/// read, it is the same tree. (The bytes may differ where the mutation hit bytes no reader
/// looks at, the kernel's included: padding, `i_ino`, reserved fields; see the counts.)
#[test]
fn reader_refuses_what_fsck_erofs_flags() {
    if Command::new("fsck.erofs").arg("-V").output().is_err() {
        sealroot_testkit::skip(
            "reader_refuses_what_fsck_erofs_flags",
            "fsck.erofs (erofs-utils) is not installed",
        );
        return;
    }
    let scratch = sealroot_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "oracle-");
    let report = std::env::var_os("SEALROOT_ORACLE_REPORT").is_some();
    let (seeds, accepted, total) = accepted_mutations();
    for (name, image) in &seeds {
        assert!(
            fsck(image, scratch.path()).is_none(),
            "{name}: seed flagged"
        );
    }
    let mut flagged = Vec::new();
    let mut unstable = Vec::new();
    let (mut identical, mut same_tree) = (0, 0);
    for case in &accepted {
        if let Some(complaint) = fsck(&case.image, scratch.path()) {
            if let Some(dir) = std::env::var_os("SEALROOT_ORACLE_KEEP") {
                let file = Path::new(&dir).join(format!("flagged-{}", flagged.len()));
                std::fs::write(file, &case.image).expect("keeping a flagged image");
            }
            flagged.push(format!("{}: {complaint}", case.what));
        }
        match rewrite(&case.tree, case.version) {
            Some(again) if again == case.image => identical += 1,
            Some(again) if erofs::read(&again).is_ok_and(|t| t == case.tree) => {
                same_tree += usize::from(case.same_tree);
                if report {
                    eprintln!(
                        "NONCANON {}: same tree as the seed: {}",
                        case.what, case.same_tree
                    );
                }
            }
            _ => unstable.push(case.what.clone()),
        }
    }
    eprintln!(
        "{total} mutated images, {} accepted: {} flagged by fsck.erofs; rewritten {identical} \
         byte-identical, {} not ({same_tree} of those read as their seed's tree)",
        accepted.len(),
        flagged.len(),
        accepted.len() - identical,
    );
    assert!(
        flagged.is_empty(),
        "accepted but flagged by fsck.erofs:\n{}",
        flagged.join("\n")
    );
    assert!(
        unstable.is_empty(),
        "accepted, but the tree does not survive writing and reading:\n{}",
        unstable.join("\n")
    );
}

/// How many accepted mutations the kernel mounts (a sample: each mount costs a few ms).
const KERNEL_SAMPLE: usize = 60;

/// What the kernel shows of `image`, mounted at a new directory under `scratch`: `Err` when
/// it refuses to mount it or to show some of it.
fn kernel_view(
    image: &[u8],
    scratch: &Path,
    n: usize,
) -> Result<sealroot_testkit::Snapshot, String> {
    let file = scratch.join(format!("image-{n}"));
    let target = scratch.join(format!("mnt-{n}"));
    std::fs::write(&file, image).expect("writing the image");
    std::fs::create_dir(&target).expect("a mount point");
    sealroot_testkit::mount_erofs(&file, &target).map_err(|e| format!("mount: {e}"))?;
    // Not the contents: external files are holes of their (possibly huge) size.
    let fields = sealroot_testkit::Fields {
        content: false,
        nlink: true,
        dir_nlink: true,
    };
    std::panic::catch_unwind(|| sealroot_testkit::Snapshot::of_dir(&target, fields))
        .map_err(|_| "walking the mounted tree failed".to_owned())
}

/// The first path where two snapshots differ, with both entries.
fn first_difference(
    want: &sealroot_testkit::Snapshot,
    got: &sealroot_testkit::Snapshot,
) -> Option<String> {
    let paths: std::collections::BTreeSet<_> = want.0.keys().chain(got.0.keys()).collect();
    paths.into_iter().find_map(|path| {
        let (w, g) = (want.0.get(path), got.0.get(path));
        (w != g).then(|| format!("/{}: {w:?} vs {g:?}", String::from_utf8_lossy(path)))
    })
}

sealroot_testkit::mount_test! {
    /// The kernel mounts a sample of what the reader accepts and shows all of it; where the
    /// reader reads a mutated image as its seed's tree, the kernel shows the seed's tree too.
    fn kernel_mounts_what_the_reader_accepts() {
        let scratch = sealroot_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "oracle-mount-");
        let (seeds, accepted, _) = accepted_mutations();
        let step = (accepted.len() / KERNEL_SAMPLE).max(1);
        let mut seed_views = std::collections::HashMap::new();
        let mut failures = Vec::new();
        let mut n = 0;
        for case in accepted.iter().step_by(step) {
            n += 1;
            let view = match kernel_view(&case.image, scratch.path(), n) {
                Ok(view) => view,
                Err(e) => {
                    failures.push(format!("{}: {e}", case.what));
                    continue;
                }
            };
            if case.same_tree {
                let seed = seed_views.entry(case.seed).or_insert_with(|| {
                    n += 1;
                    kernel_view(&seeds[case.seed].1, scratch.path(), n).expect("the seed mounts")
                });
                if let Some(diff) = first_difference(seed, &view) {
                    failures.push(format!("{}: the kernel shows another tree: {diff}", case.what));
                }
            }
        }
        eprintln!("{n} images mounted");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
