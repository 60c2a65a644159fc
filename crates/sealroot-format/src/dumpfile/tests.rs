//! Table tests of the escapes and numbers, and randomised round trips of whole trees.

use sealroot_testkit::Rng;
use sealroot_verity::{AnyDigest, Sha256Digest, Sha512Digest};

use super::error::EscapeError;
use super::escape::{escaped, unescape, unescape_optional, Style};
use super::parse::{parse_c_u64, renumber};
use super::{parse as parse_strict, parse_compat as parse, to_vec};
use crate::tree::{
    Content, DirEntry, FileType, Inode, InodeId, Mtime, RegularFile, Stat, Tree, Xattr, S_IFMT,
};

type UnescapeCase = (&'static [u8], Result<&'static [u8], EscapeError>);

#[test]
fn unescape_table() {
    let cases: &[UnescapeCase] = &[
        (b"", Ok(b"")),
        (b"plain", Ok(b"plain")),
        (b"a\\\\b", Ok(b"a\\b")),
        (b"\\n\\r\\t", Ok(b"\n\r\t")),
        (b"\\x00\\xff\\x2D\\x2d", Ok(b"\x00\xff--")),
        (b"\\xAb", Ok(b"\xab")),
        // Unescaped, '=' and '-' are just bytes.
        (b"=-", Ok(b"=-")),
        (b"\\", Err(EscapeError::Truncated)),
        (b"abc\\", Err(EscapeError::Truncated)),
        (b"\\x", Err(EscapeError::HexMissing)),
        (b"\\x4", Err(EscapeError::HexMissing)),
        // C looks for two characters before it checks either.
        (b"\\xZ", Err(EscapeError::HexMissing)),
        (b"\\xZZ", Err(EscapeError::HexInvalid)),
        (b"\\x4g", Err(EscapeError::HexInvalid)),
        (b"\\q", Err(EscapeError::Unsupported(b'q'))),
        (b"\\0", Err(EscapeError::Unsupported(b'0'))),
        (b"\\ ", Err(EscapeError::Unsupported(b' '))),
    ];
    for (input, want) in cases {
        let got = unescape(input);
        assert_eq!(
            got.as_deref().map_err(|e| *e),
            want.map(|w| w),
            "unescape({:?})",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn optional_fields() {
    assert_eq!(unescape_optional(b"-").unwrap(), None);
    assert_eq!(unescape_optional(b"").unwrap(), Some(Vec::new()));
    assert_eq!(unescape_optional(b"\\x2d").unwrap(), Some(b"-".to_vec()));
    assert_eq!(unescape_optional(b"--").unwrap(), Some(b"--".to_vec()));
}

#[test]
fn escape_table() {
    let cases: &[(&[u8], Style, &str)] = &[
        (b"abc", Style::PLAIN, "abc"),
        (b"a b", Style::PLAIN, "a\\x20b"),
        (b"\\\n\r\t", Style::PLAIN, "\\\\\\n\\r\\t"),
        (
            b"\x00\x01\x7f\x80\xff",
            Style::PLAIN,
            "\\x00\\x01\\x7f\\x80\\xff",
        ),
        (b"!~", Style::PLAIN, "!~"),
        (b"a=b", Style::PLAIN, "a=b"),
        (b"a=b", Style::XATTR, "a\\x3db"),
        (b"-", Style::PLAIN, "-"),
        (b"-", Style::XATTR, "-"),
        (b"-", Style::OPTIONAL, "\\x2d"),
        (b"--", Style::OPTIONAL, "--"),
        (b"", Style::OPTIONAL, ""),
        ("é".as_bytes(), Style::PLAIN, "\\xc3\\xa9"),
    ];
    for (input, style, want) in cases {
        assert_eq!(
            escaped(input, *style),
            *want,
            "escape({input:?}, {style:?})"
        );
        // Everything printed reads back.
        assert_eq!(unescape(want.as_bytes()).unwrap(), *input);
    }
}

#[test]
fn numbers_read_as_strtoull() {
    let cases: &[(&str, u32, Option<u64>)] = &[
        ("0", 10, Some(0)),
        ("42", 10, Some(42)),
        ("007", 10, Some(7)),
        ("+5", 10, Some(5)),
        ("-0", 10, Some(0)),
        ("-1", 10, Some(u64::MAX)),
        ("-5", 10, Some(u64::MAX - 4)),
        ("\t\x0b\x0c\r7", 10, Some(7)),
        ("18446744073709551615", 10, Some(u64::MAX)),
        ("18446744073709551616", 10, Some(u64::MAX)),
        ("-18446744073709551615", 10, Some(1)),
        ("-99999999999999999999", 10, Some(u64::MAX)),
        ("100644", 8, Some(0o100644)),
        ("7777777777777777777777", 8, Some(u64::MAX)),
        ("", 10, None),
        ("+", 10, None),
        ("-", 10, None),
        ("--1", 10, None),
        ("+-1", 10, None),
        ("\t", 10, None),
        ("1x", 10, None),
        ("0x10", 10, None),
        ("1 ", 10, None),
        ("8", 8, None),
        ("a", 10, None),
    ];
    for (text, radix, want) in cases {
        assert_eq!(
            parse_c_u64(text.as_bytes(), *radix),
            *want,
            "{text:?} base {radix}"
        );
    }
}

#[test]
fn digests() {
    let hex = "ab".repeat(32);
    let root = "/ 0 40755 2 0 0 0 0.0 - - -\n";
    let file = |digest: &str, size: u32, content: &str| {
        format!("{root}/f {size} 100644 1 0 0 0 0.0 - {content} {digest}\n")
    };
    let digest_of = |text: &str| match &parse(text.as_bytes()).unwrap().inodes[1].content {
        Content::Regular(f) => f.digest,
        _ => unreachable!(),
    };
    let want = Some(AnyDigest::Sha256(Sha256Digest([0xab; 32])));
    assert_eq!(digest_of(&file(&hex, 5, "-")), want);
    assert_eq!(digest_of(&file(&hex.to_uppercase(), 5, "-")), want);
    // C reads the first 64 characters only.
    assert_eq!(digest_of(&file(&format!("{hex}00"), 5, "-")), want);
    assert_eq!(digest_of(&file(&format!("{hex}zz"), 5, "-")), want);
    // Where the digest never reaches the image, C does not mind a bad one.
    assert_eq!(digest_of(&file("xyz", 0, "-")), None);
    assert_eq!(digest_of(&file("", 3, "abc")), None);
    assert_eq!(digest_of(&file(&hex, 3, "abc")), want);
    // Where it does, a bad digest would be uninitialised memory in C: refused.
    for bad in ["", "ab", &hex[..62], &format!("{}zz", &hex[..62])] {
        let err = parse(file(bad, 5, "-").as_bytes()).unwrap_err();
        assert!(
            matches!(err.kind(), Some(super::ErrorKind::InvalidDigest { .. })),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn sha512_digests() {
    let hex = "cd".repeat(64);
    let root = "/ 0 40755 2 0 0 0 0.0 - - -\n";
    let text = format!("{root}/f 5 100644 1 0 0 0 0.0 cd/{} - {hex}\n", &hex[2..]);
    let digest_of = |tree: &Tree| match &tree.inodes[1].content {
        Content::Regular(f) => f.digest,
        _ => unreachable!(),
    };
    // Strict (sealroot's own) reads composefs-rs's 128 digits as a sha512 digest and prints
    // it back the same.
    let strict = parse_strict(text.as_bytes()).unwrap();
    assert_eq!(
        digest_of(&strict),
        Some(AnyDigest::Sha512(Sha512Digest([0xcd; 64])))
    );
    assert_eq!(to_vec(&strict).unwrap(), text.as_bytes());
    // C (and so the compatible parser) reads the first 64 digits only.
    let compat = parse(text.as_bytes()).unwrap();
    assert_eq!(
        digest_of(&compat),
        Some(AnyDigest::Sha256(Sha256Digest([0xcd; 32])))
    );
    // Upper case is hex too; 127 or 129 digits are not a sha512 digest (C's first 64 then).
    let upper = text.replace(&hex, &hex.to_uppercase());
    assert_eq!(
        digest_of(&parse_strict(upper.as_bytes()).unwrap()),
        digest_of(&strict)
    );
    for odd in [&hex[..127], &format!("{hex}0")] {
        let t = text.replace(&hex, odd);
        assert_eq!(
            digest_of(&parse_strict(t.as_bytes()).unwrap()),
            digest_of(&compat),
            "{odd}"
        );
    }
}

/// `percent` in a hundred.
fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.below(100) < percent
}

/// Up to `max_len` bytes biased towards the ones escaping cares about, none in `forbid`.
fn biased_bytes(rng: &mut Rng, max_len: u64, forbid: &[u8]) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    let special = b" \\\n\r\t=-@/.\x00\x7f\x80\xffax";
    (0..len)
        .map(|_| loop {
            let b = if chance(rng, 60) {
                *rng.pick(special)
            } else {
                rng.next_u64() as u8
            };
            if !forbid.contains(&b) {
                break b;
            }
        })
        .collect()
}

/// A valid file name, sometimes of the longest length.
fn random_name(rng: &mut Rng) -> Vec<u8> {
    loop {
        let len = if chance(rng, 3) { 255 } else { 12 };
        let name = biased_bytes(rng, len, b"/\x00");
        if !name.is_empty() && name != b"." && name != b".." {
            return name;
        }
    }
}

fn random_stat(rng: &mut Rng, file_type: FileType) -> Stat {
    let mut mode = (rng.next_u64() as u32 & 0o7777) | file_type.mode_bits();
    if chance(rng, 5) {
        // C keeps all 32 bits of the mode.
        mode |= (rng.next_u64() as u32) & !0xffff;
    }
    let small = |rng: &mut Rng| {
        if chance(rng, 70) {
            rng.below(3) as u32
        } else {
            rng.next_u64() as u32
        }
    };
    Stat {
        mode,
        uid: small(rng),
        gid: small(rng),
        nlink: small(rng),
        rdev: 0,
        size: if chance(rng, 50) {
            rng.below(5000)
        } else {
            rng.next_u64()
        },
        mtime: Mtime {
            sec: if chance(rng, 50) {
                rng.below(2_000_000_000) as i64
            } else {
                rng.next_u64() as i64
            },
            nsec: small(rng),
        },
    }
}

fn random_xattrs(rng: &mut Rng) -> Vec<Xattr> {
    let mut xattrs: Vec<Xattr> = Vec::new();
    let mut budget = 12;
    for _ in 0..rng.below(5) {
        const PREFIXES: [&[u8]; 4] = [b"user.", b"trusted.overlay.", b"security.", b""];
        let mut name = rng.pick(&PREFIXES).to_vec();
        name.extend(biased_bytes(rng, 20, b"\x00"));
        if name.is_empty() || xattrs.iter().any(|x| x.name == name) {
            continue;
        }
        let max = if chance(rng, 5) { 3000 } else { 16 };
        let value = biased_bytes(rng, max, b"");
        budget += 7 + name.len() + value.len();
        if budget > 32767 {
            break;
        }
        xattrs.push(Xattr { name, value });
    }
    xattrs
}

fn random_payload(rng: &mut Rng) -> Vec<u8> {
    let max = if chance(rng, 3) { 4095 } else { 40 };
    biased_bytes(rng, max, b"\x00")
}

/// A random tree of the shape [`parse`] builds (inodes in dump order).
fn random_tree(rng: &mut Rng) -> Tree {
    let mut tree = Tree {
        inodes: vec![Inode {
            stat: random_stat(rng, FileType::Directory),
            xattrs: random_xattrs(rng),
            content: Content::Directory(Vec::new()),
        }],
    };
    let mut dirs = vec![InodeId::ROOT];
    let mut files = Vec::new();
    for _ in 0..rng.below(40) {
        let dir = *rng.pick(&dirs);
        let name = random_name(rng);
        if tree.lookup(dir, &name).is_some() {
            continue;
        }
        let hardlink = !files.is_empty() && chance(rng, 10);
        let inode = if hardlink {
            *rng.pick(&files)
        } else {
            let file_type = *rng.pick(&[
                FileType::Directory,
                FileType::Regular,
                FileType::Regular,
                FileType::Symlink,
                FileType::CharDevice,
                FileType::BlockDevice,
                FileType::Fifo,
                FileType::Socket,
            ]);
            let mut stat = random_stat(rng, file_type);
            let content = match file_type {
                FileType::Directory => Content::Directory(Vec::new()),
                FileType::Regular => {
                    let inline = if chance(rng, 40) {
                        let max = if chance(rng, 5) { 5000 } else { 30 };
                        let content = biased_bytes(rng, max, b"");
                        Some(content).filter(|c| !c.is_empty())
                    } else {
                        None
                    };
                    if let Some(content) = &inline {
                        stat.size = content.len() as u64;
                    }
                    Content::Regular(RegularFile {
                        inline,
                        payload: chance(rng, 50).then(|| random_payload(rng)),
                        digest: chance(rng, 50).then(|| {
                            AnyDigest::Sha256(Sha256Digest(std::array::from_fn(|_| {
                                rng.next_u64() as u8
                            })))
                        }),
                    })
                }
                FileType::Symlink => {
                    let mut target = random_payload(rng);
                    if target.is_empty() {
                        target.push(b'x');
                    }
                    stat.size = target.len() as u64;
                    Content::Symlink(target)
                }
                FileType::CharDevice | FileType::BlockDevice => {
                    stat.rdev = rng.next_u64() as u32;
                    Content::Special
                }
                FileType::Fifo | FileType::Socket => Content::Special,
            };
            let id = tree.push(Inode {
                stat,
                xattrs: random_xattrs(rng),
                content,
            });
            match file_type {
                FileType::Directory => dirs.push(id),
                _ => files.push(id),
            }
            id
        };
        let Content::Directory(entries) = &mut tree.inode_mut(dir).content else {
            unreachable!()
        };
        let pos = entries
            .binary_search_by(|e| e.name.as_slice().cmp(&name))
            .unwrap_err();
        entries.insert(
            pos,
            DirEntry {
                name,
                inode,
                hardlink,
            },
        );
    }
    renumber(tree)
}

#[test]
fn random_trees_round_trip() {
    let mut rng = Rng::new(0x5ea1_5eed_d00d_f00d);
    for case in 0..400 {
        let tree = random_tree(&mut rng);
        let text = to_vec(&tree).unwrap();
        let show = || String::from_utf8_lossy(&text).into_owned();
        let back = parse(&text).unwrap_or_else(|e| panic!("case {case}: {e}\n{}", show()));
        assert_eq!(back, tree, "case {case}:\n{}", show());
        assert_eq!(to_vec(&back).unwrap(), text, "case {case}");
        // What the printer writes passes the strict reader too, unless a mode has bits above
        // 16 or nanoseconds reach a second (C keeps them; strict parsing refuses them).
        let in_range = tree
            .inodes
            .iter()
            .all(|i| i.stat.mode <= 0xffff && i.stat.mtime.nsec < 1_000_000_000);
        match parse_strict(&text) {
            Ok(strict) => {
                assert!(
                    in_range,
                    "case {case}: strict parsing took an out-of-range tree"
                );
                assert_eq!(strict, tree, "case {case}");
            }
            Err(e) => assert!(
                !in_range && matches!(e.kind(), Some(super::ErrorKind::OutOfRange { .. })),
                "case {case}: {e}"
            ),
        }
    }
}

/// Any bytes: never a panic, and whatever is accepted prints and reads back the same.
#[test]
fn mutated_input_is_handled() {
    let seed = b"/ 4096 40755 2 0 0 0 0.0 - - - user.a=b\n\
/a 3 100644 1 0 0 0 1.5 - abc - user.x=\\x00\n\
/d 0 40755 2 0 0 0 0.0 - - -\n\
/d/l 0 @100644 1 0 0 0 0.0 /a - -\n\
/s 1 120777 1 0 0 0 0.0 t - -\n\
/e 9 100644 1 0 0 0 0.0 ab/cd - 0000000000000000000000000000000000000000000000000000000000000000\n\
/c 0 20644 1 0 0 5 0.0 - - -\n";
    let mut rng = Rng::new(7);
    for _ in 0..3000 {
        let mut input = seed.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(input.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 => input.insert(at, *rng.pick(b" \n\\x@-=/0123456789.\x00")),
                2 if at < input.len() => input[at] = rng.next_u64() as u8,
                _ => {
                    let end = (at + rng.below(30) as usize).min(input.len());
                    input.drain(at..end);
                }
            }
        }
        if let Ok(tree) = parse(&input) {
            let text = to_vec(&tree).unwrap();
            assert_eq!(parse(&text).unwrap(), tree);
        }
        let _ = parse_strict(&input);
    }
}

#[test]
fn renumbering_orders_inodes_as_dumped() {
    let text = b"/ 0 40755 2 0 0 0 0.0 - - -\n\
/z 0 40755 2 0 0 0 0.0 - - -\n\
/b 0 100644 1 0 0 0 0.0 - - -\n\
/z/a 0 100644 1 0 0 0 0.0 - - -\n\
/a 0 @100644 1 0 0 0 0.0 /z/a - -\n";
    let tree = parse(text).unwrap();
    let names: Vec<(Vec<u8>, InodeId, bool)> = {
        let mut v = Vec::new();
        tree.walk(|path, e| v.push((path.to_vec(), e.inode, e.hardlink)));
        v
    };
    assert_eq!(
        names,
        vec![
            (b"/a".to_vec(), InodeId(3), true),
            (b"/b".to_vec(), InodeId(1), false),
            (b"/z".to_vec(), InodeId(2), false),
            (b"/z/a".to_vec(), InodeId(3), false),
        ]
    );
    assert_eq!(
        tree.inodes[3].stat.mode & S_IFMT,
        FileType::Regular.mode_bits()
    );
}
