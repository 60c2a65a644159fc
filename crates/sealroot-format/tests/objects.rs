//! Commits and tree objects: a tree split into objects and assembled again writes the same
//! image; the encodings are canonical and their parsers strict and panic-free; diff reads
//! only what changed.

use std::collections::{BTreeMap, HashMap};

use sealroot_format::objects::{
    self, assemble, derive_image, diff, split, Attrs, ChangeKind, Commit, DirTree, ObjectKind,
};
use sealroot_format::{dumpfile, erofs, Content, Tree};
use sealroot_testkit::{vectors, Rng};
use sealroot_verity::{AnyDigest, HashAlgorithm, Params};

const SHA256: HashAlgorithm = HashAlgorithm::Sha256;
const SHA512: HashAlgorithm = HashAlgorithm::Sha512;

/// The sha256 id of an object with these bytes.
fn id(bytes: &[u8]) -> AnyDigest {
    objects::object_id(bytes, SHA256)
}

/// A vector's tree made storable: every file with content outside the image gets a digest
/// (its own, or one made from its path) and that digest's object path as payload.
fn storable(tree: Tree) -> Tree {
    storable_as(tree, SHA256)
}

/// [`storable`] for a repository of `algorithm`: a sha512 one gives every file a sha512
/// digest made from its own (or its path).
fn storable_as(mut tree: Tree, algorithm: HashAlgorithm) -> Tree {
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
            let d = match f.digest {
                Some(d) if d.algorithm() == algorithm => d,
                Some(d) => objects::object_id(d.as_bytes(), algorithm),
                None => objects::object_id(format!("file {i}").as_bytes(), algorithm),
            };
            f.digest = Some(d);
            f.payload = Some(d.object_path().into_bytes());
        }
    }
    tree
}

type Store = HashMap<AnyDigest, Vec<u8>>;

fn store_of(s: &objects::Split) -> Store {
    s.objects
        .iter()
        .map(|(_, id, bytes)| (*id, bytes.clone()))
        .collect()
}

fn fetcher(
    store: &Store,
) -> impl FnMut(ObjectKind, &AnyDigest) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> + '_
{
    |_, id| {
        store
            .get(id)
            .cloned()
            .ok_or_else(|| format!("object {id} is missing").into())
    }
}

#[test]
fn every_vector_round_trips_through_objects_to_the_same_image() {
    vectors_round_trip(SHA256);
}

/// The same with sha512 file digests and sha512 object names (composefs-rs's sha512
/// repositories): the image, with sha512 metacopy digests, survives the objects too.
#[test]
fn every_vector_round_trips_through_sha512_objects_to_the_same_image() {
    vectors_round_trip(SHA512);
}

fn vectors_round_trip(algorithm: HashAlgorithm) {
    let mut checked = 0;
    for (name, _) in vectors::checksums() {
        let tree = storable_as(
            dumpfile::parse_compat(&vectors::load(&name)).unwrap(),
            algorithm,
        );
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
        let parts = split(&tree, algorithm).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parts.tree.algorithm(), algorithm);
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
        let (digest, size) = derive_image(&back, format, algorithm, None).unwrap();
        assert_eq!(size, image.len() as u64);
        let want = sealroot_verity::digest(&Params::composefs(algorithm), &image);
        assert_eq!(digest, want, "{name}");
        // Splitting the assembled tree gives the very same objects.
        let again = split(&back, algorithm).unwrap();
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
    let parts = split(&tree, SHA256).unwrap();
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
    let parts = split(&tree, SHA256).unwrap();
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
    let parts = split(&tree, SHA256).unwrap();
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
        tree: id(b"t"),
        dirmeta: id(b"m"),
        parent: Some(id(b"p")),
        image: id(b"i"),
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
    let parts = split(&tree, SHA256).unwrap();
    let mut inputs: Vec<(ObjectKind, Vec<u8>)> = parts
        .objects
        .iter()
        .map(|(k, _, b)| (*k, b.clone()))
        .collect();
    inputs.push((ObjectKind::Commit, sample_commit().encode()));
    let mut accepted = 0;
    let mut rng = Rng::new(0x2545_f491);
    for (kind, good) in &inputs {
        for i in 0..good.len() {
            for delta in [1u8, 0x20, 0x80, 0xff] {
                let mut m = good.clone();
                m[i] = m[i].wrapping_add(delta);
                accepted += usize::from(reparse(*kind, &m));
            }
            accepted += usize::from(reparse(*kind, &good[..i]));
            let mut m = good.clone();
            m.insert(i, rng.next_u64() as u8);
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
    let a = split(&dumpfile::parse_compat(base.as_bytes()).unwrap(), SHA256).unwrap();
    let b = split(&dumpfile::parse_compat(next.as_bytes()).unwrap(), SHA256).unwrap();
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
                       _: &AnyDigest|
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
    let err = split(&tree, SHA256).unwrap_err().to_string();
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
    let store: Store = [(id(&root), root.clone()), (id(&meta), meta.clone())]
        .into_iter()
        .collect();
    let err = assemble(&id(&root), &id(&meta), &mut fetcher(&store))
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
    let plain = split(&tree, SHA256).unwrap();
    tree.inodes[1].stat.mode |= 0o77000000;
    assert_eq!(split(&tree, SHA256).unwrap().tree, plain.tree);
}

#[test]
fn empty_version_and_metadata_values_survive() {
    let mut c = sample_commit();
    c.version = Some(String::new());
    c.metadata.insert("empty".into(), String::new());
    assert_eq!(Commit::parse(&c.encode()).unwrap(), c);
}

/// A commit of `algorithm` with plain fields, whose bytes and id are pinned below.
fn pinned_commit(algorithm: HashAlgorithm) -> Commit {
    let id = |b: &[u8]| objects::object_id(b, algorithm);
    Commit {
        tree: id(b"t"),
        dirmeta: id(b"m"),
        parent: Some(id(b"p")),
        image: id(b"i"),
        image_format: 1,
        timestamp: 1_700_000_000,
        version: Some("42.1".into()),
        metadata: BTreeMap::from([("a".to_string(), "b".to_string())]),
        subject: "hello".into(),
        body: String::new(),
    }
}

/// The encodings are an ABI: a sha256 commit's bytes and id are what they always were (the
/// ids computed independently of this code, from the text and fs-verity's definition), and a
/// sha512 commit differs only in its digests.
#[test]
fn commit_ids_are_pinned() {
    for (algorithm, want) in [
        (
            SHA256,
            "74462aacce341219754848118447f48f1b1222965107d145c84d22f0ea40d29e",
        ),
        (
            SHA512,
            "0a81a879390f29622b22a81fa68cc4a5062f16ea8940e36cd2aa24ebeec5cb93\
             090bd1e0c61500c6422027804ef78e700683092e04488d2581289a90cf8af427",
        ),
    ] {
        let c = pinned_commit(algorithm);
        let bytes = c.encode();
        let hex = |b: &[u8]| objects::object_id(b, algorithm).to_hex();
        let text = format!(
            "sealroot-commit 1\ntree {}\ndirmeta {}\nparent {}\nimage {algorithm}:{}\n\
             image-format 1\ntimestamp 1700000000\nversion 42.1\nmeta a b\nsubject hello\n",
            hex(b"t"),
            hex(b"m"),
            hex(b"p"),
            hex(b"i"),
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), text);
        assert_eq!(objects::object_id(&bytes, algorithm).to_hex(), want);
        assert_eq!(Commit::parse(&bytes).unwrap(), c);
        assert_eq!(c.algorithm(), algorithm);
    }
}

#[test]
fn sha512_commits_round_trip_and_refuse_other_spellings() {
    let c = Commit {
        tree: objects::object_id(b"t", SHA512),
        dirmeta: objects::object_id(b"m", SHA512),
        parent: Some(objects::object_id(b"p", SHA512)),
        image: objects::object_id(b"i", SHA512),
        ..sample_commit()
    };
    let bytes = c.encode();
    assert_eq!(Commit::parse(&bytes).unwrap(), c);
    let text = String::from_utf8(bytes).unwrap();
    let image = c.image.to_hex();
    assert!(
        text.contains(&format!("\nimage sha512:{image}\n")),
        "{text}"
    );
    let tree = c.tree.to_hex();
    let short = id(b"t").to_hex();
    for (bad, why) in [
        // The algorithm named must be the digest's.
        (text.replace("image sha512:", "image sha256:"), "bad image"),
        (
            text.replace(
                &format!("sha512:{image}"),
                &format!("sha512:{}", &image[..64]),
            ),
            "among",
        ),
        (text.replace("image sha512:", "image SHA512:"), "bad image"),
        (text.replace("image sha512:", "image "), "bad image"),
        // One algorithm per object.
        (text.replace(&tree, &short), "among"),
        // Lower case only; no other lengths.
        (text.replace(&tree, &tree.to_uppercase()), "canonical"),
        (text.replace(&tree, &tree[..127]), "neither"),
        (text.replace(&tree, &format!("{tree}0")), "neither"),
    ] {
        let err = Commit::parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}\n{bad}");
    }
}

/// A sha512 dirtree of a file object and a subdirectory.
fn sha512_dirtree() -> (String, AnyDigest, AnyDigest) {
    let file = objects::object_id(b"file", SHA512);
    let sub = objects::object_id(b"sub", SHA512);
    let text = format!("d d {sub} {sub}\nf f 100644 0 0 0.0 5000 {file} -\nl l 120777 0 0 0.0 x\n");
    (text, file, sub)
}

#[test]
fn sha512_dirtrees_round_trip_and_refuse_mixed_algorithms() {
    let (lines, file, sub) = sha512_dirtree();
    let bytes = dirtree_of(&lines);
    let dt = DirTree::parse(&bytes).unwrap();
    assert_eq!(dt.encode(), bytes);
    assert_eq!(dt.algorithm(), Some(SHA512));
    let ids: Vec<&AnyDigest> = dt.entries.iter().flat_map(|e| e.kind.ids()).collect();
    assert_eq!(ids, [&sub, &sub, &file]);
    // No ids: either algorithm's.
    assert_eq!(
        DirTree::parse(&dirtree_of("l l 120777 0 0 0.0 x\n"))
            .unwrap()
            .algorithm(),
        None
    );
    let short = id(b"x").to_hex();
    let long = file.to_hex();
    for (bad, why) in [
        (lines.replace(&long, &short), "among"),
        (lines.replacen(&sub.to_hex(), &short, 1), "among"),
        (lines.replace(&long, &long.to_uppercase()), "canonical"),
        (lines.replace(&long, &long[..126]), "neither"),
    ] {
        let err = DirTree::parse(&dirtree_of(&bad)).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}\n{bad}");
    }
}

#[test]
fn assembling_refuses_objects_of_another_algorithm() {
    let meta = Attrs {
        mode: 0o40755,
        ..Default::default()
    }
    .encode_dirmeta();
    // A sha512 root naming a sha256 subdirectory: each object alone is fine.
    let sub = dirtree_of("l l 120777 0 0 0.0 x\n");
    let root = dirtree_of(&format!("d d {} {}\n", id(&sub), id(&meta)));
    let root_id = objects::object_id(&root, SHA512);
    let meta_id = objects::object_id(&meta, SHA512);
    let store: Store = [
        (root_id, root.clone()),
        (meta_id, meta.clone()),
        (id(&sub), sub.clone()),
        (id(&meta), meta.clone()),
    ]
    .into_iter()
    .collect();
    let err = assemble(&root_id, &meta_id, &mut fetcher(&store))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another algorithm") && err.contains("sha512"),
        "{err}"
    );
    // A root dirmeta of another algorithm than the root dirtree.
    let err = assemble(&root_id, &id(&meta), &mut fetcher(&store))
        .unwrap_err()
        .to_string();
    assert!(err.contains("another algorithm"), "{err}");
    // Diffing a sha512 tree against a sha256 one.
    let plain = dirtree_of("l l 120777 0 0 0.0 y\n");
    let mut store = store;
    store.insert(id(&plain), plain.clone());
    let err = diff(
        (&root_id, &meta_id),
        (&id(&plain), &id(&meta)),
        &mut fetcher(&store),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another algorithm"), "{err}");
}

#[test]
fn splitting_refuses_file_digests_of_another_algorithm() {
    let tree = storable(
        dumpfile::parse_compat(
            b"/ 0 40755 2 0 0 0 0.0 - - -\n/big 9000 100644 1 0 0 0 0.0 - - -\n",
        )
        .unwrap(),
    );
    let err = split(&tree, SHA512).unwrap_err().to_string();
    assert!(
        err.starts_with("/big: ") && err.contains("sha256") && err.contains("sha512"),
        "{err}"
    );
    let tree = storable_as(tree, SHA512);
    let parts = split(&tree, SHA512).unwrap();
    assert_eq!(parts.files.len(), 1);
    assert_eq!(parts.files[0].algorithm(), SHA512);
    // An inline-only tree: the same bytes under either algorithm, two names.
    let inline =
        dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/f 1 100644 1 0 0 0 0.0 - x -\n")
            .unwrap();
    let (a, b) = (
        split(&inline, SHA256).unwrap(),
        split(&inline, SHA512).unwrap(),
    );
    assert_eq!(a.objects[0].2, b.objects[0].2);
    assert_ne!(a.tree.as_bytes(), &b.tree.as_bytes()[..32]);
}

#[test]
fn sha512_trees_diff() {
    let base = "/ 0 40755 2 0 0 0 0.0 - - -\n/a 5000 100644 1 0 0 0 0.0 - - -\n\
/b 1 100644 1 0 0 0 0.0 - x -\n";
    let next = "/ 0 40755 2 0 0 0 0.0 - - -\n/a 5001 100644 1 0 0 0 0.0 - - -\n\
/b 1 100644 1 0 0 0 0.0 - x -\n";
    let split512 = |t: &str| {
        split(
            &storable_as(dumpfile::parse_compat(t.as_bytes()).unwrap(), SHA512),
            SHA512,
        )
        .unwrap()
    };
    let (a, b) = (split512(base), split512(next));
    let mut store = store_of(&a);
    store.extend(store_of(&b));
    let changes = diff(
        (&a.tree, &a.dirmeta),
        (&b.tree, &b.dirmeta),
        &mut fetcher(&store),
    )
    .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, b"/a");
}
