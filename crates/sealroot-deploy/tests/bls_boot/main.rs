//! The boot partition for real: a loop-mounted ext4 in a private mount namespace, run once
//! as ext4 and once with vfat's rules (no links, no `O_TMPFILE`, names compared without
//! case: [`FsKind::Vfat`]), each by exchange and entry by entry. systemd's `bootctl` reads
//! the result.

mod common;
mod kill;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;
use sealroot_deploy::bls::{Entry, EntryName};
use sealroot_deploy::boot::{
    BootDir, FsKind, RecoverError, Recovered, StageError, SwitchMethod, FILES_DIR,
};
use sealroot_testkit::{mount_test, skip};

mount_test! {
    /// Switching from nothing to set a, then to set b: `loader/entries` holds exactly the new
    /// set, foreign entries keep their bytes and modification times (and, with hard links,
    /// their inodes), the staging directory is gone, and boot files no entry needs are
    /// collected.
    fn a_switch_replaces_our_set_and_leaves_foreign_entries_alone() {
        for (fs_kind, method) in MODES {
            let Some(p) = ext4("a_switch_replaces_our_set_and_leaves_foreign_entries_alone", 64) else {
                return;
            };
            put_foreign(&p.mnt);
            let before = identities(&p.mnt);
            let (ka, ia, kb) = (blob(&p.work, 1, 300_000), blob(&p.work, 2, 70_000), blob(&p.work, 3, 310_000));
            let dir = open(&p.mnt, fs_kind, method);
            let a = our_set('a', &ka, &ia);
            let staged = dir.stage(&a, &[ka.file(), ia.file()]).unwrap();
            assert_eq!(ours(&live(&p.mnt)).len(), 0, "staging changed the live entries");
            let report = staged.switch().unwrap();
            // This kernel exchanges on ext4: the method asked for is the method used.
            assert_eq!(report.method, method, "{fs_kind:?} {method:?}");
            let now = live(&p.mnt);
            assert_eq!(ours(&now), as_files(&a), "{fs_kind:?} {method:?}");
            assert_eq!(foreign(&now), foreign_fixture(), "{fs_kind:?} {method:?}");
            assert!(!p.mnt.join("loader/entries.staged").exists());
            let b = our_set('b', &kb, &ia);
            let staged = dir.stage(&b, &[kb.file(), ia.file()]).unwrap();
            // Carried foreign entries: hard links on ext4, copies under vfat's rules.
            for (name, _) in FOREIGN {
                let ino = |d: &str| fs::metadata(p.mnt.join(d).join(name)).unwrap().ino();
                let linked = ino("loader/entries") == ino("loader/entries.staged");
                assert_eq!(linked, fs_kind == FsKind::Ext4, "{name} ({fs_kind:?} {method:?})");
            }
            staged.switch().unwrap();
            let now = live(&p.mnt);
            assert_eq!(ours(&now), as_files(&b), "{fs_kind:?} {method:?}");
            assert_eq!(foreign(&now), foreign_fixture(), "{fs_kind:?} {method:?}");
            let after = identities(&p.mnt);
            for (name, (ino, sec, nsec)) in &before {
                let (ino2, sec2, nsec2) = after[name];
                assert_eq!((sec, nsec), (&sec2, &nsec2), "{name}: modification time changed ({fs_kind:?} {method:?})");
                if fs_kind == FsKind::Ext4 || method == SwitchMethod::PerEntry {
                    assert_eq!(*ino, ino2, "{name}: not the same inode ({fs_kind:?} {method:?})");
                }
            }
            assert_eq!(fs::read(p.mnt.join("loader/loader.conf")).unwrap(), b"timeout 3\n");
            // Set a's kernel is needed no more; set b's files are kept.
            let collected = dir.collect_unused_files().unwrap();
            assert_eq!(collected.removed, vec![ka.digest.to_string()]);
            assert_eq!(collected.kept, 2);
            for blob in [&kb, &ia] {
                dir.verify_file(&blob.digest).unwrap();
                assert_eq!(fs::read(p.mnt.join(FILES_DIR).join(blob.digest.to_string())).unwrap(), fs::read(&blob.path).unwrap());
            }
            bootable(&p.mnt, &live(&p.mnt)).unwrap();
            let listed = dir.entries().unwrap();
            assert_eq!(listed.iter().filter(|l| l.ours).count(), 2);
            assert_eq!(listed.len(), 5, "three foreign .conf files and two of sealroot's");
            println!("{fs_kind:?} {method:?}: switched by {:?}", report.method);
        }
    }
}

mount_test! {
    /// systemd's own parser (`bootctl list --json`) reads sealroot's entries as written, boot
    /// counter included, and reads every foreign entry as sealroot's parser does.
    fn bootctl_reads_the_entries_as_sealroot_does() {
        let test = "bootctl_reads_the_entries_as_sealroot_does";
        if !have("bootctl") {
            skip(test, "bootctl (Debian's systemd-boot) is not installed");
            return;
        }
        let Some(p) = ext4(test, 32) else { return };
        put_foreign(&p.mnt);
        let (k, i) = (blob(&p.work, 4, 100_000), blob(&p.work, 5, 50_000));
        let dir = open(&p.mnt, FsKind::Vfat, SwitchMethod::Exchange);
        let set = our_set('a', &k, &i);
        dir.stage(&set, &[k.file(), i.file()]).unwrap().switch().unwrap();
        let out = Command::new("bootctl")
            .arg(format!("--esp-path={}", p.mnt.display()))
            .args(["--no-variables", "--no-pager", "--json=short", "list"])
            .env("SYSTEMD_RELAX_ESP_CHECKS", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bootctl: {stderr}");
        // One JSON object an entry.
        let listed: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        // bootctl warns about the foreign entries' GRUB keys, never about sealroot's.
        assert!(!stderr.contains("sealroot-"), "bootctl complained about sealroot's entries: {stderr}");
        let mut seen = 0;
        for l in dir.entries().unwrap() {
            let name = l.name.unwrap();
            let entry = l.entry.unwrap();
            let shown = listed
                .iter()
                .find(|v| v["id"] == name.id().as_str())
                .unwrap_or_else(|| panic!("bootctl does not list {name}: {listed:?}"));
            agree(&name, &entry, shown);
            seen += 1;
        }
        assert_eq!(seen, listed.len(), "{listed:?}");
        let counted = listed.iter().find(|v| v["id"] == "sealroot-2.conf").unwrap();
        assert_eq!(counted["triesLeft"], 3, "{counted}");
    }
}

/// Asserts that `bootctl`'s JSON for an entry says what sealroot's parser says.
fn agree(name: &EntryName, entry: &Entry, shown: &serde_json::Value) {
    let text = |key: &str| shown.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    assert_eq!(text("title").as_deref(), entry.title(), "{name}: title");
    assert_eq!(
        text("version").as_deref(),
        entry.version(),
        "{name}: version"
    );
    assert_eq!(
        text("machineId").as_deref(),
        entry.machine_id(),
        "{name}: machine-id"
    );
    assert_eq!(
        text("sortKey").as_deref(),
        entry.sort_key(),
        "{name}: sort-key"
    );
    assert_eq!(text("linux").as_deref(), entry.linux(), "{name}: linux");
    assert_eq!(text("efi").as_deref(), entry.efi(), "{name}: efi");
    assert_eq!(text("options"), entry.options(), "{name}: options");
    let initrd: Vec<String> = shown
        .get("initrd")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    assert_eq!(initrd, entry.initrd(), "{name}: initrd");
    let tries = shown.get("triesLeft").and_then(|v| v.as_u64());
    assert_eq!(
        tries,
        name.counter().map(|c| u64::from(c.left)),
        "{name}: tries left"
    );
}

mount_test! {
    /// A partition too full for the new boot files fails at staging with a clear error, and
    /// leaves the partition as it was: the old set in place, no staging directory, no new
    /// files.
    fn a_full_partition_fails_before_the_switch() {
        let test = "a_full_partition_fails_before_the_switch";
        for (fs_kind, method) in MODES {
            let Some(p) = ext4(test, 32) else { return };
            put_foreign(&p.mnt);
            let (ka, ia) = (blob(&p.work, 6, 200_000), blob(&p.work, 7, 100_000));
            let dir = open(&p.mnt, fs_kind, method);
            let a = our_set('a', &ka, &ia);
            dir.stage(&a, &[ka.file(), ia.file()]).unwrap().switch().unwrap();
            let files_before = files_of(&p.mnt.join(FILES_DIR));
            let live_before = live(&p.mnt);
            // Leave 1 MiB; the new kernel takes 4.
            fill(&p.mnt, 1 << 20);
            let kb = blob(&p.work, 8, 4 << 20);
            let b = our_set('b', &kb, &ia);
            let err = dir.stage(&b, &[kb.file(), ia.file()]).unwrap_err();
            assert!(matches!(err, StageError::NoSpace(_)), "{err:?}");
            let text = err.to_string();
            assert!(text.starts_with("the boot partition is full: copying to"), "{text}");
            assert!(text.contains(&kb.digest.to_string()) && text.contains("No space left on device"), "{text}");
            assert_eq!(live(&p.mnt), live_before);
            assert_eq!(files_of(&p.mnt.join(FILES_DIR)), files_before);
            assert!(!p.mnt.join("loader/entries.staged").exists());
            // With room again, the same staging goes through.
            fs::remove_file(p.mnt.join("filler")).unwrap();
            dir.stage(&b, &[kb.file(), ia.file()]).unwrap().switch().unwrap();
            assert_eq!(ours(&live(&p.mnt)), as_files(&b));
        }
    }
}

/// Fills the filesystem mounted at `mnt` but for `leave` bytes.
fn fill(mnt: &Path, leave: u64) {
    let st = rustix::fs::statvfs(mnt).unwrap();
    let avail = st.f_bavail * st.f_frsize;
    let f = fs::File::create(mnt.join("filler")).unwrap();
    rustix::fs::fallocate(
        &f,
        rustix::fs::FallocateFlags::empty(),
        0,
        avail.saturating_sub(leave),
    )
    .unwrap();
    f.sync_all().unwrap();
}

mount_test! {
    /// Foreign entries that change after staging (added, edited, removed, as another OS's
    /// kernel-install would) are as that tool left them after the switch: the staged copy of
    /// an earlier state never wins.
    fn foreign_changes_after_staging_survive_the_switch() {
        for (fs_kind, method) in MODES {
            let Some(p) = ext4("foreign_changes_after_staging_survive_the_switch", 32) else { return };
            put_foreign(&p.mnt);
            let (k, i) = (blob(&p.work, 9, 10_000), blob(&p.work, 10, 10_000));
            let dir = open(&p.mnt, fs_kind, method);
            let staged = dir.stage(&our_set('a', &k, &i), &[k.file(), i.file()]).unwrap();
            let entries = p.mnt.join("loader/entries");
            fs::write(entries.join("debian-6.1.0-13-amd64.conf"), b"title edited\nlinux /x\n").unwrap();
            fs::remove_file(entries.join("Windows.CONF")).unwrap();
            fs::write(entries.join("arch.conf"), b"title Arch\nlinux /vmlinuz-linux\n").unwrap();
            let want = foreign(&live(&p.mnt));
            staged.switch().unwrap();
            assert_eq!(foreign(&live(&p.mnt)), want, "{fs_kind:?} {method:?}");
        }
    }
}

mount_test! {
    /// `--stage`: a staged set waits on disk, another process (a new `BootDir`) sees it and
    /// switches to it; staging again replaces it; discarding it leaves the live set.
    fn a_staged_set_waits_for_another_process() {
        let Some(p) = ext4("a_staged_set_waits_for_another_process", 32) else { return };
        put_foreign(&p.mnt);
        let (k, i) = (blob(&p.work, 11, 10_000), blob(&p.work, 12, 10_000));
        let a = our_set('a', &k, &i);
        let b = our_set('b', &k, &i);
        {
            let dir = open(&p.mnt, FsKind::Ext4, SwitchMethod::Exchange);
            dir.stage(&a, &[k.file(), i.file()]).unwrap().switch().unwrap();
            drop(dir.stage(&b, &[k.file(), i.file()]).unwrap());
        }
        let dir = open(&p.mnt, FsKind::Ext4, SwitchMethod::Exchange);
        assert_eq!(dir.recover().unwrap(), Recovered::Pending);
        let staged = dir.staged_entries().unwrap().unwrap();
        assert_eq!(staged.iter().filter(|l| l.ours).count(), 2);
        assert_eq!(ours(&live(&p.mnt)), as_files(&a));
        dir.discard_staged().unwrap();
        assert!(dir.staged_entries().unwrap().is_none());
        assert!(dir.switch_staged().is_err());
        drop(dir.stage(&b, &[k.file(), i.file()]).unwrap());
        let report = open(&p.mnt, FsKind::Ext4, SwitchMethod::Exchange).switch_staged().unwrap();
        assert_eq!(report.method, SwitchMethod::Exchange);
        assert_eq!(ours(&live(&p.mnt)), as_files(&b));
        assert_eq!(foreign(&live(&p.mnt)), foreign_fixture());
    }
}

mount_test! {
    /// A directory among the foreign entries cannot be carried into the staging directory:
    /// the switch goes entry by entry instead, and the directory stays where it is.
    fn a_foreign_directory_makes_the_switch_go_entry_by_entry() {
        let Some(p) = ext4("a_foreign_directory_makes_the_switch_go_entry_by_entry", 32) else { return };
        put_foreign(&p.mnt);
        fs::create_dir(p.mnt.join("loader/entries/old.d")).unwrap();
        fs::write(p.mnt.join("loader/entries/old.d/x.conf"), b"title x\n").unwrap();
        let (k, i) = (blob(&p.work, 13, 10_000), blob(&p.work, 14, 10_000));
        let dir = open(&p.mnt, FsKind::Ext4, SwitchMethod::Exchange);
        let report = dir.stage(&our_set('a', &k, &i), &[k.file(), i.file()]).unwrap().switch().unwrap();
        assert_eq!(report.method, SwitchMethod::PerEntry);
        assert_eq!(fs::read(p.mnt.join("loader/entries/old.d/x.conf")).unwrap(), b"title x\n");
        assert_eq!(ours(&live(&p.mnt)), as_files(&our_set('a', &k, &i)));
    }
}

mount_test! {
    /// Boot counting as systemd does it: a new entry with tries, renamed by each boot attempt
    /// (as systemd-boot renames it), then marked good (the counter dropped, as
    /// systemd-bless-boot does). A switch keeps foreign entries' counters as they are.
    fn boot_counting_renames_only_our_entry() {
        let Some(Start { dir, p, .. }) =
            start("boot_counting_renames_only_our_entry", FsKind::Vfat, SwitchMethod::Exchange, 15)
        else {
            return;
        };
        let entries = p.mnt.join("loader/entries");
        let mut name = EntryName::parse("sealroot-2+3.conf").unwrap();
        let bytes = fs::read(entries.join(name.as_str())).unwrap();
        for want in ["sealroot-2+2-1.conf", "sealroot-2+1-2.conf"] {
            let next = name.after_boot_attempt().unwrap();
            assert_eq!(next.as_str(), want);
            fs::rename(entries.join(name.as_str()), entries.join(next.as_str())).unwrap();
            name = next;
        }
        let good = name.with_counter(None);
        dir.rename_entry(&name, &good).unwrap();
        assert_eq!(fs::read(entries.join("sealroot-2.conf")).unwrap(), bytes);
        assert!(!entries.join(name.as_str()).exists());
        let foreign_name = EntryName::parse("fedora-6.5.6+2-1.conf").unwrap();
        assert!(dir.rename_entry(&foreign_name, &foreign_name.with_counter(None)).is_err());
        assert_eq!(foreign(&live(&p.mnt)), foreign_fixture());
        let listed = dir.entries().unwrap();
        let ours_now: Vec<String> = listed.iter().filter(|l| l.ours).map(|l| l.file_name.to_string_lossy().into_owned()).collect();
        assert_eq!(ours_now, ["sealroot-1.conf", "sealroot-2.conf"]);
    }
}

mount_test! {
    /// A torn exchange on vfat (both names on one directory) is recognised and nothing is
    /// removed. The alias is made with a bind mount of `loader/entries` over the staging
    /// directory: a file made through one name shows through the other, as on the
    /// cross-linked vfat.
    fn recovery_refuses_a_cross_linked_staging_directory() {
        let test = "recovery_refuses_a_cross_linked_staging_directory";
        let Some(Start { p, .. }) = start(test, FsKind::Vfat, SwitchMethod::Exchange, 17) else {
            return;
        };
        let before = live(&p.mnt);
        let staged = p.mnt.join("loader/entries.staged");
        fs::create_dir(&staged).unwrap();
        let st = Command::new("mount").arg("--bind").arg(p.mnt.join("loader/entries")).arg(&staged).status().unwrap();
        assert!(st.success());
        let err = BootDir::open(&p.mnt, FsKind::Vfat).unwrap().recover().unwrap_err();
        assert!(matches!(err, RecoverError::CrossLinked { .. }), "{err:?}");
        assert!(err.to_string().contains("fsck.vfat"), "{err}");
        assert_eq!(live(&p.mnt), before);
    }
}

mount_test! {
    /// At least 50 kills at random moments of staging, switching and collecting, for each
    /// filesystem kind and switch method. After every kill: foreign entries byte-identical,
    /// every entry complete and its files present; sealroot's entries exactly set a or set b
    /// (by exchange), or complete entries of both (entry by entry, before recovery); after
    /// `recover`, exactly one set. At the end no file is left in `sealroot/` that no entry
    /// needs.
    fn kill_9_during_switches_leaves_the_old_or_the_new_set() {
        kill::kills("kill_9_during_switches_leaves_the_old_or_the_new_set");
    }
}

mount_test! {
    /// A damaged list of names in the staging directory is an error naming the file; the
    /// live entries stay; the staged set can still be discarded. The filesystem's kind is
    /// detected from its magic number.
    fn a_damaged_staging_marker_is_reported_and_changes_nothing() {
        let test = "a_damaged_staging_marker_is_reported_and_changes_nothing";
        let Some(Start { dir, k, i, p }) = start(test, FsKind::Ext4, SwitchMethod::Exchange, 19) else {
            return;
        };
        assert_eq!(FsKind::detect(fs::File::open(&p.mnt).unwrap()).unwrap(), FsKind::Ext4);
        let before = live(&p.mnt);
        drop(dir.stage(&our_set('b', &k, &i), &[k.file(), i.file()]).unwrap());
        let marker = p.mnt.join("loader/entries.staged/sealroot.staged");
        fs::write(&marker, b"sealroot-1.conf\nother.conf\n").unwrap();
        let err = dir.switch_staged().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sealroot.staged") && text.contains("other.conf"), "{text}");
        assert_eq!(live(&p.mnt), before);
        dir.discard_staged().unwrap();
        assert!(!p.mnt.join("loader/entries.staged").exists());
        assert_eq!(live(&p.mnt), before);
    }
}
