//! The pieces the three text encodings share: lines, fields, numbers, escapes.

use sealroot_verity::{AnyDigest, HashAlgorithm};

use super::error::{ParseError, Problem};
use super::ObjectKind;
use crate::dumpfile::escape::{self, Style};
use crate::tree::{Mtime, Xattr};

/// The lines of an object after its header, numbered from 2; checks size, header and the
/// final newline.
pub(crate) fn body_lines(
    kind: ObjectKind,
    bytes: &[u8],
) -> Result<impl Iterator<Item = (usize, &[u8])>, ParseError> {
    let err = |line, problem| ParseError::new(kind, line, problem);
    if bytes.len() > kind.max_size() {
        return Err(err(
            0,
            Problem::TooLarge {
                size: bytes.len(),
                max: kind.max_size(),
            },
        ));
    }
    let Some(text) = bytes.strip_suffix(b"\n") else {
        return Err(err(0, Problem::MissingNewline));
    };
    let mut lines = text.split(|&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let prefix = format!("sealroot-{} ", kind.name());
    let Some(version) = header.strip_prefix(prefix.as_bytes()) else {
        return Err(err(
            1,
            Problem::BadHeader {
                expected: kind.name(),
            },
        ));
    };
    if version != b"1" {
        return Err(err(
            1,
            Problem::UnsupportedVersion(String::from_utf8_lossy(version).into_owned()),
        ));
    }
    Ok(lines.enumerate().map(|(i, l)| (i + 2, l)))
}

/// The header line of `kind`.
pub(crate) fn header(out: &mut Vec<u8>, kind: ObjectKind) {
    out.extend_from_slice(b"sealroot-");
    out.extend_from_slice(kind.name().as_bytes());
    out.extend_from_slice(b" 1\n");
}

/// Splits a line into fields at single spaces.
pub(crate) fn fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ').collect()
}

fn bad(field: &'static str, reason: impl Into<String>) -> Problem {
    Problem::BadField {
        field,
        reason: reason.into(),
    }
}

fn ascii(text: &[u8]) -> &str {
    std::str::from_utf8(text).unwrap_or("")
}

/// A decimal number (any textual form; canonicity is checked by re-encoding).
pub(crate) fn dec<T: std::str::FromStr>(field: &'static str, text: &[u8]) -> Result<T, Problem> {
    ascii(text)
        .parse()
        .map_err(|_| bad(field, format!("\"{}\" is not a number", shown(text))))
}

/// An octal mode.
pub(crate) fn octal(field: &'static str, text: &[u8]) -> Result<u32, Problem> {
    u32::from_str_radix(ascii(text), 8)
        .map_err(|_| bad(field, format!("\"{}\" is not an octal mode", shown(text))))
}

/// `SECONDS.NANOSECONDS`.
pub(crate) fn mtime(text: &[u8]) -> Result<Mtime, Problem> {
    let s = ascii(text);
    let (sec, nsec) = s.split_once('.').ok_or_else(|| {
        bad(
            "mtime",
            format!("\"{}\" is not SECONDS.NANOSECONDS", shown(text)),
        )
    })?;
    let sec: i64 = sec
        .parse()
        .map_err(|_| bad("mtime", format!("\"{}\" has bad seconds", shown(text))))?;
    let nsec: u32 = nsec
        .parse()
        .map_err(|_| bad("mtime", format!("\"{}\" has bad nanoseconds", shown(text))))?;
    if nsec >= 1_000_000_000 {
        return Err(bad("mtime", "nanoseconds not below 10^9"));
    }
    Ok(Mtime { sec, nsec })
}

/// A digest: 64 hex digits for sha256, 128 for sha512 (either case here; canonicity, lower
/// case, is checked by re-encoding).
pub(crate) fn digest(field: &'static str, text: &[u8]) -> Result<AnyDigest, Problem> {
    AnyDigest::from_hex_any(ascii(text)).map_err(|e| bad(field, e.to_string()))
}

/// The algorithm of the digests one object names, which must all have the same.
#[derive(Default)]
pub(crate) struct OneAlgorithm(Option<HashAlgorithm>);

impl OneAlgorithm {
    /// Checks `digest` against those seen before.
    pub(crate) fn check(&mut self, digest: &AnyDigest) -> Result<(), Problem> {
        let found = digest.algorithm();
        match self.0 {
            None => {
                self.0 = Some(found);
                Ok(())
            }
            Some(first) if first == found => Ok(()),
            Some(first) => Err(Problem::MixedAlgorithms { first, found }),
        }
    }
}

/// An escaped byte string.
pub(crate) fn unescape(field: &'static str, text: &[u8]) -> Result<Vec<u8>, Problem> {
    escape::unescape(text).map_err(|e| bad(field, e.to_string()))
}

/// `NAME=VALUE`.
pub(crate) fn xattr(text: &[u8]) -> Result<Xattr, Problem> {
    let eq = text
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| bad("xattr", format!("\"{}\" has no '='", shown(text))))?;
    let name = unescape("xattr name", &text[..eq])?;
    let value = unescape("xattr value", &text[eq + 1..])?;
    if name.is_empty() || name.len() > 255 || name.contains(&0) {
        return Err(bad(
            "xattr name",
            "empty, longer than 255 bytes, or with a NUL",
        ));
    }
    if value.len() > usize::from(u16::MAX) {
        return Err(bad("xattr value", "longer than 65535 bytes"));
    }
    Ok(Xattr { name, value })
}

/// Checks xattrs are sorted by name and unique.
pub(crate) fn check_xattrs(xattrs: &[Xattr]) -> Result<(), Problem> {
    for w in xattrs.windows(2) {
        match w[0].name.cmp(&w[1].name) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(Problem::Duplicate {
                    what: "xattr",
                    name: escape::escaped(&w[1].name, Style::PLAIN),
                })
            }
            std::cmp::Ordering::Greater => {
                return Err(Problem::Unsorted {
                    what: "xattr",
                    name: escape::escaped(&w[1].name, Style::PLAIN),
                })
            }
        }
    }
    Ok(())
}

/// Appends ` ` and `value` escaped (spaces and non-printable bytes as `\xHH`).
pub(crate) fn push_field(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b' ');
    escape::escape_into(out, value, Style::PLAIN);
}

/// Appends ` ` and `value` escaped, `-` for none (a literal `-` is escaped).
pub(crate) fn push_optional(out: &mut Vec<u8>, value: Option<&[u8]>) {
    out.push(b' ');
    match value {
        Some(v) => escape::escape_into(out, v, Style::OPTIONAL),
        None => out.push(b'-'),
    }
}

/// Appends ` ` and an mtime.
pub(crate) fn push_mtime(out: &mut Vec<u8>, m: Mtime) {
    out.push(b' ');
    push_i64(out, m.sec);
    out.push(b'.');
    push_u64(out, u64::from(m.nsec));
}

/// Appends `n` in decimal (no allocation: the encoders run once per entry of an OS tree).
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    push_digits::<10>(out, n);
}

/// Appends `n` in decimal, with `-` when negative.
pub(crate) fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends `n` in octal.
pub(crate) fn push_octal(out: &mut Vec<u8>, n: u32) {
    push_digits::<8>(out, n.into());
}

/// Appends `n` in base `RADIX` (at most 10), without leading zeros.
fn push_digits<const RADIX: u64>(out: &mut Vec<u8>, mut n: u64) {
    // u64::MAX has 22 digits in octal, fewer in any larger base.
    let mut buf = [0u8; 22];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % RADIX) as u8;
        n /= RADIX;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends ` ` and a digest in lower-case hex.
pub(crate) fn push_digest(out: &mut Vec<u8>, d: &AnyDigest) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b' ');
    for &b in d.as_bytes() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Appends ` MODE UID GID` (mode in octal).
pub(crate) fn push_mode_owner(out: &mut Vec<u8>, mode: u32, uid: u32, gid: u32) {
    out.push(b' ');
    push_octal(out, mode);
    out.push(b' ');
    push_u64(out, u64::from(uid));
    out.push(b' ');
    push_u64(out, u64::from(gid));
}

/// Appends ` NAME=VALUE` for each xattr.
pub(crate) fn push_xattrs(out: &mut Vec<u8>, xattrs: &[Xattr]) {
    for x in xattrs {
        out.push(b' ');
        escape::escape_into(out, &x.name, Style::XATTR);
        out.push(b'=');
        escape::escape_into(out, &x.value, Style::XATTR);
    }
}

/// Text of a field as shown in a message: escaped, at most 64 bytes.
pub(crate) fn shown(text: &[u8]) -> String {
    let cut = &text[..text.len().min(64)];
    escape::escaped(cut, Style::PLAIN)
}

/// `name` escaped for a message.
pub(crate) fn name(text: &[u8]) -> String {
    escape::escaped(text, Style::PLAIN)
}
