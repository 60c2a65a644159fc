//! The dumpfile escapes: `\\`, `\n`, `\r`, `\t` and `\xHH` when reading; when printing, the
//! same plus hex escapes for every byte that is not a printable, non-space ASCII character
//! (C's `isgraph` in the C locale), for `=` in xattrs, and for a lone `-`.

use super::error::EscapeError;

/// The field text that stands for "not set".
pub(crate) const NONE_MARK: &[u8] = b"-";

/// Undoes the escapes of one field, as C `unescape_string` does.
pub(crate) fn unescape(field: &[u8]) -> Result<Vec<u8>, EscapeError> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field.iter().copied();
    while let Some(c) = rest.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        match rest.next().ok_or(EscapeError::Truncated)? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                // C checks that two characters follow before it looks at either of them.
                let hi = rest.next().ok_or(EscapeError::HexMissing)?;
                let lo = rest.next().ok_or(EscapeError::HexMissing)?;
                match (hex_value(hi), hex_value(lo)) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(EscapeError::HexInvalid),
                }
            }
            other => return Err(EscapeError::Unsupported(other)),
        }
    }
    Ok(out)
}

/// Like [`unescape`], but a field that is exactly `-` means "not set".
pub(crate) fn unescape_optional(field: &[u8]) -> Result<Option<Vec<u8>>, EscapeError> {
    if field == NONE_MARK {
        return Ok(None);
    }
    unescape(field).map(Some)
}

/// The bytes before the first NUL: what C sees of an unescaped string it treats as a C string
/// (paths, payloads, digests, xattr names; not content or xattr values).
pub(crate) fn c_string(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    bytes
}

/// The value of a hex digit (either case), as C `hexdigit`.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// How to escape a field when printing, as the flags of C `print_escaped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Style {
    /// Escape `=` (xattr names and values, where it separates them).
    pub(crate) equal: bool,
    /// Escape a value that is exactly `-`, which would read back as "not set".
    pub(crate) lone_dash: bool,
    /// Leave spaces as they are (`composefs-info ls` prints paths so).
    pub(crate) raw_space: bool,
}

impl Style {
    /// Paths: nothing but what every field escapes.
    pub(crate) const PLAIN: Style = Style {
        equal: false,
        lone_dash: false,
        raw_space: false,
    };
    /// Paths in `composefs-info ls`: spaces stay.
    pub(crate) const LISTING: Style = Style {
        raw_space: true,
        ..Style::PLAIN
    };
    /// Optional fields: payload, content.
    pub(crate) const OPTIONAL: Style = Style {
        lone_dash: true,
        ..Style::PLAIN
    };
    /// Xattr names and values.
    pub(crate) const XATTR: Style = Style {
        equal: true,
        ..Style::PLAIN
    };
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

/// Appends `value` escaped in `style`.
pub(crate) fn escape_into(out: &mut Vec<u8>, value: &[u8], style: Style) {
    if style.lone_dash && value == NONE_MARK {
        push_hex_escape(out, b'-');
        return;
    }
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if style.equal => push_hex_escape(out, b),
            b' ' if style.raw_space => out.push(b),
            // `isgraph` in the C locale: printable ASCII other than space.
            b'!'..=b'~' => out.push(b),
            _ => push_hex_escape(out, b),
        }
    }
}

/// `value` escaped in `style`, as a string (escaped text is always ASCII).
pub(crate) fn escaped(value: &[u8], style: Style) -> String {
    let mut out = Vec::with_capacity(value.len());
    escape_into(&mut out, value, style);
    String::from_utf8_lossy(&out).into_owned()
}

/// A path for an error message: escaped, and shortened when very long.
pub(crate) fn display_path(path: &[u8]) -> String {
    shorten(escaped(path, Style::PLAIN))
}

/// Raw field text for an error message (lossy, shortened).
pub(crate) fn display_raw(field: &[u8]) -> String {
    shorten(String::from_utf8_lossy(field).into_owned())
}

/// Keeps error messages readable when the input holds kilobytes in one field.
fn shorten(mut s: String) -> String {
    const MAX: usize = 512;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
