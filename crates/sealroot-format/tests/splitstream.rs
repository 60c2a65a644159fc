//! Split streams against their readers: real zstd decodes the frames we write, and `cfsctl`
//! (composefs-rs 0.9.4) opens, checks, prints and, above all, collects by the streams we write:
//! a commit's stream under `streams/refs/` keeps every object of the commit and of its
//! ancestors through `cfsctl gc`, which without it removes them (issue 9). Streams `cfsctl`
//! itself writes (compressed) give up their references to [`splitstream::references`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use sealroot_format::dumpfile;
use sealroot_format::objects::{self, assemble, derive_image, split, Commit, ObjectKind};
use sealroot_format::splitstream::{
    self, Chunk, CommitStream, ParseError, Section, SplitStream, COMMIT_CONTENT_TYPE,
};
use sealroot_testkit::{cfsctl_or_skip, pattern, run_cfsctl};
use sealroot_verity::{AnyDigest, HashAlgorithm, Params, Sha256Digest};

/// A composefs-rs repository that the test fills by hand, as sealroot's repository does.
struct Repo {
    root: PathBuf,
    algorithm: HashAlgorithm,
}

fn path_of(d: &AnyDigest) -> String {
    match d {
        AnyDigest::Sha256(d) => d.object_path(),
        AnyDigest::Sha512(d) => d.object_path(),
    }
}

impl Repo {
    /// `cfsctl init --insecure` (the test's filesystem may lack fs-verity).
    fn init(cfsctl: &Path, root: PathBuf, algorithm: HashAlgorithm) -> Repo {
        let alg = format!("fsverity-{}-12", algorithm.name());
        run_cfsctl(
            cfsctl,
            &[
                "init",
                "--insecure",
                "--algorithm",
                &alg,
                root.to_str().unwrap(),
            ],
        );
        Repo { root, algorithm }
    }

    fn arg(&self) -> &str {
        self.root.to_str().unwrap()
    }

    fn digest(&self, bytes: &[u8]) -> AnyDigest {
        sealroot_verity::digest(&Params::new(self.algorithm, 4096, &[]).unwrap(), bytes)
    }

    fn object(&self, d: &AnyDigest) -> PathBuf {
        self.root.join("objects").join(path_of(d))
    }

    fn store(&self, bytes: &[u8]) -> AnyDigest {
        let d = self.digest(bytes);
        let path = self.object(&d);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        d
    }

    fn has(&self, d: &AnyDigest) -> bool {
        self.object(d).exists()
    }

    /// A relative symlink `rel` → `target` (both relative to the repository).
    fn link(&self, rel: &str, target: &str) {
        let depth = rel.matches('/').count();
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(format!("{}{target}", "../".repeat(depth)), path).unwrap();
    }

    /// Stores a stream and links `streams/NAME` to it, as composefs-rs does.
    fn add_stream(&self, name: &str, bytes: &[u8]) -> AnyDigest {
        let d = self.store(bytes);
        self.link(
            &format!("streams/{name}"),
            &format!("objects/{}", path_of(&d)),
        );
        d
    }

    /// Every object in the repository.
    fn objects(&self) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for dir in fs::read_dir(self.root.join("objects")).unwrap() {
            for f in fs::read_dir(dir.unwrap().path()).unwrap() {
                out.insert(f.unwrap().path());
            }
        }
        out
    }
}

/// A commit written as sealroot writes one: file objects, tree objects, the image (linked from
/// `images/`), the commit object.
struct Made {
    commit: AnyDigest,
    bytes: Vec<u8>,
    /// Everything but the commit object: tree objects, the image, file objects.
    needs: BTreeSet<AnyDigest>,
    /// The image.
    image: AnyDigest,
    /// The file objects.
    files: BTreeSet<AnyDigest>,
}

/// Commits `files` (path, content; paths sorted, parent directories implied).
fn commit(repo: &Repo, files: &[(&str, Vec<u8>)], parent: Option<AnyDigest>) -> Made {
    let mut lines = BTreeMap::new();
    lines.insert("/".to_owned(), "/ 0 40755 2 0 0 0 0.0 - - -".to_owned());
    for (path, content) in files {
        let mut dir = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            dir = format!("{dir}/{part}");
            lines.insert(dir.clone(), format!("{dir} 0 40755 2 0 0 0 0.0 - - -"));
        }
        let line = if content.len() <= 64 {
            let text = std::str::from_utf8(content).unwrap();
            format!("{path} {} 100644 1 0 0 0 0.0 - {text} -", content.len())
        } else {
            let d = repo.store(content);
            format!(
                "{path} {} 100644 1 0 0 0 0.0 {} - {d}",
                content.len(),
                path_of(&d)
            )
        };
        lines.insert((*path).to_owned(), line);
    }
    let text: String = lines.values().map(|l| format!("{l}\n")).collect();
    let tree = dumpfile::parse(text.as_bytes()).unwrap();

    let parts = split(&tree, HashAlgorithm::Sha256).unwrap();
    let mut needs = BTreeSet::new();
    for (_, id, bytes) in &parts.objects {
        assert_eq!(repo.store(bytes), *id);
        needs.insert(*id);
    }
    let files: BTreeSet<AnyDigest> = parts.files.iter().copied().collect();
    needs.extend(files.iter().copied());
    let mut image = Vec::new();
    let (image_id, _) = derive_image(&tree, 1, HashAlgorithm::Sha256, Some(&mut image)).unwrap();
    assert_eq!(repo.store(&image), image_id);
    repo.link(
        &format!("images/{image_id}"),
        &format!("objects/{}", image_id.object_path()),
    );
    needs.insert(image_id);

    let bytes = Commit {
        tree: parts.tree,
        dirmeta: parts.dirmeta,
        parent,
        image: image_id,
        image_format: 1,
        timestamp: 1_700_000_000,
        version: None,
        metadata: BTreeMap::new(),
        subject: "a commit".into(),
        body: String::new(),
    }
    .encode();
    let commit = repo.store(&bytes);
    Made {
        commit,
        bytes,
        needs,
        image: image_id,
        files,
    }
}

/// Writes a commit's stream and links `streams/sealroot-commit-HEX` to it.
fn commit_stream(repo: &Repo, made: &Made, parent: Option<AnyDigest>) -> AnyDigest {
    let stream = CommitStream {
        commit: made.commit,
        commit_size: made.bytes.len() as u64,
        objects: made.needs.iter().copied().collect(),
        parent,
    };
    repo.add_stream(
        &format!("sealroot-commit-{}", made.commit),
        &stream.encode().unwrap(),
    )
}

/// The commit read back from the repository's objects alone, its image derived again.
fn derive_from_objects(repo: &Repo, commit: &AnyDigest) -> AnyDigest {
    let c = Commit::parse(&fs::read(repo.object(commit)).unwrap()).unwrap();
    let mut fetch = |_: ObjectKind,
                     id: &AnyDigest|
     -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(fs::read(repo.object(id))?)
    };
    let tree = assemble(&c.tree, &c.dirmeta, &mut fetch).unwrap();
    for inode in &tree.inodes {
        if let sealroot_format::Content::Regular(f) = &inode.content {
            if let Some(d) = f.digest {
                assert!(repo.has(&d), "file object {d} is gone");
            }
        }
    }
    let (image, _) = derive_image(&tree, c.image_format, c.algorithm(), None).unwrap();
    assert_eq!(image, c.image);
    assert!(repo.has(&image), "image {image} is gone");
    image
}

fn removed(gc_output: &str) -> usize {
    let line = gc_output
        .lines()
        .find(|l| l.starts_with("Objects: "))
        .unwrap_or_else(|| panic!("no count in {gc_output}"));
    line["Objects: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn cfsctl_gc_keeps_commits_and_their_history_through_their_streams() {
    let Some(cfsctl) =
        cfsctl_or_skip("cfsctl_gc_keeps_commits_and_their_history_through_their_streams")
    else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let repo = Repo::init(&cfsctl, t.path().join("repo"), HashAlgorithm::Sha256);

    // Two commits of a history: B changes one file of A and keeps a directory of it.
    let shared = vec![
        ("/usr/lib/libx.so", pattern(1, 9000)),
        ("/usr/lib/small", b"tiny".to_vec()),
    ];
    let mut files_a = shared.clone();
    files_a.push(("/etc/os-release", pattern(2, 300)));
    files_a.push(("/usr/bin/tool", pattern(3, 70_000)));
    let a = commit(&repo, &files_a, None);
    let mut files_b = shared.clone();
    files_b.push(("/etc/os-release", pattern(4, 310)));
    files_b.push(("/usr/bin/tool", pattern(3, 70_000)));
    let b = commit(&repo, &files_b, Some(a.commit));
    let stream_a = commit_stream(&repo, &a, None);
    let stream_b = commit_stream(&repo, &b, Some(stream_a));
    // What `sealroot commit --ref os/stable` sets: the stream ref, the commit ref, the image
    // ref of B.
    repo.link(
        "streams/refs/sealroot/os/stable",
        &format!("streams/sealroot-commit-{}", b.commit),
    );
    repo.link("commits/refs/os/stable", &format!("commits/{}", b.commit));
    repo.link("images/refs/os/stable", &format!("images/{}", b.image));

    // An abandoned commit with a stream but no ref, and a stray object: garbage.
    let c = commit(&repo, &[("/only/in/c", pattern(5, 5000))], None);
    let stream_c = commit_stream(&repo, &c, None);
    let junk = repo.store(&pattern(6, 1234));
    let garbage: BTreeSet<AnyDigest> = c
        .needs
        .iter()
        .copied()
        .chain([c.commit, stream_c, junk])
        .filter(|d| !a.needs.contains(d) && !b.needs.contains(d))
        .collect();

    let keep: BTreeSet<AnyDigest> = a
        .needs
        .iter()
        .chain(&b.needs)
        .copied()
        .chain([a.commit, b.commit, stream_a, stream_b])
        .collect();
    assert_eq!(repo.objects().len(), keep.len() + garbage.len());

    let fsck = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "fsck"]);
    assert!(
        fsck.contains("streams: 3/3 ok") && fsck.contains("status: ok"),
        "{fsck}"
    );
    // `cfsctl cat` reassembles the stream: the commit object.
    let cat = run_cfsctl(
        &cfsctl,
        &["--repo", repo.arg(), "cat", "refs/sealroot/os/stable"],
    );
    assert_eq!(cat.as_bytes(), b.bytes);

    let gc = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "gc"]);
    assert_eq!(removed(&gc), garbage.len(), "{gc}");
    for d in &keep {
        assert!(repo.has(d), "{d} was removed");
    }
    for d in &garbage {
        assert!(!repo.has(d), "{d} was kept");
    }
    assert!(!repo
        .root
        .join(format!("streams/sealroot-commit-{}", c.commit))
        .exists());
    // Both commits are whole: their trees assemble from the objects left and derive the
    // images they record, which are still there with all their files.
    derive_from_objects(&repo, &b.commit);
    derive_from_objects(&repo, &a.commit);
    let fsck = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "fsck"]);
    assert!(
        fsck.contains("streams: 2/2 ok") && fsck.contains("status: ok"),
        "{fsck}"
    );

    // The stream is what kept them: without its ref, cfsctl gc keeps only B's image and its
    // files, and removes the commits, their tree objects, the streams, A's image and the files
    // only A had (issue 9).
    fs::remove_file(repo.root.join("streams/refs/sealroot/os/stable")).unwrap();
    let gc = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "gc"]);
    let image_b = b.image;
    let left: BTreeSet<AnyDigest> = b.files.iter().copied().chain([image_b]).collect();
    assert_eq!(removed(&gc), keep.len() - left.len(), "{gc}");
    assert!(!repo.has(&b.commit));
    for d in &left {
        assert!(repo.has(d), "{d} was removed");
    }
}

#[test]
fn cfsctl_gc_follows_object_and_named_references_in_sha512_repositories() {
    let Some(cfsctl) =
        cfsctl_or_skip("cfsctl_gc_follows_object_and_named_references_in_sha512_repositories")
    else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let repo = Repo::init(&cfsctl, t.path().join("repo"), HashAlgorithm::Sha512);
    let kept: Vec<AnyDigest> = (0..3).map(|i| repo.store(&pattern(10 + i, 100))).collect();
    let via_named: Vec<AnyDigest> = (0..2).map(|i| repo.store(&pattern(20 + i, 100))).collect();
    let dropped: Vec<AnyDigest> = (0..2).map(|i| repo.store(&pattern(30 + i, 100))).collect();

    // An inner stream no ref names, reached by name from the outer one.
    let inner = SplitStream {
        algorithm: HashAlgorithm::Sha512,
        content_type: 1,
        stream_size: 200,
        object_refs: via_named.clone(),
        named_refs: BTreeMap::new(),
        chunks: vec![Chunk::External(0), Chunk::External(1)],
    };
    let inner_id = repo.add_stream("inner", &splitstream::encode(&inner).unwrap());
    let outer = SplitStream {
        algorithm: HashAlgorithm::Sha512,
        content_type: 2,
        stream_size: 0,
        object_refs: kept.clone(),
        named_refs: [("the inner one".to_owned(), inner_id)]
            .into_iter()
            .collect(),
        chunks: vec![Chunk::Inline(b"no object in the content".to_vec())],
    };
    let outer_id = repo.add_stream("outer", &splitstream::encode(&outer).unwrap());
    repo.link("streams/refs/keep", "streams/outer");

    let fsck = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "fsck"]);
    assert!(
        fsck.contains("streams: 2/2 ok") && fsck.contains("status: ok"),
        "{fsck}"
    );
    let cat = std::process::Command::new(&cfsctl)
        .args(["--repo", repo.arg(), "cat", "inner"])
        .output()
        .unwrap();
    assert!(cat.status.success());
    assert_eq!(cat.stdout, [pattern(20, 100), pattern(21, 100)].concat());
    let gc = run_cfsctl(&cfsctl, &["--repo", repo.arg(), "gc"]);
    assert_eq!(removed(&gc), dropped.len(), "{gc}");
    for d in kept.iter().chain(&via_named).chain([&inner_id, &outer_id]) {
        assert!(repo.has(d), "{d} was removed");
    }
    for d in &dropped {
        assert!(!repo.has(d), "{d} was kept");
    }
}

#[test]
fn a_stream_cfsctl_wrote_gives_its_references() {
    let Some(cfsctl) = cfsctl_or_skip("a_stream_cfsctl_wrote_gives_its_references") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let repo = Repo::init(&cfsctl, t.path().join("repo"), HashAlgorithm::Sha256);
    // A tar layer of one large file (stored as an object) and one small one (inline).
    let big = pattern(40, 100_000);
    let mut tar = Vec::new();
    for (name, content) in [("big", &big[..]), ("small", &b"small\n"[..])] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(content);
        tar.resize(tar.len().next_multiple_of(512), 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let layer = format!("sha256:{}", {
        use sha2::Digest as _;
        let d: [u8; 32] = sha2::Sha256::digest(&tar).into();
        Sha256Digest(d)
    });
    let mut child = std::process::Command::new(&cfsctl)
        .args(["--repo", repo.arg(), "oci", "import-layer", &layer, "layer"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stream_id = String::from_utf8(out.stdout).unwrap();
    let stream_id: Sha256Digest = stream_id
        .trim()
        .trim_start_matches("sha256:")
        .parse()
        .unwrap();

    let bytes = fs::read(repo.object(&AnyDigest::Sha256(stream_id))).unwrap();
    let refs = splitstream::references(&bytes).unwrap();
    assert_eq!(refs.object_refs, [repo.digest(&big)]);
    assert!(refs.stream_refs.is_empty());
    assert!(!refs.header.old_layout);
    assert_eq!(refs.info.stream_size, tar.len() as u64);
    // No names: zstd's frame of nothing is the one we write.
    let len = bytes.len() as u64;
    assert_eq!(
        bytes[refs
            .info
            .named_refs
            .within(Section::NamedRefs, len)
            .unwrap()],
        [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0, 1, 0, 0]
    );
    // Its stream is compressed: only the references are for us.
    assert!(matches!(
        splitstream::parse(&bytes),
        Err(ParseError::Frame {
            section: Section::Stream,
            ..
        })
    ));
}

#[test]
fn zstd_reads_our_frames() {
    for inline in [0usize, 1, 200, 300, 70_000, 300_000] {
        let mut chunks = vec![Chunk::External(0)];
        if inline > 0 {
            chunks.push(Chunk::Inline(pattern(inline as u32, inline)));
        }
        let s = SplitStream {
            algorithm: HashAlgorithm::Sha256,
            content_type: COMMIT_CONTENT_TYPE,
            stream_size: 0,
            object_refs: vec![objects::object_id(b"x", HashAlgorithm::Sha256)],
            named_refs: [(
                "n".repeat(300),
                objects::object_id(b"y", HashAlgorithm::Sha256),
            )]
            .into_iter()
            .collect(),
            chunks,
        };
        let bytes = splitstream::encode(&s).unwrap();
        let r = splitstream::references(&bytes).unwrap();
        let len = bytes.len() as u64;
        let stream =
            zstd::decode_all(&bytes[r.info.stream.within(Section::Stream, len).unwrap()]).unwrap();
        let mut want = 0i64.to_le_bytes().to_vec();
        if inline > 0 {
            want.extend_from_slice(&(-(inline as i64)).to_le_bytes());
            want.extend_from_slice(&pattern(inline as u32, inline));
        }
        assert_eq!(stream, want, "{inline}");
        let names =
            zstd::decode_all(&bytes[r.info.named_refs.within(Section::NamedRefs, len).unwrap()])
                .unwrap();
        assert_eq!(names, format!("0:{}\0", "n".repeat(300)).into_bytes());
        assert_eq!(splitstream::parse(&bytes).unwrap(), s);
    }
}
