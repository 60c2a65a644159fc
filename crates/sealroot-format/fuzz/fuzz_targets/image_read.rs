//! Any bytes given to the image reader: it must not panic. A tree it accepts is written again
//! with the image's own format version; the writer may refuse it (a fuzzed image can hold
//! what no valid tree gives), but must not panic either. An image it writes must read back
//! to the same tree, up to what the writer derives itself, and write again to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_format::{dumpfile, erofs, Content, FileType, Inode, Tree};

fuzz_target!(|data: &[u8]| {
    let Ok((tree, sb)) = erofs::read_with_superblock(data) else {
        return;
    };
    check_shape(&tree);
    let options = erofs::WriteOptions {
        min_version: sb.composefs_version,
        max_version: sb.composefs_version,
    };
    let Ok(image) = erofs::write(&tree, &options) else {
        return;
    };
    let (again, sb_again) =
        erofs::read_with_superblock(&image).expect("an image the writer made reads back");
    assert_eq!(sb_again.composefs_version, sb.composefs_version);
    let version = sb.composefs_version;
    let (want, got) = (
        derived_cleared(&tree, version),
        derived_cleared(&again, version),
    );
    if want != got {
        panic!(
            "read(write(read(data))) != read(data): {}",
            first_difference(&want, &got)
        );
    }
    let image_again = erofs::write(&again, &options).expect("a tree read back writes again");
    assert!(image_again == image, "write(read(image)) != image");
});

/// `tree` without what the writer computes on its own, so the image it came from had no say:
/// a directory's link count and size, the payload and digest of an empty file, an empty
/// payload, the order of xattrs (sorted when written, read back inline ones first, then
/// shared ones, and which are shared depends on the whole tree), and from format version 1
/// the `opaque` marks of a directory holding a whiteout (read back as ordinary xattrs, as C
/// does).
fn derived_cleared(tree: &Tree, version: u32) -> Tree {
    let mut tree = tree.clone();
    for i in 0..tree.inodes.len() {
        let marked = version >= 1
            && tree.inodes[i].entries().is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| !e.hardlink && is_whiteout(&tree.inodes[e.inode.index()]))
            });
        let inode = &mut tree.inodes[i];
        match &mut inode.content {
            Content::Directory(_) => {
                inode.stat.nlink = 0;
                inode.stat.size = 0;
            }
            Content::Regular(file) => {
                // The writer ignores a payload and a digest on an empty file, and an empty
                // payload anywhere; the reader keeps what the image says, as C does.
                if inode.stat.size == 0 {
                    file.payload = None;
                    file.digest = None;
                }
                file.payload = file.payload.take().filter(|p| !p.is_empty());
            }
            _ => {}
        }
        if marked {
            inode.xattrs.retain(|x| {
                x.name != b"trusted.overlay.opaque" && x.name != b"user.overlay.opaque"
            });
        }
        inode.xattrs.sort();
    }
    tree
}

fn is_whiteout(inode: &Inode) -> bool {
    inode.stat.file_type() == Some(FileType::CharDevice) && inode.stat.rdev == 0
}

/// What every tree the reader returns must be: every entry names an inode of the tree,
/// every inode but the root has exactly one owning name, and no hard link names a directory.
fn check_shape(tree: &Tree) {
    assert!(tree.root().entries().is_some(), "root not a directory");
    let mut owners = vec![0u32; tree.inodes.len()];
    for inode in &tree.inodes {
        for e in inode.entries().unwrap_or_default() {
            let target = tree.inodes.get(e.inode.index()).expect("dangling inode");
            if e.hardlink {
                assert!(target.entries().is_none(), "hard link to a directory");
            } else {
                owners[e.inode.index()] += 1;
            }
        }
    }
    assert_eq!(owners[0], 0, "the root has a name");
    assert!(
        owners[1..].iter().all(|&n| n == 1),
        "an inode not owned once"
    );
}

/// Where two trees first differ, for the crash report: the first differing dumpfile lines.
fn first_difference(a: &Tree, b: &Tree) -> String {
    let (Ok(x), Ok(y)) = (dumpfile::to_vec(a), dumpfile::to_vec(b)) else {
        return format!("{a:?}\nthen\n{b:?}");
    };
    let lines = |t: &[u8]| -> Vec<String> {
        t.split(|&c| c == b'\n')
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    };
    let (x, y) = (lines(&x), lines(&y));
    match x.iter().zip(&y).find(|(l, m)| l != m) {
        Some((l, m)) => format!("\n{l}\nthen\n{m}"),
        None => format!("{} dump lines, then {}", x.len(), y.len()),
    }
}
