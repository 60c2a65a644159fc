//! Boot Loader Specification entries without a partition: the tolerant parser on entries as
//! distributions and users write them, the errors that name a line, the canonical writer,
//! and boot-counting names.

use sealroot_deploy::bls::{
    BootCounter, Entry, EntryName, EntrySpec, LineKind, NameError, ParseError, ValueError,
    MAX_ENTRY_SIZE, OUR_HEADER,
};

/// What `bootctl` shows for an entry: title, version, linux, initrds, options.
type Shown<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a [&'a str],
    Option<&'a str>,
);

/// Entries as found in the wild, and what systemd reads from them.
const WILD: &[(&str, &[u8], Shown<'_>)] = &[
    (
        "kernel-install (Debian, systemd 252)",
        b"# Boot Loader Specification type#1 entry\n# File created by /usr/lib/kernel/install.d/90-loaderentry.install (systemd 252.38-1~deb12u1)\ntitle      Debian GNU/Linux 12 (bookworm)\nversion    6.1.0-13-amd64\nmachine-id 8f3e0c6b2a5d4e7f9a1b2c3d4e5f6a7b\nsort-key   debian\noptions    root=UUID=5d2e ro quiet\nlinux      /8f3e0c6b/6.1.0-13-amd64/linux\ninitrd     /8f3e0c6b/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64\n",
        (
            Some("Debian GNU/Linux 12 (bookworm)"),
            Some("6.1.0-13-amd64"),
            Some("/8f3e0c6b/6.1.0-13-amd64/linux"),
            &["/8f3e0c6b/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64"],
            Some("root=UUID=5d2e ro quiet"),
        ),
    ),
    (
        "Fedora's GRUB BLS with GRUB-only keys and a variable",
        b"title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)\nversion 6.5.6-300.fc39.x86_64\nlinux /vmlinuz-6.5.6-300.fc39.x86_64\ninitrd /initramfs-6.5.6-300.fc39.x86_64.img $tuned_initrd\noptions $kernelopts $tuned_params\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class fedora\n",
        (
            Some("Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)"),
            Some("6.5.6-300.fc39.x86_64"),
            Some("/vmlinuz-6.5.6-300.fc39.x86_64"),
            &["/initramfs-6.5.6-300.fc39.x86_64.img $tuned_initrd"],
            Some("$kernelopts $tuned_params"),
        ),
    ),
    (
        "hand edited: CRLF, tabs, repeated keys, padding, no last newline",
        b"\t# mine\r\ntitle   Old\r\ntitle\tNew title  \r\n\r\nlinux\t/k\r\noptions a=1\r\n  options   b   c  \r\ninitrd /i1\r\ninitrd /i2\r\nversion",
        (Some("New title"), None, Some("/k"), &["/i1", "/i2"], Some("a=1 b   c")),
    ),
    (
        "ostree",
        b"title Fedora CoreOS 39.20231101.3.0 (ostree:0)\nversion 2\noptions mitigations=auto,nosmt ostree=/ostree/boot.1/fedora-coreos/0c3a/0\nlinux /ostree/fedora-coreos-0c3a/vmlinuz-6.5.9-300.fc39.x86_64\ninitrd /ostree/fedora-coreos-0c3a/initramfs-6.5.9-300.fc39.x86_64.img\naboot /ostree/deploy/fedora-coreos/deploy/1f2e.0/usr/lib/ostree-boot/aboot.img\n",
        (
            Some("Fedora CoreOS 39.20231101.3.0 (ostree:0)"),
            Some("2"),
            Some("/ostree/fedora-coreos-0c3a/vmlinuz-6.5.9-300.fc39.x86_64"),
            &["/ostree/fedora-coreos-0c3a/initramfs-6.5.9-300.fc39.x86_64.img"],
            Some("mitigations=auto,nosmt ostree=/ostree/boot.1/fedora-coreos/0c3a/0"),
        ),
    ),
    (
        "keys without values are ignored, as bootctl ignores them",
        b"title\nlinux /k\noptions\nsort-key \t \nefi /e.efi\n",
        (None, None, Some("/k"), &[], None),
    ),
    ("empty", b"", (None, None, None, &[], None)),
];

#[test]
fn entries_in_the_wild_parse_as_systemd_reads_them_and_write_back_byte_for_byte() {
    for (what, bytes, (title, version, linux, initrd, options)) in WILD {
        let e = &Entry::parse(bytes).unwrap_or_else(|err| panic!("{what}: {err}"));
        assert_eq!(
            e.to_bytes(),
            *bytes,
            "{what}: not written back byte for byte"
        );
        assert_eq!(e.title(), *title, "{what}");
        assert_eq!(e.version(), *version, "{what}");
        assert_eq!(e.linux(), *linux, "{what}");
        assert_eq!(e.initrd(), *initrd, "{what}");
        assert_eq!(e.options().as_deref(), *options, "{what}");
        // A clone edited in one place changes that place only.
        let mut edited = e.clone();
        edited.set("sort-key", "zzz").unwrap();
        assert_eq!(edited.sort_key(), Some("zzz"), "{what}");
        let others = |e: &Entry| -> Vec<String> {
            e.lines()
                .iter()
                .filter(|l| {
                    !matches!(
                        l.kind(),
                        LineKind::Field {
                            key: "sort-key",
                            ..
                        }
                    )
                })
                .map(|l| l.text().to_owned())
                .collect()
        };
        let (untouched, kept) = (others(e), others(&edited));
        assert_eq!(untouched, kept, "{what}");
    }
}

#[test]
fn unknown_keys_and_comments_stay_in_order() {
    let text = b"# top\ngrub_class x\ntitle T\n# middle\nx-other 1 2\nlinux /k\n";
    let mut e = Entry::parse(text).unwrap();
    assert_eq!(e.unknown_keys(), ["grub_class", "x-other"]);
    e.set("title", "U").unwrap();
    assert_eq!(
        e.to_bytes(),
        b"# top\ngrub_class x\ntitle U\n# middle\nx-other 1 2\nlinux /k\n"
    );
}

#[test]
fn what_is_truly_broken_is_an_error_naming_the_line() {
    assert_eq!(
        Entry::parse(b"title a\nlinux /k\0x\n"),
        Err(ParseError::Nul { line: 2 })
    );
    assert_eq!(
        Entry::parse(b"title a\r\n\r\ntitle \xff\n"),
        Err(ParseError::NotUtf8 { line: 3 })
    );
    let err = Entry::parse(b"a\rb\rc\xc3\n").unwrap_err();
    assert_eq!(err, ParseError::NotUtf8 { line: 3 });
    assert_eq!(
        err.to_string(),
        "line 3: not UTF-8 (entries are 7-bit ASCII or UTF-8)"
    );
    let big = vec![b'#'; MAX_ENTRY_SIZE + 1];
    assert_eq!(
        Entry::parse(&big),
        Err(ParseError::TooLarge {
            size: MAX_ENTRY_SIZE + 1
        })
    );
    assert!(Entry::parse(&big[1..]).is_ok());
}

#[test]
fn our_entries_are_written_in_one_canonical_form() {
    let spec = EntrySpec {
        title: "Debian GNU/Linux 12 (sealroot 3f2a)".to_owned(),
        version: Some("2024.06.1".to_owned()),
        machine_id: Some("0123456789abcdef0123456789abcdef".to_owned()),
        sort_key: Some("sealroot-0".to_owned()),
        architecture: None,
        linux: "/sealroot/aa".to_owned(),
        initrd: vec!["/sealroot/bb".to_owned(), "/sealroot/cc".to_owned()],
        devicetree: None,
        devicetree_overlay: vec![],
        options: vec![
            "composefs.digest=v1-sha256-12:aa".to_owned(),
            "rw".to_owned(),
            "quiet".to_owned(),
        ],
    };
    let bytes = spec.to_entry().unwrap().to_bytes();
    let want = format!(
        "{OUR_HEADER}\ntitle Debian GNU/Linux 12 (sealroot 3f2a)\nversion 2024.06.1\nmachine-id 0123456789abcdef0123456789abcdef\nsort-key sealroot-0\nlinux /sealroot/aa\ninitrd /sealroot/bb\ninitrd /sealroot/cc\noptions composefs.digest=v1-sha256-12:aa rw quiet\n"
    );
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
    // It reads back to the same values.
    let e = Entry::parse(&bytes).unwrap();
    assert_eq!(e.title(), Some(spec.title.as_str()));
    assert_eq!(e.initrd(), ["/sealroot/bb", "/sealroot/cc"]);
    assert_eq!(
        e.boot_paths(),
        ["/sealroot/aa", "/sealroot/bb", "/sealroot/cc"]
    );
    assert!(e.unknown_keys().is_empty());

    let refused = |f: fn(&mut EntrySpec)| {
        let mut s = spec.clone();
        f(&mut s);
        s.to_entry().unwrap_err()
    };
    assert!(matches!(
        refused(|s| s.title = "two\nlines".into()),
        ValueError::Control { .. }
    ));
    assert!(matches!(
        refused(|s| s.title = "\"quoted\"".into()),
        ValueError::Quoted { .. }
    ));
    assert!(matches!(
        refused(|s| s.title = String::new()),
        ValueError::Empty { .. }
    ));
    assert!(matches!(
        refused(|s| s.version = Some("1 ".into())),
        ValueError::Padded { .. }
    ));
    assert!(matches!(
        refused(|s| s.options.push(String::new())),
        ValueError::BadItem { .. }
    ));
    assert!(matches!(
        refused(|s| s.devicetree_overlay = vec!["a b".into()]),
        ValueError::BadItem { .. }
    ));
}

#[test]
fn names_count_boots_as_systemd_does() {
    // systemd's test-bootspec cases for boot_filename_extract_tries, with .conf.
    let cases: &[(&str, &str, Option<BootCounter>)] = &[
        ("foo.conf", "foo.conf", None),
        (
            "foo+0.conf",
            "foo.conf",
            Some(BootCounter {
                left: 0,
                done: None,
            }),
        ),
        (
            "foo+1-0.conf",
            "foo.conf",
            Some(BootCounter {
                left: 1,
                done: Some(0),
            }),
        ),
        (
            "foo+1-1.conf",
            "foo.conf",
            Some(BootCounter {
                left: 1,
                done: Some(1),
            }),
        ),
        ("foo+x-1.conf", "foo+x-1.conf", None),
        ("foo+1-x.conf", "foo+1-x.conf", None),
        ("foo+1-.conf", "foo+1-.conf", None),
        ("foo+-1.conf", "foo+-1.conf", None),
        (
            "+1.conf",
            ".conf",
            Some(BootCounter {
                left: 1,
                done: None,
            }),
        ),
        (
            "foo+1+2.conf",
            "foo+1.conf",
            Some(BootCounter {
                left: 2,
                done: None,
            }),
        ),
        (
            "foo.bar+1-2.conf",
            "foo.bar.conf",
            Some(BootCounter {
                left: 1,
                done: Some(2),
            }),
        ),
    ];
    for (name, id, counter) in cases {
        let n = EntryName::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((n.id().as_str(), n.counter()), (*id, *counter), "{name}");
        assert_eq!(n.to_string(), *name);
        assert_eq!(n.with_counter(*counter).as_str(), *name, "{name}");
    }
    assert!(matches!(
        EntryName::parse("foo+9999999999.conf"),
        Err(NameError::Counter { .. })
    ));
    for bad in ["", ".", "..", "a/b.conf", "a b.conf", "é.conf"] {
        assert!(EntryName::parse(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        EntryName::parse("foo.efi"),
        Err(NameError::Suffix { .. })
    ));
    assert!(matches!(
        EntryName::parse(&format!("{}.conf", "a".repeat(251))),
        Err(NameError::Length { .. })
    ));

    let ours = EntryName::ours(
        "sealroot-3f2a",
        Some(BootCounter {
            left: 3,
            done: None,
        }),
    )
    .unwrap();
    assert_eq!(ours.as_str(), "sealroot-3f2a+3.conf");
    assert!(ours.is_ours());
    let tried = ours.after_boot_attempt().unwrap();
    assert_eq!(tried.as_str(), "sealroot-3f2a+2-1.conf");
    assert_eq!(tried.with_counter(None).as_str(), "sealroot-3f2a.conf");
    let last = EntryName::parse("sealroot-3f2a+0-3.conf").unwrap();
    assert_eq!(
        last.after_boot_attempt().unwrap().as_str(),
        "sealroot-3f2a+0-4.conf"
    );
    assert!(matches!(
        EntryName::ours("Sealroot-x", None),
        Err(NameError::NotOurs { .. })
    ));
    assert!(matches!(
        EntryName::ours("sealroot-x+1", None),
        Err(NameError::NotOurs { .. })
    ));
    assert!(!EntryName::parse("debian-sealroot-x.conf")
        .unwrap()
        .is_ours());
}
