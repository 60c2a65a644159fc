//! PAX extended headers (`pax(1)`, "pax Extended Header"): records `"LEN KEY=VALUE\n"` that
//! override the fields of the next entry (`x` headers) or of all later ones (`g` headers).
//!
//! Understood keys: `path`, `linkpath`, `size`, `uid`, `gid`, `mtime` (with a fraction of a
//! second, as GNU tar writes it), the extended attributes `SCHILY.xattr.NAME` (GNU tar, raw
//! value), `LIBARCHIVE.xattr.NAME` (bsdtar: NAME percent-encoded, value base64) and
//! `RHT.security.selinux` (GNU tar `--selinux`). `GNU.sparse.*` marks a sparse file, and the
//! text ACLs of `tar --acls` (`SCHILY.acl.*`) are reported, both to be refused by the caller;
//! every other key (times other than mtime, user and group names, comments, charsets) does not
//! change the tree and is skipped, as POSIX allows.

use std::collections::HashMap;

use sealroot_format::dumpfile::limits::{XATTR_BUDGET_MAX, XATTR_ENTRY_COST, XATTR_HEADER_COST};
use sealroot_format::tree::{Mtime, Xattr};

/// Which extended attributes the build keeps. The others are checked for a well-formed name
/// and dropped as they are read, so they cost neither memory nor the per-file limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum KeepXattrs {
    /// Every one.
    #[default]
    All,
    /// Only `user.*`.
    User,
    /// None.
    None,
}

impl KeepXattrs {
    /// What the options `skip_xattrs` and `user_xattrs` keep (`skip` wins).
    pub(crate) fn from_options(skip: bool, user_only: bool) -> Self {
        match (skip, user_only) {
            (true, _) => KeepXattrs::None,
            (false, true) => KeepXattrs::User,
            (false, false) => KeepXattrs::All,
        }
    }

    /// Whether xattr `name` is kept.
    pub(crate) fn keeps(self, name: &[u8]) -> bool {
        match self {
            KeepXattrs::All => true,
            KeepXattrs::User => name.starts_with(b"user."),
            KeepXattrs::None => false,
        }
    }
}

/// The extended attributes of an entry: in the order first given, a later value of the same
/// name replacing the earlier, with an index by name (so that many of them cost O(n), not
/// O(n²)) and C composefs's count of the space they take, which may not pass its per-file
/// limit: an archive cannot make the reader hold more than one file's worth.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Xattrs {
    list: Vec<Xattr>,
    /// Each name's place in `list`.
    index: HashMap<Vec<u8>, usize>,
    /// `12 + Σ(7 + name + value)` as C `lcfs_node_set_xattr` counts it; 0 with none.
    space: u64,
}

impl Xattrs {
    /// Sets `name` to `value`, replacing an earlier value in its place; refuses it if the
    /// xattrs would then pass composefs's per-file limit.
    pub(crate) fn set(&mut self, name: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        let space = match self.index.get(&name) {
            Some(&i) => self.space - self.list[i].value.len() as u64 + value.len() as u64,
            None => {
                let header = if self.list.is_empty() {
                    XATTR_HEADER_COST
                } else {
                    0
                };
                self.space + header + XATTR_ENTRY_COST + (name.len() + value.len()) as u64
            }
        };
        if space > XATTR_BUDGET_MAX {
            return Err(format!(
                "extended attribute {} takes the file's xattrs past the {XATTR_BUDGET_MAX} bytes \
                 composefs allows one file",
                String::from_utf8_lossy(&name)
            ));
        }
        self.space = space;
        match self.index.get(&name) {
            Some(&i) => self.list[i].value = value,
            None => {
                self.index.insert(name.clone(), self.list.len());
                self.list.push(Xattr { name, value });
            }
        }
        Ok(())
    }

    /// Sets `name` to `value` unless it is set; refuses it as [`Xattrs::set`] does.
    pub(crate) fn set_default(&mut self, name: &[u8], value: &[u8]) -> Result<(), String> {
        if self.index.contains_key(name) {
            return Ok(());
        }
        self.set(name.to_vec(), value.to_vec())
    }

    /// The xattrs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Xattr> {
        self.list.iter()
    }

    /// The xattrs, in order.
    pub(crate) fn into_vec(self) -> Vec<Xattr> {
        self.list
    }
}

/// What extended headers say about an entry, each field `None` where they say nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) linkpath: Option<Vec<u8>>,
    pub(crate) size: Option<u64>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) mtime: Option<Mtime>,
    /// The extended attributes the build keeps.
    pub(crate) xattrs: Xattrs,
    /// A `GNU.sparse.*` key was seen: the entry is a sparse file.
    pub(crate) sparse: bool,
    /// The first key seen whose meaning the tree cannot hold and must not silently lose.
    pub(crate) unsupported: Option<Vec<u8>>,
}

impl Overrides {
    /// The overrides of a global header, as they apply to an entry: only the attributes, not
    /// the path, link target or size of one particular file.
    pub(crate) fn global_defaults(&self) -> Overrides {
        Overrides {
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self.xattrs.clone(),
            ..Overrides::default()
        }
    }

    /// Takes `defaults` (of a global header) where these overrides say nothing.
    pub(crate) fn fill_in(&mut self, defaults: &Overrides) -> Result<(), String> {
        self.uid = self.uid.or(defaults.uid);
        self.gid = self.gid.or(defaults.gid);
        self.mtime = self.mtime.or(defaults.mtime);
        for x in defaults.xattrs.iter() {
            self.xattrs.set_default(&x.name, &x.value)?;
        }
        Ok(())
    }
}

/// Reads the records in `data` into `to`, later records overriding earlier ones. The error
/// says what is wrong, for the caller to put beside the entry's path and offset.
/// Only the xattrs `keep` keeps are stored.
pub(crate) fn apply(mut data: &[u8], to: &mut Overrides, keep: KeepXattrs) -> Result<(), String> {
    while !data.is_empty() {
        // Some writers pad the data with NULs.
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        let len = parse_decimal(&data[..digits])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| "a record does not start with its length".to_owned())?;
        // At least "N k=\n" beyond the length digits.
        if len < digits + 4 || len > data.len() {
            return Err(format!(
                "a record's length {len} does not fit the {} bytes left",
                data.len()
            ));
        }
        let (record, rest) = data.split_at(len);
        data = rest;
        let Some(body) = record
            .strip_suffix(b"\n")
            .and_then(|r| r.get(digits..))
            .and_then(|r| r.strip_prefix(b" "))
        else {
            return Err(format!(
                "record `{}` is not `LENGTH KEY=VALUE\\n`",
                String::from_utf8_lossy(record).trim_end()
            ));
        };
        let Some(eq) = body.iter().position(|&b| b == b'=') else {
            return Err(format!(
                "record `{}` has no `=`",
                String::from_utf8_lossy(body)
            ));
        };
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        apply_record(key, value, to, keep)
            .map_err(|e| format!("record {}: {e}", String::from_utf8_lossy(key)))?;
    }
    Ok(())
}

/// Applies one record.
fn apply_record(
    key: &[u8],
    value: &[u8],
    to: &mut Overrides,
    keep: KeepXattrs,
) -> Result<(), String> {
    let set_xattr = |to: &mut Overrides, name: Vec<u8>, value: Vec<u8>| {
        if keep.keeps(&name) {
            to.xattrs.set(name, value)
        } else {
            Ok(())
        }
    };
    match key {
        b"path" => to.path = Some(value.to_vec()),
        b"linkpath" => to.linkpath = Some(value.to_vec()),
        b"size" => to.size = Some(parse_decimal(value).ok_or("not a decimal size")?),
        b"uid" => to.uid = Some(parse_id(value)?),
        b"gid" => to.gid = Some(parse_id(value)?),
        b"mtime" => to.mtime = Some(parse_time(value).ok_or("not a time in seconds")?),
        b"RHT.security.selinux" => set_xattr(to, b"security.selinux".to_vec(), value.to_vec())?,
        b"SCHILY.acl.access" | b"SCHILY.acl.default" | b"SCHILY.acl.ace" => {
            to.unsupported.get_or_insert_with(|| key.to_vec());
        }
        _ => {
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                set_xattr(to, xattr_name(name.to_vec())?, value.to_vec())?;
            } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                let name = percent_decode(name).ok_or("bad %-escape in the name")?;
                let value = base64_decode(value).ok_or("value is not base64")?;
                set_xattr(to, xattr_name(name)?, value)?;
            } else if key.starts_with(b"GNU.sparse.") {
                to.sparse = true;
            }
        }
    }
    Ok(())
}

/// Checks an xattr name from an archive: not empty, no NUL.
fn xattr_name(name: Vec<u8>) -> Result<Vec<u8>, &'static str> {
    if name.is_empty() {
        Err("empty extended attribute name")
    } else if name.contains(&0) {
        Err("NUL byte in an extended attribute name")
    } else {
        Ok(name)
    }
}

/// A non-empty run of ASCII digits as a number, if it fits.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// A user or group id: decimal, 32 bits.
fn parse_id(text: &[u8]) -> Result<u32, &'static str> {
    let id = parse_decimal(text).ok_or("not a decimal id")?;
    u32::try_from(id).map_err(|_| "id does not fit in 32 bits")
}

/// `[-]SECONDS[.FRACTION]`: nanoseconds are the first nine digits of the fraction (further
/// digits are dropped, as GNU tar drops them).
fn parse_time(text: &[u8]) -> Option<Mtime> {
    let (negative, text) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    let sec = i64::try_from(parse_decimal(int)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsec = 0u32;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&d| u32::from(d - b'0'));
    }
    if !negative {
        return Some(Mtime { sec, nsec });
    }
    // -S.F is S.F seconds before the epoch: -(S+1) seconds plus (1 - .F).
    Some(if nsec == 0 {
        Mtime { sec: -sec, nsec: 0 }
    } else {
        Mtime {
            sec: -sec - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// Undoes `%XX` escapes (bsdtar escapes `%`, `=` and bytes outside printable ASCII).
fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if b == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64, with or without `=` padding.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = match text.iter().position(|&b| b == b'=') {
        Some(pad) if text[pad..].iter().all(|&b| b == b'=') && text.len() - pad <= 2 => {
            &text[..pad]
        }
        Some(_) => return None,
        None => text,
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let sextet = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for &b in chunk {
            acc = acc << 6 | sextet(b)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record with its length computed.
    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len += 1;
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }

    /// Records one after another.
    fn records(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        pairs.iter().flat_map(|(k, v)| record(k, v)).collect()
    }

    fn parse(data: &[u8]) -> Result<Overrides, String> {
        let mut o = Overrides::default();
        apply(data, &mut o, KeepXattrs::All).map(|()| o)
    }

    #[test]
    fn the_usual_keys() {
        let o = parse(&records(&[
            ("path", b"a/\xffb"),
            ("linkpath", b"target"),
            ("size", b"8589934593"),
            ("uid", b"4294967295"),
            ("gid", b"7"),
            ("mtime", b"1700000000.123456789123"),
            ("atime", b"1.5"),
            ("uname", b"nobody"),
        ]))
        .unwrap();
        assert_eq!(o.path.as_deref(), Some(&b"a/\xffb"[..]));
        assert_eq!(o.linkpath.as_deref(), Some(&b"target"[..]));
        assert_eq!(o.size, Some(8589934593));
        assert_eq!((o.uid, o.gid), (Some(u32::MAX), Some(7)));
        assert_eq!(
            o.mtime,
            Some(Mtime {
                sec: 1_700_000_000,
                nsec: 123_456_789
            })
        );
        assert!(!o.sparse && o.unsupported.is_none());
    }

    #[test]
    fn times() {
        let t = |s: &str| parse_time(s.as_bytes());
        assert_eq!(t("5"), Some(Mtime { sec: 5, nsec: 0 }));
        assert_eq!(
            t("5.5"),
            Some(Mtime {
                sec: 5,
                nsec: 500_000_000
            })
        );
        assert_eq!(t("5.000000001"), Some(Mtime { sec: 5, nsec: 1 }));
        assert_eq!(
            t("-1.25"),
            Some(Mtime {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(t("-3"), Some(Mtime { sec: -3, nsec: 0 }));
        assert_eq!(t(""), None);
        assert_eq!(t("1.2x"), None);
        assert_eq!(t("99999999999999999999"), None);
    }

    #[test]
    fn xattrs_of_both_flavours() {
        let o = parse(&records(&[
            ("SCHILY.xattr.security.capability", b"\x01\0\0\x02\n=\xff"),
            ("SCHILY.xattr.user.a", b"first"),
            ("SCHILY.xattr.user.a", b"second"),
            // bsdtar: "user.b=c" with its '=' escaped, value "hi!" in base64 without padding.
            ("LIBARCHIVE.xattr.user.b%3Dc", b"aGkh"),
            ("LIBARCHIVE.xattr.user.d", b"aA=="),
            ("RHT.security.selinux", b"system_u:object_r:bin_t:s0\0"),
        ]))
        .unwrap();
        let got: Vec<(&[u8], &[u8])> = o
            .xattrs
            .iter()
            .map(|x| (x.name.as_slice(), x.value.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (&b"security.capability"[..], &b"\x01\0\0\x02\n=\xff"[..]),
                (b"user.a", b"second"),
                (b"user.b=c", b"hi!"),
                (b"user.d", b"h"),
                (b"security.selinux", b"system_u:object_r:bin_t:s0\0"),
            ]
        );
    }

    fn names(o: &Overrides) -> Vec<String> {
        o.xattrs
            .iter()
            .map(|x| String::from_utf8_lossy(&x.name).into_owned())
            .collect()
    }

    /// The xattrs of one entry may take what composefs allows one file, as C counts it
    /// (`12 + Σ(7 + name + value)` ≤ 32767), and not a byte more: the record that passes
    /// the limit is refused, naming it.
    #[test]
    fn xattrs_stop_at_the_per_file_limit() {
        let fits = 32767 - 12 - 7 - "user.a".len();
        let o = parse(&record("SCHILY.xattr.user.a", &vec![b'v'; fits])).unwrap();
        assert_eq!(o.xattrs.iter().next().unwrap().value.len(), fits);
        let err = parse(&record("SCHILY.xattr.user.a", &vec![b'v'; fits + 1])).unwrap_err();
        assert_eq!(
            err,
            "record SCHILY.xattr.user.a: extended attribute user.a takes the file's xattrs past \
             the 32767 bytes composefs allows one file"
        );

        // Many small ones: refused at the first that does not fit, whatever follows.
        let mut data = Vec::new();
        for i in 0..20_000 {
            data.extend(record(&format!("SCHILY.xattr.user.{i:05}"), b""));
        }
        let err = parse(&data).unwrap_err();
        // Each takes 7 + 10: 12 + 1926 × 17 = 32754 fits, a 1927th does not.
        assert!(err.contains("extended attribute user.01926 takes"), "{err}");
    }

    /// A name set again replaces the value in its place, and the count follows: setting one
    /// large xattr many times never adds up.
    #[test]
    fn replacing_an_xattr_recounts_it() {
        let mut data = Vec::new();
        for i in 0..100u8 {
            data.extend(record("SCHILY.xattr.user.big", &vec![i; 20_000]));
            data.extend(record("SCHILY.xattr.user.small", &[i]));
        }
        let o = parse(&data).unwrap();
        assert_eq!(names(&o), ["user.big", "user.small"]);
        let values: Vec<&[u8]> = o.xattrs.iter().map(|x| x.value.as_slice()).collect();
        assert_eq!(values, [&vec![99u8; 20_000][..], &[99]]);
        assert_eq!(o.xattrs.space, 12 + 7 + 8 + 20_000 + 7 + 10 + 1);

        // Defaults (from a global header) fill in only what is not set.
        let mut defaults = Overrides::default();
        defaults
            .xattrs
            .set(b"user.small".to_vec(), b"global".to_vec())
            .unwrap();
        defaults
            .xattrs
            .set(b"user.other".to_vec(), b"global".to_vec())
            .unwrap();
        let mut o = o;
        o.fill_in(&defaults).unwrap();
        assert_eq!(names(&o), ["user.big", "user.small", "user.other"]);
        assert_eq!(o.xattrs.iter().nth(1).unwrap().value, [99]);
    }

    /// Xattrs the build does not keep are checked for a well-formed name, then dropped: they
    /// cost no memory and do not count against the limit.
    #[test]
    fn xattrs_not_kept_are_dropped() {
        let mut data = record("SCHILY.xattr.security.big", &vec![b'v'; 40_000]);
        data.extend(record("SCHILY.xattr.user.a", b"1"));
        data.extend(record("RHT.security.selinux", b"label"));
        let mut o = Overrides::default();
        apply(&data, &mut o, KeepXattrs::User).unwrap();
        assert_eq!(names(&o), ["user.a"]);
        let mut o = Overrides::default();
        apply(&data, &mut o, KeepXattrs::None).unwrap();
        assert!(names(&o).is_empty());
        let mut o = Overrides::default();
        assert!(apply(&data, &mut o, KeepXattrs::All).is_err());
        let mut o = Overrides::default();
        assert!(apply(&record("SCHILY.xattr.a\0", b""), &mut o, KeepXattrs::None).is_err());
    }

    #[test]
    fn sparse_and_acls_are_flagged() {
        let o = parse(&record("GNU.sparse.major", b"1")).unwrap();
        assert!(o.sparse);
        let o = parse(&record("SCHILY.acl.access", b"user::rw-")).unwrap();
        assert_eq!(o.unsupported.as_deref(), Some(&b"SCHILY.acl.access"[..]));
    }

    #[test]
    fn malformed_records() {
        let framing = [
            &b"x path=a\n"[..],
            b"99 path=a\n",
            b"5 path=a\n",
            b"10 patha\n\n",
            b"10 path=ab",
            b"2 \n",
        ];
        for bad in framing {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let values: [(&str, &[u8]); 7] = [
            ("size", b""),
            ("size", b"1x"),
            ("uid", b"4294967296"),
            ("SCHILY.xattr.", b""),
            ("SCHILY.xattr.a\0", b""),
            ("LIBARCHIVE.xattr.a", b"!!!"),
            ("LIBARCHIVE.xattr.a%", b"YQ"),
        ];
        for (key, value) in values {
            assert!(parse(&record(key, value)).is_err(), "{key}");
        }
        // Padding NULs after the records are fine.
        let mut data = record("path", b"a");
        data.extend([0; 20]);
        assert_eq!(parse(&data).unwrap().path.as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn base64() {
        for (text, want) in [
            ("", &b""[..]),
            ("YQ", b"a"),
            ("YQ==", b"a"),
            ("YWI", b"ab"),
            ("YWJj", b"abc"),
            ("/+8=", b"\xff\xef"),
        ] {
            assert_eq!(
                base64_decode(text.as_bytes()).as_deref(),
                Some(want),
                "{text}"
            );
        }
        for bad in ["Y", "YQ=a", "Y===", "Y!=="] {
            assert_eq!(base64_decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
