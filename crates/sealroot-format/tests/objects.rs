//! Commits and tree objects: a tree split into objects and assembled again writes the same
//! image; the encodings are canonical and their parsers strict and panic-free; diff reads
//! only what changed.

use std::collections::{BTreeMap, HashMap};

use sealroot_format::objects::{
    self, assemble, derive_image, diff, split, Attrs, ChangeKind, Commit, DirTree, ObjectKind,
};
use sealroot_format::{dumpfile, erofs, Content, Tree};
use sealroot_testkit::vectors;
use sealroot_verity::Sha256Digest;

/// A vector's tree made storable: every file with content outside the image gets a digest
/// (its own, or one made from its path) and that digest's object path as payload.
fn storable(mut tree: Tree) -> Tree {
    for (i, inode) in tree.inodes.iter_mut().enumerate() {
        let size = inode.stat.size;
        if let Content::Regular(f) = &mut inode.content {
            if f.inline.is_some() {
                f.digest = None;
                f.payload = None;
                continue;
            }
            if size == 0 && f.digest.is_none() {
                f.payload = None;
                continue;
            }
            let d = f
                .digest
                .unwrap_or_else(|| objects::object_id(format!("file {i}").as_bytes()));
            f.digest = Some(d);
            f.payload = Some(d.object_path().into_bytes());
        }
    }
    tree
}

type Store = HashMap<Sha256Digest, Vec<u8>>;

fn store_of(s: &objects::Split) -> Store {
    s.objects
        .iter()
        .map(|(_, id, bytes)| (*id, bytes.clone()))
        .collect()
}

fn fetcher(
    store: &Store,
) -> impl FnMut(ObjectKind, &Sha256Digest) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>
       + '_ {
    |_, id| {
        store
            .get(id)
            .cloned()
            .ok_or_else(|| format!("object {id} is missing").into())
    }
}

#[test]
fn every_vector_round_trips_through_objects_to_the_same_image() {
    let mut checked = 0;
    for (name, _) in vectors::checksums() {
        let tree = storable(dumpfile::parse_compat(&vectors::load(&name)).unwrap());
        let options = match vectors::version(&name) {
            Some(v) => erofs::WriteOptions {
                min_version: v,
                max_version: v,
            },
            None => erofs::WriteOptions::default(),
        };
        let Ok(image) = erofs::write(&tree, &options) else {
            continue;
        };
        let format = erofs::read_superblock(&image).unwrap().composefs_version;
        let parts = split(&tree).unwrap_or_else(|e| panic!("{name}: {e}"));
        let store = store_of(&parts);
        let back = assemble(&parts.tree, &parts.dirmeta, &mut fetcher(&store))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = erofs::write(
            &back,
            &erofs::WriteOptions {
                min_version: format,
                max_version: format,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(image == again, "{name}: image differs after objects");
        let (digest, size) = derive_image(&back, format, None).unwrap();
        assert_eq!(size, image.len() as u64);
        assert_eq!(digest, sealroot_verity::sha256_digest(&image), "{name}");
        // Splitting the assembled tree gives the very same objects.
        let again = split(&back).unwrap();
        assert_eq!((again.tree, again.dirmeta), (parts.tree, parts.dirmeta));
        // Every object parses and is canonical.
        for (kind, _, bytes) in &parts.objects {
            match kind {
                ObjectKind::DirTree => assert_eq!(DirTree::parse(bytes).unwrap().encode(), *bytes),
                ObjectKind::DirMeta => {
                    assert_eq!(
                        Attrs::parse_dirmeta(bytes).unwrap().encode_dirmeta(),
                        *bytes
                    )
                }
                ObjectKind::Commit => unreachable!(),
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} vectors checked");
}

#[test]
fn shared_directories_are_shared_objects() {
    let mut text = Vec::new();
    text.extend_from_slice(b"/ 0 40755 2 0 0 0 0.0 - - -\n");
    for top in ["a", "b"] {
        text.extend_from_slice(format!("/{top} 0 40755 2 0 0 0 0.0 - - -\n").as_bytes());
        text.extend_from_slice(format!("/{top}/same 0 40755 2 0 0 0 0.0 - - -\n").as_bytes());
        text.extend_from_slice(
            format!("/{top}/same/f 5 100644 1 0 0 0 0.0 - hello -\n").as_bytes(),
        );
    }
    let tree = dumpfile::parse_compat(&text).unwrap();
    let parts = split(&tree).unwrap();
    // root, a (= b), same: three dirtrees; one dirmeta for all.
    let trees = parts
        .objects
        .iter()
        .filter(|o| o.0 == ObjectKind::DirTree)
        .count();
    assert_eq!(trees, 3, "root, and a = b, and same (in both)");
    assert_eq!(parts.objects.len(), 4);
    // Still assembles into two separate copies.
    let store = store_of(&parts);
    let back = assemble(&parts.tree, &parts.dirmeta, &mut fetcher(&store)).unwrap();
    assert_eq!(
        erofs::write(&back, &Default::default()).unwrap(),
        erofs::write(&tree, &Default::default()).unwrap()
    );
}

#[test]
fn hard_links_survive() {
    let text = b"/ 0 40755 2 0 0 0 0.0 - - -\n\
/a 0 40755 2 0 0 0 0.0 - - -\n\
/a/owner 3 100600 2 7 8 0 12.5 - abc - user.x=1\n\
/z 0 40755 2 0 0 0 0.0 - - -\n\
/z/link 0 @120000 - - - - 0.0 /a/owner - -\n";
    let tree = dumpfile::parse_compat(text).unwrap();
    let parts = split(&tree).unwrap();
    let store = store_of(&parts);
    let back = assemble(&parts.tree, &parts.dirmeta, &mut fetcher(&store)).unwrap();
    assert_eq!(
        erofs::write(&back, &Default::default()).unwrap(),
        erofs::write(&tree, &Default::default()).unwrap()
    );
    let z = store
        .values()
        .find(|b| b.windows(2).any(|w| w == b"h "))
        .unwrap();
    assert!(String::from_utf8_lossy(z).contains("h link /a/owner\n"));
}

#[test]
fn a_corrupt_or_missing_object_is_named() {
    let tree = dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/d 0 40700 2 0 0 0 0.0 - - -\n/d/f 2 100644 1 0 0 0 0.0 - hi -\n").unwrap();
    let parts = split(&tree).unwrap();
    let mut store = store_of(&parts);
    let (_, sub, _) = parts.objects[0].clone();
    store.get_mut(&sub).unwrap()[20] ^= 1;
    let err = assemble(&parts.tree, &parts.dirmeta, &mut fetcher(&store))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&sub.to_hex()) && err.contains("corrupt") && err.contains("/d"),
        "{err}"
    );
    store.remove(&sub);
    let err = assemble(&parts.tree, &parts.dirmeta, &mut fetcher(&store))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing") && err.contains("/d"), "{err}");
}

fn sample_commit() -> Commit {
    Commit {
        tree: objects::object_id(b"t"),
        dirmeta: objects::object_id(b"m"),
        parent: Some(objects::object_id(b"p")),
        image: objects::object_id(b"i"),
        image_format: 1,
        timestamp: 1_700_000_000,
        version: Some("42.1".into()),
        metadata: BTreeMap::from([
            ("build.host".to_string(), "ci 7".to_string()),
            ("a".to_string(), "b=c\n".to_string()),
        ]),
        subject: "Update to 42.1 — with ünïcode".into(),
        body: "line one\nline two\\".into(),
    }
}

#[test]
fn commits_round_trip_and_are_canonical() {
    let c = sample_commit();
    let bytes = c.encode();
    assert_eq!(Commit::parse(&bytes).unwrap(), c);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("sealroot-commit 1\ntree "), "{text}");
    assert!(
        text.contains("\nmeta a b=c\\n\nmeta build.host ci\\x207\n"),
        "{text}"
    );
    // No parent, no version, nothing said.
    let bare = Commit {
        parent: None,
        version: None,
        metadata: BTreeMap::new(),
        subject: String::new(),
        body: String::new(),
        ..c
    };
    assert_eq!(Commit::parse(&bare.encode()).unwrap(), bare);

    // Lines swapped, numbers respelt, duplicated or unknown lines: refused.
    let swap = text.replacen("tree ", "TMP ", 1);
    let lines: Vec<&str> = swap.lines().collect();
    let mut reordered = vec![lines[0], lines[2], lines[1]];
    reordered.extend(&lines[3..]);
    let reordered = reordered.join("\n").replace("TMP ", "tree ") + "\n";
    for bad in [
        reordered,
        text.replace("timestamp 1700000000", "timestamp +1700000000"),
        text.replace("timestamp 1700000000", "timestamp 01700000000"),
        text.replace("image-format 1", "image-format 2"),
        text.replace("sealroot-commit 1", "sealroot-commit 2"),
        text.clone() + "subject again\n",
        text.clone() + "colour blue\n",
        text.trim_end().to_string(),
        text.replace("meta a", "meta a/b"),
        text.replace("image sha256:", "image sha512:"),
    ] {
        assert!(Commit::parse(bad.as_bytes()).is_err(), "accepted:\n{bad}");
    }
}

#[test]
fn parsers_never_panic_on_mutations() {
    let text = b"/ 0 40755 2 0 0 0 0.0 - - -\n/d 0 40700 2 0 0 0 5.5 - - - user.a=b\n/d/f 2 100644 1 0 0 0 0.0 - hi -\n/d/l 3 120777 1 0 0 0 0.0 abc - -\n/d/n 0 20644 1 0 0 259 0.0 - - -\n/g 70000 100644 1 0 0 0 0.0 ab/cdef - abcdef0000000000000000000000000000000000000000000000000000000000\n";
    let tree = storable(dumpfile::parse_compat(text).unwrap());
    let parts = split(&tree).unwrap();
    let mut inputs: Vec<(ObjectKind, Vec<u8>)> = parts
        .objects
        .iter()
        .map(|(k, _, b)| (*k, b.clone()))
        .collect();
    inputs.push((ObjectKind::Commit, sample_commit().encode()));
    let mut accepted = 0;
    let mut seed = 0x2545_f491_u32;
    for (kind, good) in &inputs {
        for i in 0..good.len() {
            for delta in [1u8, 0x20, 0x80, 0xff] {
                let mut m = good.clone();
                m[i] = m[i].wrapping_add(delta);
                accepted += usize::from(reparse(*kind, &m));
            }
            accepted += usize::from(reparse(*kind, &good[..i]));
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let mut m = good.clone();
            m.insert(i, (seed & 0xff) as u8);
            accepted += usize::from(reparse(*kind, &m));
        }
    }
    // Some mutations are valid objects (a digit in a digest); each was canonical.
    println!("{accepted} mutations accepted, all canonical");
}

/// Parses; if accepted, checks the re-encoding is the input.
fn reparse(kind: ObjectKind, bytes: &[u8]) -> bool {
    let re = match kind {
        ObjectKind::Commit => Commit::parse(bytes).map(|c| c.encode()),
        ObjectKind::DirTree => DirTree::parse(bytes).map(|t| t.encode()),
        ObjectKind::DirMeta => Attrs::parse_dirmeta(bytes).map(|a| a.encode_dirmeta()),
    };
    match re {
        Ok(re) => {
            assert_eq!(re, bytes, "accepted a non-canonical {kind}");
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn diff_reads_only_what_changed() {
    let base = "/ 0 40755 2 0 0 0 0.0 - - -\n\
/etc 0 40755 2 0 0 0 0.0 - - -\n\
/etc/conf 3 100644 1 0 0 0 0.0 - abc -\n\
/etc/gone 3 100644 1 0 0 0 0.0 - abc -\n\
/usr 0 40755 2 0 0 0 0.0 - - -\n\
/usr/old 0 40755 2 0 0 0 0.0 - - -\n\
/usr/old/x 1 100644 1 0 0 0 0.0 - x -\n\
/usr/same 1 100644 1 0 0 0 0.0 - s -\n";
    let next = "/ 0 40755 2 0 0 0 0.0 - - -\n\
/etc 0 40755 2 0 0 0 0.0 - - -\n\
/etc/conf 3 100600 1 0 0 0 0.0 - abc -\n\
/etc/new 3 100644 1 0 0 0 0.0 - abc -\n\
/usr 0 40755 2 0 0 0 0.0 - - -\n\
/usr/old 1 100644 1 0 0 0 0.0 - y -\n\
/usr/same 1 100644 1 0 0 0 0.0 - s -\n";
    let a = split(&dumpfile::parse_compat(base.as_bytes()).unwrap()).unwrap();
    let b = split(&dumpfile::parse_compat(next.as_bytes()).unwrap()).unwrap();
    let mut store = store_of(&a);
    store.extend(store_of(&b));
    let changes = diff(
        (&a.tree, &a.dirmeta),
        (&b.tree, &b.dirmeta),
        &mut fetcher(&store),
    )
    .unwrap();
    let shown: Vec<(String, ChangeKind)> = changes
        .iter()
        .map(|c| (String::from_utf8(c.path.clone()).unwrap(), c.kind))
        .collect();
    use ChangeKind::*;
    let want: Vec<(String, ChangeKind)> = [
        ("/etc/conf", Modified),
        ("/etc/gone", Removed),
        ("/etc/new", Added),
        ("/usr/old", Added),
        ("/usr/old", Removed),
        ("/usr/old/x", Removed),
    ]
    .into_iter()
    .map(|(p, k)| (p.to_string(), k))
    .collect();
    assert_eq!(shown, want);
    // The same tree twice: nothing read but the roots' ids.
    let mut nothing = |_: ObjectKind,
                       _: &Sha256Digest|
     -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Err("nothing should be read".into())
    };
    assert!(
        diff((&a.tree, &a.dirmeta), (&a.tree, &a.dirmeta), &mut nothing)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unstorable_trees_are_refused_by_path() {
    let tree = dumpfile::parse_compat(
        b"/ 0 40755 2 0 0 0 0.0 - - -\n/big 9000 100644 1 0 0 0 0.0 some/where - -\n",
    )
    .unwrap();
    let err = split(&tree).unwrap_err().to_string();
    assert!(err.starts_with("/big: "), "{err}");
}

/// A dirtree of `lines` (after the header).
fn dirtree_of(lines: &str) -> Vec<u8> {
    format!("sealroot-dirtree 1\n{lines}").into_bytes()
}

#[test]
fn a_hard_link_target_has_one_spelling() {
    let f = "f f 100644 0 0 0.0 1 - x\n";
    for bad in [
        "h g //f\n",
        "h g /f/\n",
        "h g f\n",
        "h g /./f\n",
        "h g /a/../f\n",
    ] {
        let text = format!("{f}{bad}");
        let err = DirTree::parse(&dirtree_of(&text)).unwrap_err().to_string();
        assert!(err.contains("hard link target"), "{bad:?}: {err}");
    }
    assert!(DirTree::parse(&dirtree_of(&format!("{f}h g /f\n"))).is_ok());
    // Through another hard link: refused when assembled.
    let root = dirtree_of(&format!("{f}h g /z/f\nh z /f\n"));
    let meta = Attrs {
        mode: 0o40755,
        ..Default::default()
    }
    .encode_dirmeta();
    let store: Store = [
        (objects::object_id(&root), root.clone()),
        (objects::object_id(&meta), meta.clone()),
    ]
    .into_iter()
    .collect();
    let err = assemble(
        &objects::object_id(&root),
        &objects::object_id(&meta),
        &mut fetcher(&store),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/g") && err.contains("another hard link"),
        "{err}"
    );
}

#[test]
fn modes_are_16_bits() {
    let err = DirTree::parse(&dirtree_of("f f 77100644 0 0 0.0 1 - x\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mode"), "{err}");
    // A tree carrying higher bits (the C image keeps 16) splits into the 16-bit objects.
    let mut tree =
        dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/f 1 100644 1 0 0 0 0.0 - x -\n")
            .unwrap();
    let plain = split(&tree).unwrap();
    tree.inodes[1].stat.mode |= 0o77000000;
    assert_eq!(split(&tree).unwrap().tree, plain.tree);
}

#[test]
fn empty_version_and_metadata_values_survive() {
    let mut c = sample_commit();
    c.version = Some(String::new());
    c.metadata.insert("empty".into(), String::new());
    assert_eq!(Commit::parse(&c.encode()).unwrap(), c);
}
