//! The dumpfile reader and printer against the C composefs conformance vectors, against what
//! the C tools print for them (`tests/data/dumpfile/`, see its README), and table tests of
//! the format's corners, each checked against C `mkcomposefs`'s reader when it was written.

use std::path::Path;

use sealroot_format::dumpfile::{self, DumpfileError, ErrorKind, EscapeError, Field};
use sealroot_format::{
    erofs, Content, DirEntry, Inode, InodeId, RegularFile, Stat, Tree, Xattr, S_IFCHR, S_IFDIR,
    S_IFREG,
};

/// What an error is expected to be.
type Check = fn(&ErrorKind) -> bool;

use sealroot_testkit::vectors::{self, dir as vectors_dir, load as vector};

fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dumpfile")
        .join(name);
    std::fs::read(path).ok()
}

fn options(name: &str) -> erofs::WriteOptions {
    match vectors::version(name) {
        Some(v) => erofs::WriteOptions {
            min_version: v,
            max_version: v,
        },
        None => erofs::WriteOptions::default(),
    }
}

/// The vectors with a pinned image digest.
const VECTORS: &[&str] = &[
    "bigfile-xattr.dump",
    "bigfile.dump",
    "config-with-hard-link.dump.gz",
    "config.dump.gz",
    "cs9-x86_64-developer.dump.gz",
    "cs9-x86_64-minimal.dump.gz",
    "honggfuzz-bigfile-with-acl.dump",
    "honggfuzz-chardev-nonzero-size.dump",
    "honggfuzz-long-symlink.dump",
    "honggfuzz-longlink-unterminated.dump",
    "longlink.dump",
    "no-newline.dump",
    "special.dump",
    "special_v1.dump",
];

/// The vectors C's test suite reads without `CFS_PARSE_STRICT`.
const NONSTRICT: &[&str] = &[
    "no-newline.dump",
    "longlink.dump",
    "honggfuzz-longlink-unterminated.dump",
];

fn stem(name: &str) -> &str {
    name.trim_end_matches(".gz").trim_end_matches(".dump")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compares line by line, so a failure shows the first line that differs.
fn assert_same_text(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<_>, Vec<_>) = (
        got.split(|&b| b == b'\n').collect(),
        want.split(|&b| b == b'\n').collect(),
    );
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert_eq!(text(a), text(b), "{what}: line {} differs", i + 1);
    }
    panic!("{what}: {} lines, want {}", g.len(), w.len());
}

#[test]
fn every_vector_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".sha256").map(str::to_owned)
        })
        .collect();
    found.sort();
    assert_eq!(found, VECTORS);
}

#[test]
fn vectors_parse_as_c_parses_them() {
    for &name in VECTORS {
        let input = vector(name);
        let tree = dumpfile::parse_compat(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        dumpfile::validate_with(&tree, &options(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let strict = dumpfile::parse(&input);
        if NONSTRICT.contains(&name) {
            let err = strict.expect_err(name);
            let expected = match name {
                // The root's RDEV is refused before the missing newline is noticed.
                "no-newline.dump" => {
                    err.line() == Some(1)
                        && matches!(err.kind(), Some(ErrorKind::NonDeviceRdev { rdev: 10 }))
                }
                // Its mode has bits above 16, which sealroot's strict mode refuses first.
                "honggfuzz-longlink-unterminated.dump" => {
                    err.line() == Some(2)
                        && matches!(
                            err.kind(),
                            Some(ErrorKind::OutOfRange {
                                field: dumpfile::Field::Mode,
                                ..
                            })
                        )
                }
                _ => {
                    err.line() == Some(2)
                        && matches!(err.kind(), Some(ErrorKind::SymlinkSizeMismatch { .. }))
                }
            };
            assert!(expected, "{name}: {err}");
        } else {
            assert_eq!(
                strict.unwrap_or_else(|e| panic!("{name}: {e}")),
                tree,
                "{name}"
            );
        }
    }
}

#[test]
fn should_fail_vectors_are_refused() {
    let table: &[(&str, usize, Check)] = &[
        ("should-fail-big-inline.dump", 2, |k| {
            matches!(k, ErrorKind::ContentTooLarge { len: 5004 })
        }),
        ("should-fail-dir-hardlink.dump", 2, |k| {
            matches!(k, ErrorKind::DirectoryHardlink)
        }),
        ("should-fail-dot-name.dump", 2, |k| {
            matches!(k, ErrorKind::DotOrDotDot)
        }),
        ("should-fail-dotdot-name.dump", 2, |k| {
            matches!(k, ErrorKind::DotOrDotDot)
        }),
        ("should-fail-empty-link-name.dump", 2, |k| {
            matches!(k, ErrorKind::SymlinkTargetEmpty)
        }),
        ("should-fail-empty-name.dump", 2, |k| {
            matches!(k, ErrorKind::EmptyName)
        }),
        ("should-fail-empty-xattr-key.dump", 2, |k| {
            matches!(k, ErrorKind::XattrNameEmpty)
        }),
        ("should-fail-honggfuzz-long-xattr.dump", 1, |k| {
            matches!(k, ErrorKind::XattrsTooLarge { .. })
        }),
        ("should-fail-long-link.dump", 2, |k| {
            matches!(k, ErrorKind::SymlinkTargetTooLong { len: 7248 })
        }),
        ("should-fail-long-xattr-key.dump", 2, |k| {
            matches!(k, ErrorKind::TooManyXattrs { .. })
        }),
        // Refused before its long value is reached: "644" has no file type.
        ("should-fail-long-xattr-value.dump", 2, |k| {
            matches!(k, ErrorKind::InvalidMode { mode: 0o644 })
        }),
        ("should-fail-no-ftype.dump", 2, |k| {
            matches!(k, ErrorKind::InvalidMode { mode: 0 })
        }),
        ("should-fail-self-hardlink.dump", 2, |k| {
            matches!(k, ErrorKind::HardlinkSelf { .. })
        }),
    ];
    let mut listed: Vec<&str> = table.iter().map(|t| t.0).collect();
    for (name, line, check) in table {
        let err = dumpfile::parse_compat(&vector(name)).expect_err(name);
        assert_eq!(err.line(), Some(*line), "{name}: {err}");
        assert!(err.kind().is_some_and(check), "{name}: {err}");
    }

    // C reads this one, and refuses to write it (EFBIG).
    let name = "should-fail-too-big.dump";
    listed.push(name);
    let tree = dumpfile::parse_compat(&vector(name)).unwrap();
    let err = dumpfile::validate(&tree).unwrap_err();
    assert_eq!(
        err,
        DumpfileError::Invalid {
            path: "/bigfile".into(),
            kind: ErrorKind::FileTooBig {
                size: 9_500_000_000_000_000
            },
        }
    );

    let mut present: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("should-fail-"))
        .collect();
    present.sort();
    listed.sort();
    assert_eq!(present, listed);
    assert_eq!(listed.len(), 14);
}

/// What `write(parse(vector))` prints: the vector itself, but for three whose text is not
/// what C prints for its tree (a symlink's size is its target's length; RDEV is dropped on a
/// directory; the last newline).
fn expected_node_dump(name: &str) -> Vec<u8> {
    fixture(&format!("{}.node.dump", stem(name))).unwrap_or_else(|| vector(name))
}

/// What `composefs-info dump` prints for the image of the vector.
fn expected_image_dump(name: &str) -> Vec<u8> {
    fixture(&format!("{}.info.dump", stem(name))).unwrap_or_else(|| vector(name))
}

#[test]
fn vectors_print_as_c_prints_them() {
    for &name in VECTORS {
        let tree = dumpfile::parse_compat(&vector(name)).unwrap();
        let printed = dumpfile::to_vec(&tree).unwrap();
        assert_same_text(&printed, &expected_node_dump(name), name);
    }
}

#[test]
fn composefs_info_dumps_read_back_unchanged() {
    for &name in VECTORS {
        let dump = expected_image_dump(name);
        let tree = dumpfile::parse(&dump).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_text(&dumpfile::to_vec(&tree).unwrap(), &dump, name);
    }
}

/// `dumpfile::write` of the tree read from the image is `composefs-info dump` of the image.
#[test]
fn image_dumps_match_composefs_info() {
    for &name in VECTORS {
        let tree = dumpfile::parse_compat(&vector(name)).unwrap();
        let image = erofs::write(&tree, &options(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = erofs::read(&image).unwrap_or_else(|e| panic!("{name}: {e}"));
        let printed = dumpfile::to_vec(&back).unwrap();
        assert_same_text(&printed, &expected_image_dump(name), name);
    }
}

#[test]
fn vectors_round_trip() {
    for &name in VECTORS {
        let tree = dumpfile::parse_compat(&vector(name)).unwrap();
        let printed = dumpfile::to_vec(&tree).unwrap();
        let back = dumpfile::parse_compat(&printed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(back == tree, "{name}: parse(write(tree)) differs");
    }
}

const ROOT: &str = "/ 0 40755 2 0 0 0 0.0 - - -\n";

fn print(input: &str) -> String {
    let tree =
        dumpfile::parse_compat(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    text(&dumpfile::to_vec(&tree).unwrap())
}

/// Lines C `mkcomposefs` accepts, and what C's `dump_node` prints for the tree it builds.
#[test]
fn accepted_lines() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "a relative path",
            "a 0 100644 1 0 0 0 0.0 - - -\n",
            "/a 0 100644 1 0 0 0 0.0 - - -\n",
        ),
        (
            "repeated slashes",
            "/d 0 40755 2 0 0 0 0.0 - - -\n//d//f 0 100644 1 0 0 0 0.0 - - -\n",
            "/d 0 40755 2 0 0 0 0.0 - - -\n/d/f 0 100644 1 0 0 0 0.0 - - -\n",
        ),
        (
            "a hard link before its target, other fields ignored",
            "/b 99 @100644 zz x y z junk a - -\n/a 3 100644 5 0 0 0 0.0 - abc -\n",
            "/a 3 100644 5 0 0 0 0.0 - abc -\n/b 3 @100644 5 0 0 0 0.0 /a abc -\n",
        ),
        (
            "hard-link targets: relative, slashes, and a link to a link",
            "/a 3 100644 5 0 0 0 0.0 - abc -\n/b 0 @100644 0 0 0 0 0.0 a - -\n\
             /c 0 @100644 0 0 0 0 0.0 //a/ - -\n/d 0 @100644 0 0 0 0 0.0 /c - -\n",
            "/a 3 100644 5 0 0 0 0.0 - abc -\n/b 3 @100644 5 0 0 0 0.0 /a abc -\n\
             /c 3 @100644 5 0 0 0 0.0 /a abc -\n/d 3 @100644 5 0 0 0 0.0 /a abc -\n",
        ),
        (
            "a bad GID or RDEV reads as 0 when UID is not 0 (C tests uid)",
            "/a 0 100644 1 7 x y 0.0 - - -\n",
            "/a 0 100644 1 7 0 0 0.0 - - -\n",
        ),
        (
            "RDEV is kept only on devices",
            "/p 0 10644 1 0 0 9 0.0 - - -\n/c 0 20644 1 0 0 4294967298 0.0 - - -\n",
            "/c 0 20644 1 0 0 2 0.0 - - -\n/p 0 10644 1 0 0 0 0.0 - - -\n",
        ),
        (
            "numbers as strtoull reads them, cut to 32 bits",
            "/a +5 100644 -1 \t7 010 0 -1.4294967297 - - -\n\
             /b 0 70000000000100644 1 0 0 0 18446744073709551615.5 - - -\n\
             /c 0 1000100644 1 0 0 0 0.0 - - -\n",
            "/a 5 100644 4294967295 7 10 0 -1.1 - - -\n/b 0 100644 1 0 0 0 -1.5 - - -\n\
             /c 0 1000100644 1 0 0 0 0.0 - - -\n",
        ),
        (
            "an xattr set twice takes the last one's place",
            "/a 0 100644 1 0 0 0 0.0 - - - user.a=1 user.b=2 user.c=3 user.a=4\n",
            "/a 0 100644 1 0 0 0 0.0 - - - user.c=3 user.b=2 user.a=4\n",
        ),
        (
            "an escaped NUL ends paths, payloads and xattr names, not xattr values",
            "/a\\x00b 0 100644 1 0 0 0 0.0 a\\x00b - - user.k\\x00x=v\\x00w\n",
            "/a 0 100644 1 0 0 0 0.0 a - - user.k=v\\x00w\n",
        ),
        (
            "an empty payload is kept, and printed empty",
            "/f 0 100644 1 0 0 0 0.0  - -\n",
            "/f 0 100644 1 0 0 0 0.0  - -\n",
        ),
        (
            "missing fields are empty; a digest that is never written is ignored",
            "/f 0 100644 1 0 0 0 0.0\n",
            "/f 0 100644 1 0 0 0 0.0  - -\n",
        ),
        (
            "inline content keeps its payload and digest",
            "/f 3 100644 1 0 0 0 0.0 ab/cd abc 00000000000000000000000000000000000000000000000000000000000000Ff\n",
            "/f 3 100644 1 0 0 0 0.0 ab/cd abc 00000000000000000000000000000000000000000000000000000000000000ff\n",
        ),
        (
            "a symlink's size is its target's length",
            "/s 99 120777 1 0 0 0 0.0 target - -\n",
            "/s 6 120777 1 0 0 0 0.0 target - -\n",
        ),
        (
            "a directory keeps no payload, content or digest",
            "/d 3 40755 2 0 0 0 0.0 payload abc 0000000000000000000000000000000000000000000000000000000000000001\n",
            "/d 3 40755 2 0 0 0 0.0 - - -\n",
        ),
        (
            "escapes",
            "/\\x2d 1 100644 1 0 0 0 0.0 \\x2d \\x2d -\n\
             /a\\x20b\\\\c\\td\\xff 0 100644 1 0 0 0 0.0 x\\x20y - -\n\
             /a=b 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d= user.e= user.dash=-\n",
            "/- 1 100644 1 0 0 0 0.0 \\x2d \\x2d -\n\
             /a\\x20b\\\\c\\td\\xff 0 100644 1 0 0 0 0.0 x\\x20y - -\n\
             /a=b 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d\\x3d user.e= user.dash=-\n",
        ),
        (
            "no newline at the end (not strict)",
            "/a 0 100644 1 0 0 0 0.0 - - -",
            "/a 0 100644 1 0 0 0 0.0 - - -\n",
        ),
    ];
    for (what, input, want) in cases {
        assert_eq!(
            print(&format!("{ROOT}{input}")),
            format!("{ROOT}{want}"),
            "{what}"
        );
    }
}

/// Lines C refuses (strict mode marked), with the line and problem reported.
#[test]
fn refused_lines() {
    let long = "a".repeat(256);
    let long_target = "a".repeat(4096);
    let big_content = "x".repeat(5001);
    let many_xattrs = " user.a=b".repeat(7282);
    let budget = format!(" user.a={} user.b={}", "v".repeat(30000), "w".repeat(3000));
    let cases: Vec<(&str, String, bool, usize, Check)> = vec![
        (
            "NUL",
            "/a\0 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::EmbeddedNul { offset: 2 }),
        ),
        (
            "bad escape",
            "/a\\q 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::Escape {
                        field: Field::Path,
                        problem: EscapeError::Unsupported(b'q')
                    }
                )
            },
        ),
        ("empty line", "\n".into(), false, 2, |k| {
            matches!(k, ErrorKind::EmptyPath)
        }),
        (
            "escaped NUL path",
            "\\x00 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::EmptyPath),
        ),
        (
            "octal",
            "/a 0 100648 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidInteger {
                        field: Field::Mode,
                        ..
                    }
                )
            },
        ),
        (
            "GID with UID 0",
            "/a 0 100644 1 0 x 0 0.0 - - -\n".into(),
            false,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidInteger {
                        field: Field::Gid,
                        ..
                    }
                )
            },
        ),
        (
            "mtime without a dot",
            "/a 0 100644 1 0 0 0 5 - - -\n".into(),
            false,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidInteger {
                        field: Field::Mtime,
                        ..
                    }
                )
            },
        ),
        (
            "unknown type",
            "/a 0 170644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::InvalidMode { mode: 0o170644 }),
        ),
        (
            "second root",
            "/ 0 40755 2 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::MultipleRoots),
        ),
        (
            "missing parent",
            "/x/a 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::ParentMissing),
        ),
        (
            "parent not a directory",
            "/f 0 100644 1 0 0 0 0.0 - - -\n/f/a 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            3,
            |k| matches!(k, ErrorKind::ParentNotDirectory),
        ),
        (
            "trailing slash",
            "/a/ 0 40755 2 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::ParentMissing),
        ),
        (
            "name too long",
            format!("/{long} 0 100644 1 0 0 0 0.0 - - -\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::NameTooLong { len: 256 }),
        ),
        (
            "duplicate",
            "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            3,
            |k| matches!(k, ErrorKind::AlreadyExists),
        ),
        (
            "link without target",
            "/l 0 @100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::HardlinkNoTarget),
        ),
        (
            "link to nothing",
            "/l 0 @100644 1 0 0 0 0.0 /x - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::HardlinkTargetMissing { .. }),
        ),
        (
            "the last bad link is reported, as C resolves them last first",
            "/l 0 @100644 1 0 0 0 0.0 /x - -\n/m 0 @100644 1 0 0 0 0.0 - - -\n".into(),
            false,
            3,
            |k| matches!(k, ErrorKind::HardlinkNoTarget),
        ),
        (
            "links in a loop (C: ELOOP when writing)",
            "/l 0 @100644 1 0 0 0 0.0 /m - -\n/m 0 @100644 1 0 0 0 0.0 /l - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::HardlinkCycle { .. }),
        ),
        (
            "link to a directory (C writes it; refused on purpose)",
            "/d 0 40755 2 0 0 0 0.0 - - -\n/l 0 @100644 1 0 0 0 0.0 /d - -\n".into(),
            false,
            3,
            |k| matches!(k, ErrorKind::HardlinkToDirectory { .. }),
        ),
        (
            "link to the root",
            "/l 0 @100644 1 0 0 0 0.0 / - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::HardlinkToDirectory { .. }),
        ),
        (
            "content size",
            "/a 4 100644 1 0 0 0 0.0 - abc -\n".into(),
            false,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::ContentSizeMismatch {
                        content_len: 3,
                        size: 4
                    }
                )
            },
        ),
        (
            "content too large",
            format!("/a 5001 100644 1 0 0 0 0.0 - {big_content} -\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::ContentTooLarge { len: 5001 }),
        ),
        (
            "payload too long",
            format!("/a 0 100644 1 0 0 0 0.0 {long_target} - -\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::PayloadTooLong { len: 4096 }),
        ),
        (
            "symlink without target",
            "/s 0 120777 1 0 0 0 0.0 - - -\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::SymlinkTargetEmpty),
        ),
        (
            "bad digest that is written",
            "/a 5 100644 1 0 0 0 0.0 - - abc\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::InvalidDigest { .. }),
        ),
        (
            "xattr text over 65535 bytes",
            format!("/a 0 100644 1 0 0 0 0.0 - - -{many_xattrs}\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::TooManyXattrs { len: 65537 }),
        ),
        (
            "xattr without =",
            "/a 0 100644 1 0 0 0 0.0 - - - user.a\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::XattrMissingEquals),
        ),
        (
            "two spaces before an xattr",
            "/a 0 100644 1 0 0 0 0.0 - - -  user.a=b\n".into(),
            false,
            2,
            |k| matches!(k, ErrorKind::XattrMissingEquals),
        ),
        (
            "xattr name too long",
            format!("/a 0 100644 1 0 0 0 0.0 - - - {long}=v\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::XattrNameTooLong { len: 256, .. }),
        ),
        (
            "xattr budget",
            format!("/a 0 100644 1 0 0 0 0.0 - - -{budget}\n"),
            false,
            2,
            |k| matches!(k, ErrorKind::XattrsTooLarge { name } if name == "user.b"),
        ),
        (
            "strict: RDEV on a fifo",
            "/p 0 10644 1 0 0 9 0.0 - - -\n".into(),
            true,
            2,
            |k| matches!(k, ErrorKind::NonDeviceRdev { rdev: 9 }),
        ),
        (
            "strict: symlink size",
            "/s 9 120777 1 0 0 0 0.0 target - -\n".into(),
            true,
            2,
            |k| {
                matches!(
                    k,
                    ErrorKind::SymlinkSizeMismatch {
                        target_len: 6,
                        size: 9
                    }
                )
            },
        ),
        (
            "strict: symlink content",
            "/s 6 120777 1 0 0 0 0.0 target target -\n".into(),
            true,
            2,
            |k| matches!(k, ErrorKind::SymlinkContent),
        ),
    ];
    for (what, lines, strict, line, check) in cases {
        let input = format!("{ROOT}{lines}");
        let result = if strict {
            dumpfile::parse(input.as_bytes())
        } else {
            dumpfile::parse_compat(input.as_bytes())
        };
        let err = result.expect_err(what);
        assert_eq!(err.line(), Some(line), "{what}: {err}");
        assert!(err.kind().is_some_and(check), "{what}: {err}");
    }

    let root_first = dumpfile::parse_compat(b"/a 0 100644 1 0 0 0 0.0 - - -\n").unwrap_err();
    assert!(matches!(root_first.kind(), Some(ErrorKind::RootMissing)));
    let file_root = dumpfile::parse_compat(b"/ 0 100644 1 0 0 0 0.0 - - -\n").unwrap_err();
    assert!(matches!(
        file_root.kind(),
        Some(ErrorKind::RootNotDirectory)
    ));
    assert_eq!(dumpfile::parse_compat(b""), Err(DumpfileError::Empty));
    assert_eq!(
        dumpfile::parse(ROOT.trim_end().as_bytes()),
        Err(DumpfileError::MissingTrailingNewline { line: 1 })
    );
}

#[test]
fn errors_say_where_and_what() {
    let err =
        dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/a\\x20b 0 644 1 0 0 0 0.0 - - -\n")
            .unwrap_err();
    assert_eq!(err.to_string(), "line 2 (/a\\x20b): invalid mode 644");
    let err =
        dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - - k\n")
            .unwrap_err();
    assert_eq!(err.to_string(), "line 2 (/a): missing = in xattr");
    let err = dumpfile::parse_compat(b"/ 0 40755 2 0 0 0 0.0 - - -\n/a\\ 0").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: PATH field: no character after the escape backslash"
    );
}

fn stat(mode: u32, size: u64) -> Stat {
    Stat {
        mode,
        nlink: 1,
        size,
        ..Stat::default()
    }
}

fn tree_with(entries: Vec<(&str, Inode, bool)>) -> Tree {
    let mut tree = Tree::new(stat(S_IFDIR | 0o755, 0));
    let mut list = Vec::new();
    for (name, inode, hardlink) in entries {
        let id = if hardlink {
            InodeId(1)
        } else {
            tree.push(inode)
        };
        list.push(DirEntry {
            name: name.as_bytes().to_vec(),
            inode: id,
            hardlink,
        });
    }
    tree.inode_mut(InodeId::ROOT).content = Content::Directory(list);
    tree
}

fn file(size: u64) -> Inode {
    Inode::new(
        stat(S_IFREG | 0o644, size),
        Content::Regular(RegularFile::default()),
    )
}

fn invalid(tree: &Tree) -> ErrorKind {
    match dumpfile::validate(tree) {
        Err(DumpfileError::Invalid { kind, .. }) => kind,
        other => panic!("{other:?}"),
    }
}

#[test]
fn validate_refuses_what_c_will_not_write() {
    // The largest file C stores outside the image is 2^53 bytes; its chunk count wraps for
    // sizes near 2^64, which it then accepts.
    assert!(dumpfile::validate(&tree_with(vec![("f", file(1 << 53), false)])).is_ok());
    assert_eq!(
        invalid(&tree_with(vec![("f", file((1 << 53) + 1), false)])),
        ErrorKind::FileTooBig {
            size: (1 << 53) + 1
        }
    );
    assert!(dumpfile::validate(&tree_with(vec![("f", file(u64::MAX), false)])).is_ok());

    // C's writer starts each inode's xattr account at 0 and subtracts when it replaces one of
    // its own marks that the input already had: a non-empty value wraps the account around.
    let whiteout = Inode::new(stat(S_IFCHR | 0o644, 0), Content::Special);
    let parent = |value: &[u8]| {
        let mut tree = tree_with(vec![("w", whiteout.clone(), false)]);
        let root = tree.inode_mut(InodeId::ROOT);
        root.xattrs = vec![
            Xattr {
                name: b"trusted.overlay.whiteouts".to_vec(),
                value: value.to_vec(),
            },
            Xattr {
                name: b"user.a".to_vec(),
                value: b"b".to_vec(),
            },
        ];
        tree
    };
    assert!(dumpfile::validate(&parent(b"")).is_ok());
    assert!(matches!(
        invalid(&parent(b"abc")),
        ErrorKind::XattrsTooLarge { .. }
    ));
    let mut own = whiteout.clone();
    own.set_xattr(b"trusted.overlay.whiteout", b"abc");
    own.set_xattr(b"user.a", b"b");
    assert!(matches!(
        invalid(&tree_with(vec![("w", own, false)])),
        ErrorKind::XattrsTooLarge { .. }
    ));

    assert_eq!(
        dumpfile::validate_with(
            &tree_with(vec![]),
            &erofs::WriteOptions {
                min_version: 0,
                max_version: 2
            }
        ),
        Err(DumpfileError::UnsupportedVersion(2))
    );
}

#[test]
fn validate_checks_the_shape_of_a_tree() {
    let cases: Vec<(&str, Tree, Check)> = vec![
        (
            "unsorted",
            tree_with(vec![("b", file(0), false), ("a", file(0), false)]),
            |k| matches!(k, ErrorKind::UnsortedEntries),
        ),
        (
            "duplicate",
            tree_with(vec![("a", file(0), false), ("a", file(0), false)]),
            |k| matches!(k, ErrorKind::AlreadyExists),
        ),
        ("slash", tree_with(vec![("a/b", file(0), false)]), |k| {
            matches!(k, ErrorKind::InvalidNameByte)
        }),
        ("dot", tree_with(vec![(".", file(0), false)]), |k| {
            matches!(k, ErrorKind::DotOrDotDot)
        }),
        (
            "mode mismatch",
            tree_with(vec![(
                "a",
                Inode::new(stat(S_IFDIR | 0o755, 0), Content::Special),
                false,
            )]),
            |k| matches!(k, ErrorKind::ModeMismatch { .. }),
        ),
        (
            "owned twice",
            {
                let mut t = tree_with(vec![("a", file(0), false)]);
                let Content::Directory(e) = &mut t.inode_mut(InodeId::ROOT).content else {
                    unreachable!()
                };
                e.push(DirEntry {
                    name: b"b".to_vec(),
                    inode: InodeId(1),
                    hardlink: false,
                });
                t
            },
            |k| matches!(k, ErrorKind::InodeOwnedTwice { id: 1 }),
        ),
        (
            "dangling",
            {
                let mut t = tree_with(vec![("a", file(0), false)]);
                t.inodes.pop();
                t
            },
            |k| matches!(k, ErrorKind::DanglingInode { id: 1 }),
        ),
        (
            "only hard links",
            {
                let mut t = tree_with(vec![("a", file(0), false)]);
                let Content::Directory(e) = &mut t.inode_mut(InodeId::ROOT).content else {
                    unreachable!()
                };
                e[0].hardlink = true;
                t
            },
            |k| matches!(k, ErrorKind::UnownedInode { id: 1 }),
        ),
        (
            "duplicate xattr",
            {
                let mut f = file(0);
                f.xattrs = vec![
                    Xattr {
                        name: b"user.a".to_vec(),
                        value: vec![],
                    };
                    2
                ];
                tree_with(vec![("a", f, false)])
            },
            |k| matches!(k, ErrorKind::DuplicateXattr { .. }),
        ),
    ];
    for (what, tree, check) in cases {
        let kind = invalid(&tree);
        assert!(check(&kind), "{what}: {kind}");
    }
    // A valid tree with a hard link.
    let tree = tree_with(vec![("a", file(3), false), ("b", file(0), true)]);
    dumpfile::validate(&tree).unwrap();
    assert_eq!(
        text(&dumpfile::to_vec(&tree).unwrap()),
        "/ 0 40755 1 0 0 0 0.0 - - -\n/a 3 100644 1 0 0 0 0.0 - - -\n\
         /b 3 @100644 1 0 0 0 0.0 /a - -\n"
    );
}

#[test]
fn write_refuses_inconsistent_trees() {
    let mut tree = tree_with(vec![("a", file(0), false)]);
    tree.inodes.pop();
    let err = dumpfile::to_vec(&tree).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

/// Out-of-range numbers and escaped NULs: compatible parsing writes exactly the image C
/// `mkcomposefs --from-file` 1.0.8 writes (its sha256, computed with C once and pinned here),
/// and strict parsing refuses the line, naming the field.
#[test]
fn out_of_range_input_is_c_compatible_or_refused() {
    use sha2::{Digest, Sha256};
    let root = "/ 4096 40755 2 0 0 0 1700000000.0 - - -\n";
    let digest = "a".repeat(64);
    let payload = format!("aa/{}", "a".repeat(62));
    let file = |fields: &str| format!("{root}/f {fields}\n");
    let cases: Vec<(&str, String, Field, &str)> = vec![
        (
            "size 2^64",
            file(&format!(
                "18446744073709551616 100644 1 0 0 0 1700000000.0 {payload} - {digest}"
            )),
            Field::Size,
            "8637a59759dc9e3833271dd9bc39d8e5b38a3548257ce205b5f542c951abf422",
        ),
        (
            "mtime seconds over 2^64",
            file("0 100644 1 0 0 0 99999999999999999999.0 - - -"),
            Field::Mtime,
            "868147087d0787fabf667fd3466e40c77f328fd81c46461e0499c45f639d7462",
        ),
        (
            "mtime seconds 2^63",
            file("0 100644 1 0 0 0 9223372036854775808.0 - - -"),
            Field::Mtime,
            "8de67434ac3eed98c3b38c4f660f3dac5aacc33d3402f88e89fc1c67c6b36346",
        ),
        (
            "nlink 2^32 + 1",
            file("0 100644 4294967297 0 0 0 1700000000.0 - - -"),
            Field::Nlink,
            "84deb63bc332294b7264f78e691dea4107e7287eda532303289bf5c0fa952557",
        ),
        (
            "uid and gid over 32 bits",
            file("0 100644 1 4294967303 1099511627776 0 1700000000.0 - - -"),
            Field::Uid,
            "52967b160ce6f6b30914a3ad30fd563f3bf7b16497d8b48d08b7c747fc337c52",
        ),
        (
            "uid -1",
            file("0 100644 1 -1 0 0 1700000000.0 - - -"),
            Field::Uid,
            "5e72bbb2bd2406b08fe3a6696467c2d8108637733985cf40a37d02647ac39ec7",
        ),
        (
            "nanoseconds 10^9",
            file("0 100644 1 0 0 0 1700000000.1000000000 - - -"),
            Field::Mtime,
            "036f90632f6f283a336cd872240284704bf5cb9ed68698f7322f8fbca464b0db",
        ),
        (
            "nanoseconds over 32 bits",
            format!(
                "{root}/f 0 100644 1 0 0 0 1700000000.4294967299 - - -\n\
                 /g 0 100644 1 0 0 0 1700000000.3 - - -\n"
            ),
            Field::Mtime,
            "a0edaa62883006ccee2f4b984e2a54be9bfadb9b83a9412b5c427865319fdd0c",
        ),
        (
            "rdev over 32 bits",
            format!("{root}/b 0 60644 1 0 0 4294969345 1700000000.0 - - -\n"),
            Field::Rdev,
            "bdb1e7d3d6d32459de9200eabba0ec71033ffeecfd816b2077a4c0d394b4adab",
        ),
        (
            "rdev 2^32 on a character device (a whiteout once truncated)",
            format!("{root}/c 0 20644 1 0 0 4294967296 1700000000.0 - - -\n"),
            Field::Rdev,
            "c8c94aa9e7c541efc1cabb6d52bb33e83799eb310528ca3d84c1327c647332fb",
        ),
        (
            "mode bits above 16",
            file("0 1100644 1 0 0 0 1700000000.0 - - -"),
            Field::Mode,
            "84deb63bc332294b7264f78e691dea4107e7287eda532303289bf5c0fa952557",
        ),
        (
            "NUL in a name",
            format!("{root}/a\\x00b 0 100644 1 0 0 0 1700000000.0 - - -\n"),
            Field::Path,
            "1f2afae922d15882eaff92ce7c1ae2d677d38176b6e12f288cf98d544a978d32",
        ),
        (
            "NUL in a symlink target",
            format!("{root}/l 1 120777 1 0 0 0 1700000000.0 t\\x00u - -\n"),
            Field::Payload,
            "10a5d0529f639dd9316c894ee59f6288a9d9cfddf21679b6f2874a4927a80194",
        ),
        (
            "NUL in an xattr name",
            file("0 100644 1 0 0 0 1700000000.0 - - - user.a\\x00b=v"),
            Field::Xattr,
            "d3587e619ecc0cc6599ed05076d786d775059b9acaaabbdc481c8ea1ce9b9c94",
        ),
    ];
    for (what, input, field, c_sha256) in cases {
        let tree =
            dumpfile::parse_compat(input.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let image = erofs::write(&tree, &erofs::WriteOptions::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let sha: String = Sha256::digest(&image)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, c_sha256, "{what}: not the image C writes");
        let err = dumpfile::parse(input.as_bytes()).expect_err(what);
        let named = match err.kind() {
            Some(ErrorKind::OutOfRange { field: f, .. })
            | Some(ErrorKind::EscapedNul { field: f }) => *f,
            _ => panic!("{what}: {err}"),
        };
        assert_eq!(named, field, "{what}: {err}");
        assert_eq!(err.line(), Some(2), "{what}: {err}");
    }
}
