//! Boot Loader Specification Type #1 entries (`loader/entries/*.conf`): a tolerant parser
//! that keeps every line, a canonical writer for sealroot's own entries, and the names of
//! entries with systemd's boot counting.
//!
//! # The format, as systemd reads it
//!
//! The [specification](https://uapi-group.org/specifications/specs/boot_loader_specification/)
//! leaves details open; these rules are those of systemd's two parsers, `bootctl`'s
//! (`src/shared/bootspec.c`) and systemd-boot's (`src/boot/boot.c`), where they agree:
//!
//! - A line ends at `\n`, `\r\n` or a lone `\r` (both parsers end a line at a lone `\r`).
//!   Leading and trailing spaces and tabs are ignored. An empty line, or one whose first
//!   other character is `#`, says nothing.
//! - Any other line is a *field*: a key (up to the first space or tab), then the value (the
//!   rest, leading spaces and tabs skipped). Keys are case-sensitive. A key neither parser
//!   knows is ignored by both (`bootctl` prints a warning), so an entry may carry keys of
//!   other tools (GRUB's `grub_class`) and still boot.
//! - `title`, `version`, `machine-id`, `sort-key`, `linux`, `efi`, `devicetree` and
//!   `architecture` hold one value: the last line with a non-empty value wins. `initrd` may be
//!   repeated, one path a line, in order. `options` may be repeated; the values are joined
//!   with single spaces. `devicetree-overlay` holds space-separated paths and may be repeated.
//!   A field with an empty value is ignored, as `bootctl` ignores it.
//! - Paths are relative to the root of the partition holding the entry, with or without a
//!   leading `/`; `bootctl` ignores a path with a trailing `/` or a `.` or `..` component
//!   ([`normalize_path`]).
//! - Where the parsers differ, sealroot follows `bootctl`, and its writer never writes what
//!   they would read differently: systemd-boot strips one pair of double quotes around a
//!   whole value (`title "A"` is `A` to it, `"A"` to `bootctl`), so a value both starting and
//!   ending with `"` is refused ([`ValueError::Quoted`]).
//!
//! # Tolerance and what is truly broken
//!
//! [`Entry::parse`] keeps every line as it was read, comments, blank lines, unknown keys and
//! line endings included, in order: [`Entry::to_bytes`] gives back the exact bytes parsed,
//! and editing one field ([`Entry::set`]) leaves every other line as it was. Only what
//! neither systemd parser reads sensibly is an error ([`ParseError`], naming the line): a file
//! over [`MAX_ENTRY_SIZE`], a NUL byte, text that is not UTF-8 (systemd-boot requires 7-bit
//! ASCII or UTF-8). Whether an entry can boot (it has a `linux` or `efi` path, the files
//! exist) is a separate question ([`Entry::boot_paths`]), asked of sealroot's own entries
//! before they are switched to.
//!
//! # Names and boot counting
//!
//! An entry's file name is `ID.conf`, or with a boot counter `ID+LEFT.conf` or
//! `ID+LEFT-DONE.conf` ([`EntryName`]). systemd-boot renames a counted entry at each boot
//! attempt (`+3` → `+2-1` → `+1-2` → `+0-3`, [`EntryName::after_boot_attempt`]), shows entries
//! with no tries left last, and `systemd-bless-boot` drops the counter once the boot is good
//! ([`EntryName::with_counter`] with `None`). The counter is the text after the *last* `+`
//! before the suffix, digits, optionally `-` and digits, ending exactly at the suffix;
//! anything else (`a+b.conf`, `a+1x.conf`) has no counter and the `+` is part of the id. A
//! counter over `i32::MAX` makes `bootctl` refuse the entry, so it is an error here too.
//!
//! # Which entries are sealroot's
//!
//! An entry is sealroot's when its name, without counter, starts with [`OUR_PREFIX`]
//! (ASCII case ignored, as on vfat). Nothing inside the file marks it: `bootctl` warns about
//! every unknown key on every listing, and a marker in the content would travel with a copy a
//! user makes to keep a customised entry, which sealroot would then delete. A name prefix
//! makes the rule plain: entries named `sealroot-*` are replaced whole at each deployment
//! change (the comment [`OUR_HEADER`] at their top says so), and every other entry is never
//! changed.

use std::fmt;

/// The most bytes an entry file may hold. systemd's parsers refuse a line over 1 MiB
/// (`LONG_LINE_MAX`); real entries are a few hundred bytes.
pub const MAX_ENTRY_SIZE: usize = 1 << 20;

/// The suffix of a Type #1 entry's file name (matched without regard to ASCII case).
pub const ENTRY_SUFFIX: &str = ".conf";

/// The longest file name (a name component on Linux and vfat).
pub const MAX_NAME_LEN: usize = 255;

/// The largest boot counter value: systemd-boot and `bootctl` allow up to `INT_MAX`.
pub const MAX_TRIES: u32 = i32::MAX as u32;

/// The start of the name of every entry sealroot writes, and of no other.
pub const OUR_PREFIX: &str = "sealroot-";

/// The first line of every entry sealroot writes.
pub const OUR_HEADER: &str =
    "# Written by sealroot, and replaced whole at each deployment change. \
To keep a changed copy, save it under a name that does not start with \"sealroot-\".";

/// The keys of the specification (and systemd's `uki`, `uki-url` and `profile`) that this
/// module knows; any other key is kept and ignored.
pub const KNOWN_KEYS: &[&str] = &[
    "title",
    "version",
    "machine-id",
    "sort-key",
    "linux",
    "initrd",
    "efi",
    "options",
    "devicetree",
    "devicetree-overlay",
    "architecture",
    "uki",
    "uki-url",
    "profile",
];

/// How a line ended in the file, kept so that an entry writes back byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
    /// A lone `\r`.
    Cr,
    /// The last line, without an ending.
    None,
}

impl LineEnding {
    fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
            LineEnding::Cr => "\r",
            LineEnding::None => "",
        }
    }
}

/// One line of an entry, as read (without its ending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    text: String,
    ending: LineEnding,
}

/// What a line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind<'a> {
    /// Nothing but spaces and tabs.
    Blank,
    /// A comment: the text from the `#` on.
    Comment(&'a str),
    /// A key and its value (empty when the line has only a key).
    Field {
        /// The key.
        key: &'a str,
        /// The value, from its first character that is not a space or tab to the last.
        value: &'a str,
    },
}

/// Whether `c` separates a key from its value (and is trimmed from both ends of a line).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl Line {
    /// The line's text, without its ending.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How the line ended.
    pub fn ending(&self) -> LineEnding {
        self.ending
    }

    /// What the line says.
    pub fn kind(&self) -> LineKind<'_> {
        let t = self.text.trim_matches(is_blank);
        if t.is_empty() {
            return LineKind::Blank;
        }
        if t.starts_with('#') {
            return LineKind::Comment(t);
        }
        match t.find(is_blank) {
            None => LineKind::Field { key: t, value: "" },
            Some(i) => LineKind::Field {
                key: &t[..i],
                value: t[i..].trim_start_matches(is_blank),
            },
        }
    }

    /// The key and value, if the line is a field.
    fn field(&self) -> Option<(&str, &str)> {
        match self.kind() {
            LineKind::Field { key, value } => Some((key, value)),
            _ => None,
        }
    }

    /// A field line as sealroot writes it: `key value\n`.
    fn canonical(key: &str, value: &str) -> Line {
        Line {
            text: format!("{key} {value}"),
            ending: LineEnding::Lf,
        }
    }
}

/// Why bytes are not an entry; `line` counts from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The file is larger than [`MAX_ENTRY_SIZE`].
    #[error("{size} bytes, more than the {MAX_ENTRY_SIZE} an entry may hold")]
    TooLarge {
        /// The file's size.
        size: usize,
    },
    /// A line holds a NUL byte.
    #[error("line {line}: a NUL byte")]
    Nul {
        /// The line.
        line: usize,
    },
    /// A line is not UTF-8.
    #[error("line {line}: not UTF-8 (entries are 7-bit ASCII or UTF-8)")]
    NotUtf8 {
        /// The line.
        line: usize,
    },
}

impl ParseError {
    /// The line the error is on (none for a whole file too large).
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::TooLarge { .. } => None,
            ParseError::Nul { line } | ParseError::NotUtf8 { line } => Some(*line),
        }
    }
}

/// Why a key or value cannot be written into an entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The key is empty, holds a space, tab or control character, or starts with `#`.
    #[error("{key:?} cannot be a key")]
    BadKey {
        /// The key.
        key: String,
    },
    /// The value is empty (remove the key instead).
    #[error("{key}: empty value")]
    Empty {
        /// The key.
        key: String,
    },
    /// The value holds a line break, a NUL or another control character but tab.
    #[error("{key}: the value {value:?} holds a control character")]
    Control {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The value starts or ends with a space or tab, which the parsers drop.
    #[error("{key}: the value {value:?} starts or ends with a space or tab")]
    Padded {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The value starts and ends with `"`: systemd-boot would strip the quotes and `bootctl`
    /// would not.
    #[error("{key}: the value {value:?} is wrapped in double quotes, which systemd-boot strips and bootctl keeps")]
    Quoted {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// An item of a list written on one line (a kernel argument, an overlay path) is empty or
    /// holds a space or tab.
    #[error("{key}: {item:?} cannot be one item of the list")]
    BadItem {
        /// The key.
        key: String,
        /// The item.
        item: String,
    },
}

/// Checks that `key` can be written as a key.
fn check_key(key: &str) -> Result<(), ValueError> {
    if key.is_empty() || key.starts_with('#') || key.chars().any(|c| is_blank(c) || c.is_control())
    {
        return Err(ValueError::BadKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// Checks that `value` reads back as itself under `key` with both systemd parsers.
fn check_value(key: &str, value: &str) -> Result<(), ValueError> {
    check_key(key)?;
    let err = |make: fn(String, String) -> ValueError| Err(make(key.to_owned(), value.to_owned()));
    if value.is_empty() {
        return Err(ValueError::Empty {
            key: key.to_owned(),
        });
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return err(|key, value| ValueError::Control { key, value });
    }
    if value.starts_with(is_blank) || value.ends_with(is_blank) {
        return err(|key, value| ValueError::Padded { key, value });
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        return err(|key, value| ValueError::Quoted { key, value });
    }
    Ok(())
}

/// Joins list items (kernel arguments, overlay paths) for one line, each checked.
fn join_items(key: &str, items: &[String]) -> Result<String, ValueError> {
    for item in items {
        if item.is_empty() || (item.contains(is_blank) && key != "options") {
            return Err(ValueError::BadItem {
                key: key.to_owned(),
                item: item.clone(),
            });
        }
    }
    Ok(items.join(" "))
}

/// A Type #1 entry: every line of the file, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    lines: Vec<Line>,
}

impl Entry {
    /// Parses an entry file's bytes, keeping every line (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Entry, ParseError> {
        if bytes.len() > MAX_ENTRY_SIZE {
            return Err(ParseError::TooLarge { size: bytes.len() });
        }
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let line = lines.len() + 1;
            let end = rest
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .unwrap_or(rest.len());
            let (text, ending, used) = match rest.get(end) {
                None => (&rest[..end], LineEnding::None, end),
                Some(b'\n') => (&rest[..end], LineEnding::Lf, end + 1),
                Some(_) if rest.get(end + 1) == Some(&b'\n') => {
                    (&rest[..end], LineEnding::CrLf, end + 2)
                }
                Some(_) => (&rest[..end], LineEnding::Cr, end + 1),
            };
            if text.contains(&0) {
                return Err(ParseError::Nul { line });
            }
            let text = std::str::from_utf8(text).map_err(|_| ParseError::NotUtf8 { line })?;
            lines.push(Line {
                text: text.to_owned(),
                ending,
            });
            rest = &rest[used..];
        }
        Ok(Entry { lines })
    }

    /// The entry's bytes: exactly those parsed, but for lines changed since.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.text.len() + 2).sum());
        for line in &self.lines {
            out.extend_from_slice(line.text.as_bytes());
            out.extend_from_slice(line.ending.as_str().as_bytes());
        }
        out
    }

    /// Every line, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The values of every line with key `key` and a non-empty value, in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(Line::field)
            .filter(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| v)
            .collect()
    }

    /// The value of a single-valued key: the last non-empty one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values(key).pop()
    }

    /// `title`.
    pub fn title(&self) -> Option<&str> {
        self.get("title")
    }

    /// `version`.
    pub fn version(&self) -> Option<&str> {
        self.get("version")
    }

    /// `machine-id`.
    pub fn machine_id(&self) -> Option<&str> {
        self.get("machine-id")
    }

    /// `sort-key`.
    pub fn sort_key(&self) -> Option<&str> {
        self.get("sort-key")
    }

    /// `linux`: the kernel's path.
    pub fn linux(&self) -> Option<&str> {
        self.get("linux")
    }

    /// `efi`: an EFI program's path.
    pub fn efi(&self) -> Option<&str> {
        self.get("efi")
    }

    /// `devicetree`.
    pub fn devicetree(&self) -> Option<&str> {
        self.get("devicetree")
    }

    /// `architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("architecture")
    }

    /// Every `initrd` path, in order.
    pub fn initrd(&self) -> Vec<&str> {
        self.values("initrd")
    }

    /// Every `devicetree-overlay` path, in order.
    pub fn devicetree_overlay(&self) -> Vec<&str> {
        self.values("devicetree-overlay")
            .into_iter()
            .flat_map(|v| v.split(is_blank).filter(|s| !s.is_empty()))
            .collect()
    }

    /// The kernel command line: every `options` value joined with spaces.
    pub fn options(&self) -> Option<String> {
        let all = self.values("options");
        (!all.is_empty()).then(|| all.join(" "))
    }

    /// The keys this module does not know, in order of first appearance.
    pub fn unknown_keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (key, _) in self.lines.iter().filter_map(Line::field) {
            if !KNOWN_KEYS.contains(&key) && !out.contains(&key) {
                out.push(key);
            }
        }
        out
    }

    /// Every file the entry makes a boot loader read (`linux`, `efi`, `uki`, each `initrd`,
    /// `devicetree`, each `devicetree-overlay`), as [`normalize_path`] makes them, without the
    /// paths `bootctl` ignores; in that order.
    pub fn boot_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in ["linux", "efi", "uki"] {
            out.extend(self.get(key).and_then(normalize_path));
        }
        out.extend(self.initrd().into_iter().filter_map(normalize_path));
        out.extend(self.devicetree().and_then(normalize_path));
        out.extend(
            self.devicetree_overlay()
                .into_iter()
                .filter_map(normalize_path),
        );
        out
    }

    /// Sets single-valued key `key` to `value`: the last line with that key becomes
    /// `key value` and other lines with it are removed; without one, the line is added at the
    /// end. Every other line stays as it was.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ValueError> {
        check_value(key, value)?;
        self.replace_all(key, vec![Line::canonical(key, value)]);
        Ok(())
    }

    /// Sets repeatable key `key` (`initrd`, `options`) to `values`, one line each, where the
    /// first line with that key stood (or at the end); other lines with it are removed.
    pub fn set_all(&mut self, key: &str, values: &[&str]) -> Result<(), ValueError> {
        let mut lines = Vec::with_capacity(values.len());
        for value in values {
            check_value(key, value)?;
            lines.push(Line::canonical(key, value));
        }
        check_key(key)?;
        self.replace_all(key, lines);
        Ok(())
    }

    /// Removes every line with key `key`.
    pub fn remove(&mut self, key: &str) {
        self.replace_all(key, Vec::new());
    }

    /// Replaces the lines with key `key` by `new`, put where the last one stood when there is
    /// exactly one new line, else where the first stood, else at the end.
    fn replace_all(&mut self, key: &str, new: Vec<Line>) {
        let at: Vec<usize> = (0..self.lines.len())
            .filter(|&i| self.lines[i].field().is_some_and(|(k, _)| k == key))
            .collect();
        let place = if new.len() == 1 {
            at.last()
        } else {
            at.first()
        };
        let mut place = place.map_or(self.lines.len(), |&i| i);
        for &i in at.iter().rev() {
            self.lines.remove(i);
            if i < place {
                place -= 1;
            }
        }
        // A last line without an ending gets one before anything follows it.
        if place == self.lines.len() && !new.is_empty() {
            if let Some(last) = self.lines.last_mut() {
                if last.ending == LineEnding::None {
                    last.ending = LineEnding::Lf;
                }
            }
        }
        self.lines.splice(place..place, new);
    }
}

/// A path of an entry as `bootctl` reads it: made absolute (`a/b` is `/a/b`), repeated `/`
/// folded; `None` for what `bootctl` ignores (a trailing `/`, a `.` or `..` component, an
/// empty path).
pub fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() || path.ends_with('/') {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 1);
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return None;
        }
        out.push('/');
        out.push_str(part);
    }
    (!out.is_empty()).then_some(out)
}

/// The content of an entry sealroot writes, written by [`EntrySpec::to_entry`] in one
/// canonical form: [`OUR_HEADER`], then `title`, `version`, `machine-id`, `sort-key`,
/// `architecture`, `linux`, each `initrd`, `devicetree`, `devicetree-overlay` and `options`,
/// each on one line, the absent ones left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntrySpec {
    /// The menu's text.
    pub title: String,
    /// The version, shown when titles repeat and compared when sort keys are equal.
    pub version: Option<String>,
    /// The machine id (32 hex digits).
    pub machine_id: Option<String>,
    /// The key systemd-boot sorts by (ascending).
    pub sort_key: Option<String>,
    /// The EFI architecture (`x64`, `aa64`): other machines skip the entry.
    pub architecture: Option<String>,
    /// The kernel's path on the boot partition.
    pub linux: String,
    /// The initramfs paths, in order.
    pub initrd: Vec<String>,
    /// The device tree's path.
    pub devicetree: Option<String>,
    /// Device tree overlay paths.
    pub devicetree_overlay: Vec<String>,
    /// The kernel arguments, in order, written on one `options` line.
    pub options: Vec<String>,
}

impl EntrySpec {
    /// The entry in its canonical form, or why a value cannot be written.
    pub fn to_entry(&self) -> Result<Entry, ValueError> {
        let mut fields: Vec<(&str, String)> = vec![("title", self.title.clone())];
        let optional = [
            ("version", &self.version),
            ("machine-id", &self.machine_id),
            ("sort-key", &self.sort_key),
            ("architecture", &self.architecture),
        ];
        fields.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.clone()))),
        );
        fields.push(("linux", self.linux.clone()));
        fields.extend(self.initrd.iter().map(|p| ("initrd", p.clone())));
        if let Some(dt) = &self.devicetree {
            fields.push(("devicetree", dt.clone()));
        }
        if !self.devicetree_overlay.is_empty() {
            let joined = join_items("devicetree-overlay", &self.devicetree_overlay)?;
            fields.push(("devicetree-overlay", joined));
        }
        if !self.options.is_empty() {
            fields.push(("options", join_items("options", &self.options)?));
        }
        let mut lines = vec![Line {
            text: OUR_HEADER.to_owned(),
            ending: LineEnding::Lf,
        }];
        for (key, value) in fields {
            check_value(key, &value)?;
            lines.push(Line::canonical(key, &value));
        }
        Ok(Entry { lines })
    }
}

/// A boot counter: tries left and, when the name has it, tries done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BootCounter {
    /// Boot attempts left; 0 marks the entry bad (systemd-boot shows it last).
    pub left: u32,
    /// Boot attempts made, when the name says (`+LEFT-DONE`); systemd-boot takes a missing
    /// one as 0.
    pub done: Option<u32>,
}

/// Why a file name is not an entry's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, longer than [`MAX_NAME_LEN`], `.` or `..`.
    #[error("{name:?}: not a file name of at most {MAX_NAME_LEN} bytes")]
    Length {
        /// The name.
        name: String,
    },
    /// A character outside `A-Z a-z 0-9 + - _ . @` (systemd's set for entry names).
    #[error("{name:?}: entry names hold only ASCII letters, digits and + - _ . @")]
    Character {
        /// The name.
        name: String,
    },
    /// Not ending in `.conf`.
    #[error("{name:?}: an entry's name ends in .conf")]
    Suffix {
        /// The name.
        name: String,
    },
    /// A boot counter over [`MAX_TRIES`], which `bootctl` refuses.
    #[error("{name:?}: the boot counter is over {MAX_TRIES}")]
    Counter {
        /// The name.
        name: String,
    },
    /// Not a name sealroot writes: it must start with [`OUR_PREFIX`] and hold only lowercase
    /// letters, digits, `-`, `_` and `.` before the counter.
    #[error("{name:?}: sealroot's entries are named {OUR_PREFIX}ID.conf, ID of a-z 0-9 - _ .")]
    NotOurs {
        /// The name.
        name: String,
    },
}

/// The name of an entry file, with its boot counter (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryName {
    /// The name as found or made.
    raw: String,
    /// Where the id's stem ends: at the counter's `+`, or at the suffix.
    stem_end: usize,
    /// Where the suffix starts.
    suffix_start: usize,
    counter: Option<BootCounter>,
}

/// Reads a run of digits at the start of `s` as a counter value: `None` for no digits,
/// `Some(Err(()))` for a value over [`MAX_TRIES`].
fn leading_number(s: &str) -> Option<(Result<u32, ()>, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let value = s[..n]
        .parse::<u64>()
        .ok()
        .filter(|&v| v <= u64::from(MAX_TRIES))
        .map(|v| v as u32)
        .ok_or(());
    Some((value, &s[n..]))
}

/// Finds the boot counter of `name`, whose suffix starts at `suffix_start` (systemd's
/// `boot_filename_extract_tries`): `Ok(None)` for none, with the `+`'s position otherwise.
fn find_counter(name: &str, suffix_start: usize) -> Result<Option<(usize, BootCounter)>, ()> {
    let Some(plus) = name[..suffix_start].rfind('+') else {
        return Ok(None);
    };
    let counted = &name[plus + 1..suffix_start];
    let Some((left, rest)) = leading_number(counted) else {
        return Ok(None);
    };
    let (done, rest) = match rest.strip_prefix('-') {
        None => (None, rest),
        Some(after) => match leading_number(after) {
            None => return Ok(None),
            Some((done, rest)) => (Some(done), rest),
        },
    };
    if !rest.is_empty() {
        return Ok(None);
    }
    let counter = BootCounter {
        left: left?,
        done: done.transpose()?,
    };
    Ok(Some((plus, counter)))
}

impl EntryName {
    /// Parses an entry file's name.
    pub fn parse(name: &str) -> Result<EntryName, NameError> {
        let owned = || name.to_owned();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name == "." || name == ".." {
            return Err(NameError::Length { name: owned() });
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-_.@".contains(&b))
        {
            return Err(NameError::Character { name: owned() });
        }
        let suffix_start = name.len().saturating_sub(ENTRY_SUFFIX.len());
        if !name[suffix_start..].eq_ignore_ascii_case(ENTRY_SUFFIX) {
            return Err(NameError::Suffix { name: owned() });
        }
        let counter =
            find_counter(name, suffix_start).map_err(|()| NameError::Counter { name: owned() })?;
        let (stem_end, counter) = match counter {
            Some((plus, counter)) => (plus, Some(counter)),
            None => (suffix_start, None),
        };
        Ok(EntryName {
            raw: name.to_owned(),
            stem_end,
            suffix_start,
            counter,
        })
    }

    /// The name of one of sealroot's entries: `STEM.conf`, or with `counter`
    /// `STEM+LEFT[-DONE].conf`. `stem` starts with [`OUR_PREFIX`] and holds only `a-z 0-9 -
    /// _ .` (lowercase, so that names never differ only in case, which vfat could not tell
    /// apart).
    pub fn ours(stem: &str, counter: Option<BootCounter>) -> Result<EntryName, NameError> {
        let fits = stem.len() > OUR_PREFIX.len()
            && stem.starts_with(OUR_PREFIX)
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !fits {
            return Err(NameError::NotOurs {
                name: stem.to_owned(),
            });
        }
        EntryName::parse(&compose(stem, counter, ENTRY_SUFFIX))
    }

    /// The file name.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The name without counter and suffix.
    pub fn stem(&self) -> &str {
        &self.raw[..self.stem_end]
    }

    /// The entry's id, as systemd names it: the name without its counter (`a+3-1.conf` is
    /// `a.conf`). systemd-boot compares ids without regard to case.
    pub fn id(&self) -> String {
        format!("{}{}", self.stem(), &self.raw[self.suffix_start..])
    }

    /// The boot counter, if the name has one.
    pub fn counter(&self) -> Option<BootCounter> {
        self.counter
    }

    /// Whether sealroot wrote the entry: the stem starts with [`OUR_PREFIX`], case ignored.
    pub fn is_ours(&self) -> bool {
        self.stem()
            .get(..OUR_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(OUR_PREFIX))
    }

    /// The same entry with another counter, or none (as `systemd-bless-boot` names a good
    /// entry).
    pub fn with_counter(&self, counter: Option<BootCounter>) -> EntryName {
        let raw = compose(self.stem(), counter, &self.raw[self.suffix_start..]);
        EntryName {
            stem_end: self.stem_end,
            suffix_start: raw.len() - ENTRY_SUFFIX.len(),
            raw,
            counter,
        }
    }

    /// The name systemd-boot gives the entry when it tries to boot it: one try less left,
    /// one more done (`+3` → `+2-1`, `+0-3` → `+0-4`). `None` for a name without counter.
    pub fn after_boot_attempt(&self) -> Option<EntryName> {
        let c = self.counter?;
        let done = c.done.unwrap_or(0).saturating_add(1).min(MAX_TRIES);
        Some(self.with_counter(Some(BootCounter {
            left: c.left.saturating_sub(1),
            done: Some(done),
        })))
    }
}

/// `stem`, the counter if any, `suffix`.
fn compose(stem: &str, counter: Option<BootCounter>, suffix: &str) -> String {
    match counter {
        None => format!("{stem}{suffix}"),
        Some(BootCounter { left, done: None }) => format!("{stem}+{left}{suffix}"),
        Some(BootCounter {
            left,
            done: Some(done),
        }) => format!("{stem}+{left}-{done}{suffix}"),
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for EntryName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_endings_and_kinds() {
        let text = b"# c\r\ntitle  A  b \n\n\tlinux /k\roptions a\noptions b\nx-key\nend";
        let e = Entry::parse(text).unwrap();
        assert_eq!(e.to_bytes(), text);
        let kinds: Vec<LineKind<'_>> = e.lines().iter().map(Line::kind).collect();
        assert_eq!(kinds[0], LineKind::Comment("# c"));
        assert_eq!(
            kinds[1],
            LineKind::Field {
                key: "title",
                value: "A  b"
            }
        );
        assert_eq!(kinds[2], LineKind::Blank);
        assert_eq!(e.lines()[3].ending(), LineEnding::Cr);
        assert_eq!(e.linux(), Some("/k"));
        assert_eq!(e.options().as_deref(), Some("a b"));
        assert_eq!(e.unknown_keys(), vec!["x-key", "end"]);
        assert_eq!(e.lines().last().unwrap().ending(), LineEnding::None);
    }

    #[test]
    fn set_keeps_other_lines_and_ends_the_last_line() {
        let mut e = Entry::parse(b"title a\n# keep\ntitle b\nfoo bar").unwrap();
        e.set("title", "c").unwrap();
        assert_eq!(e.to_bytes(), b"# keep\ntitle c\nfoo bar");
        e.set("linux", "/k").unwrap();
        assert_eq!(e.to_bytes(), b"# keep\ntitle c\nfoo bar\nlinux /k\n");
        e.set_all("options", &["a=1", "b"]).unwrap();
        e.set_all("options", &["c"]).unwrap();
        assert_eq!(e.options().as_deref(), Some("c"));
        e.remove("foo");
        assert_eq!(e.unknown_keys(), Vec::<&str>::new());
        assert!(matches!(
            e.set("title", "\"q\""),
            Err(ValueError::Quoted { .. })
        ));
        assert!(matches!(
            e.set("title", " x"),
            Err(ValueError::Padded { .. })
        ));
        assert!(matches!(
            e.set("title", "a\nb"),
            Err(ValueError::Control { .. })
        ));
        assert!(matches!(e.set("a b", "x"), Err(ValueError::BadKey { .. })));
    }

    #[test]
    fn paths_are_normalized_as_bootctl_does() {
        assert_eq!(normalize_path("a//b").as_deref(), Some("/a/b"));
        assert_eq!(normalize_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalize_path("/a/../b"), None);
        assert_eq!(normalize_path("/a/"), None);
        assert_eq!(normalize_path("//"), None);
    }

    #[test]
    fn names_follow_systemd_boot_counting() {
        type Case<'a> = (&'a str, &'a str, Option<(u32, Option<u32>)>);
        let cases: &[Case<'_>] = &[
            ("a.conf", "a.conf", None),
            ("a+3.conf", "a.conf", Some((3, None))),
            ("a+3-0.conf", "a.conf", Some((3, Some(0)))),
            ("a+b+2-1.CONF", "a+b.CONF", Some((2, Some(1)))),
            ("a+.conf", "a+.conf", None),
            ("a+1-.conf", "a+1-.conf", None),
            ("a+1x.conf", "a+1x.conf", None),
            ("a+-1.conf", "a+-1.conf", None),
            ("a+007.conf", "a.conf", Some((7, None))),
        ];
        for (name, id, counter) in cases {
            let n = EntryName::parse(name).unwrap();
            assert_eq!(&n.id(), id, "{name}");
            assert_eq!(n.counter().map(|c| (c.left, c.done)), *counter, "{name}");
            assert_eq!(n.as_str(), *name);
        }
        assert!(matches!(
            EntryName::parse("a+2147483648.conf"),
            Err(NameError::Counter { .. })
        ));
        assert!(EntryName::parse("a+2147483647.conf").is_ok());
        assert!(matches!(
            EntryName::parse("a b.conf"),
            Err(NameError::Character { .. })
        ));
        assert!(matches!(
            EntryName::parse("a.txt"),
            Err(NameError::Suffix { .. })
        ));
        let n = EntryName::parse("sealroot-x+3.conf").unwrap();
        let seen: Vec<String> = std::iter::successors(Some(n), |n| {
            n.after_boot_attempt()
                .filter(|m| m.counter().unwrap().done < Some(4))
        })
        .map(|n| n.to_string())
        .collect();
        assert_eq!(
            seen,
            [
                "sealroot-x+3.conf",
                "sealroot-x+2-1.conf",
                "sealroot-x+1-2.conf",
                "sealroot-x+0-3.conf"
            ]
        );
        assert_eq!(
            EntryName::parse("sealroot-x+0-3.conf")
                .unwrap()
                .with_counter(None)
                .as_str(),
            "sealroot-x.conf"
        );
        assert!(EntryName::parse("SEALROOT-x.conf").unwrap().is_ours());
        assert!(!EntryName::parse("sealroot.conf").unwrap().is_ours());
        assert!(EntryName::ours("sealroot-A", None).is_err());
        assert!(EntryName::ours("sealroot-", None).is_err());
        assert!(EntryName::ours("other-a", None).is_err());
    }
}
