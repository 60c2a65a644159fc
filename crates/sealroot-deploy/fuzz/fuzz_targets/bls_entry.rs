//! Any bytes as a boot entry file: its name, a NUL, its content (a file of another OS, a
//! hand edit, a damaged disk). `EntryName::parse` and `Entry::parse` must not panic; a name
//! they accept prints back as itself and keeps its id through boot attempts; an entry they
//! accept writes back byte for byte, survives an edit of one field with every other line
//! unchanged, and its values written by the canonical writer read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroot_deploy::bls::{Entry, EntryName, EntrySpec, LineKind, MAX_TRIES};

fn check_name(text: &str) {
    let Ok(name) = EntryName::parse(text) else {
        return;
    };
    assert_eq!(name.as_str(), text);
    // Rebuilt, the counter loses only leading zeros.
    let rebuilt = EntryName::parse(name.with_counter(name.counter()).as_str()).unwrap();
    assert_eq!((rebuilt.counter(), rebuilt.id()), (name.counter(), name.id()));
    let id = name.id();
    assert_eq!(name.counter().is_some(), id.len() < text.len());
    if let Some(next) = name.after_boot_attempt() {
        let again = EntryName::parse(next.as_str()).expect("the next name parses");
        assert_eq!(again.id(), id);
        let (before, after) = (name.counter().unwrap(), again.counter().unwrap());
        assert_eq!(after.left, before.left.saturating_sub(1));
        assert!(after.done.unwrap() <= MAX_TRIES);
    }
    assert_eq!(name.with_counter(None).as_str(), id);
}

fn fields(e: &Entry) -> Vec<(String, String)> {
    e.lines()
        .iter()
        .filter_map(|l| match l.kind() {
            LineKind::Field { key, value } => Some((key.to_owned(), value.to_owned())),
            _ => None,
        })
        .collect()
}

fn check_entry(bytes: &[u8]) {
    let Ok(entry) = Entry::parse(bytes) else {
        return;
    };
    assert_eq!(entry.to_bytes(), bytes);
    for p in entry.boot_paths() {
        assert!(p.starts_with('/') && !p.split('/').any(|c| c == ".." || c == "."), "{p}");
    }
    let _ = (entry.options(), entry.devicetree_overlay(), entry.unknown_keys());
    // One field edited: it reads back, the other lines stay.
    let mut edited = entry.clone();
    edited.set("title", "fuzzed title").unwrap();
    let reread = Entry::parse(&edited.to_bytes()).expect("an edited entry parses");
    assert_eq!(reread.title(), Some("fuzzed title"));
    let others = |e: &Entry| -> Vec<(String, String)> {
        fields(e).into_iter().filter(|(k, _)| k != "title").collect()
    };
    assert_eq!(others(&reread), others(&entry));
    // The values, written canonically, read back the same (or are refused).
    let spec = EntrySpec {
        title: entry.title().unwrap_or("t").to_owned(),
        version: entry.version().map(str::to_owned),
        sort_key: entry.sort_key().map(str::to_owned),
        linux: entry.linux().unwrap_or("/k").to_owned(),
        initrd: entry.initrd().into_iter().map(str::to_owned).collect(),
        options: entry.options().into_iter().collect(),
        ..EntrySpec::default()
    };
    if let Ok(canonical) = spec.to_entry() {
        let back = Entry::parse(&canonical.to_bytes()).expect("a canonical entry parses");
        assert_eq!(back.title(), Some(spec.title.as_str()));
        assert_eq!(back.version(), spec.version.as_deref());
        assert_eq!(back.sort_key(), spec.sort_key.as_deref());
        assert_eq!(back.linux(), Some(spec.linux.as_str()));
        assert_eq!(back.initrd(), spec.initrd);
        assert_eq!(back.options(), spec.options.first().cloned());
        assert!(back.unknown_keys().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let (name, content) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    check_name(&String::from_utf8_lossy(name));
    check_entry(content);
});
