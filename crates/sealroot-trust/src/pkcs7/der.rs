//! Just enough DER for fs-verity signatures: a strict reader and a writer.
//!
//! The reader accepts distinguished encoding only: single-byte tags (low tag numbers), definite
//! lengths in their shortest form, no value running past its parent. It never allocates and
//! never recurses on its own, so hostile input costs time linear in its length and nothing else.
//! The writer emits definite minimal lengths, which is what OpenSSL's `i2d_*` functions do.

use std::fmt;

/// `INTEGER`.
pub(crate) const INTEGER: u8 = 0x02;
/// `BIT STRING`.
pub(crate) const BIT_STRING: u8 = 0x03;
/// `OCTET STRING`.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// `NULL`.
pub(crate) const NULL: u8 = 0x05;
/// `OBJECT IDENTIFIER`.
pub(crate) const OID: u8 = 0x06;
/// `SEQUENCE` (constructed).
pub(crate) const SEQUENCE: u8 = 0x30;
/// `SET` (constructed).
pub(crate) const SET: u8 = 0x31;
/// `[0]` constructed, context-specific: PKCS#7 `content`, X.509 `version`.
pub(crate) const CONTEXT_0: u8 = 0xa0;

/// The high bits of a tag that say "this tag number continues in the next bytes".
const LOW_TAG_MASK: u8 = 0x1f;
/// The bit of the first length byte that announces the long form.
const LONG_LENGTH: u8 = 0x80;
/// Lengths take at most four bytes: nothing we read comes near 4 GiB.
const MAX_LENGTH_BYTES: usize = 4;

/// What is wrong with a DER input, and where (byte offset from the start of the outermost input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError {
    /// Offset of the element (or byte) that is wrong.
    pub offset: usize,
    /// What is wrong.
    pub kind: DerErrorKind,
}

/// The ways DER input can be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DerErrorKind {
    /// The input ends inside an element.
    Truncated,
    /// A tag other than the one the structure requires.
    UnexpectedTag {
        /// The tag the structure requires.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// A multi-byte tag number: nothing in these structures uses one.
    HighTagNumber,
    /// The indefinite length form (BER, not DER).
    IndefiniteLength,
    /// A length not in its shortest form, or longer than four bytes.
    NonMinimalLength,
    /// Bytes after the last element of a structure.
    TrailingData,
    /// An `INTEGER` that is empty or has a redundant leading byte.
    BadInteger,
    /// A `NULL` with contents.
    BadNull,
    /// A `BIT STRING` with unused bits where whole bytes are required.
    BadBitString,
    /// An `INTEGER` with a value other than the one the structure requires.
    UnexpectedValue,
}

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DerErrorKind::Truncated => write!(f, "truncated DER at byte {}", self.offset),
            DerErrorKind::UnexpectedTag { expected, found } => write!(
                f,
                "DER tag 0x{found:02x} at byte {}, expected 0x{expected:02x}",
                self.offset
            ),
            DerErrorKind::HighTagNumber => {
                write!(f, "multi-byte DER tag at byte {}", self.offset)
            }
            DerErrorKind::IndefiniteLength => {
                write!(
                    f,
                    "indefinite length (BER, not DER) at byte {}",
                    self.offset
                )
            }
            DerErrorKind::NonMinimalLength => {
                write!(f, "DER length not in shortest form at byte {}", self.offset)
            }
            DerErrorKind::TrailingData => write!(f, "trailing bytes at byte {}", self.offset),
            DerErrorKind::BadInteger => {
                write!(f, "INTEGER not minimally encoded at byte {}", self.offset)
            }
            DerErrorKind::BadNull => write!(f, "NULL with contents at byte {}", self.offset),
            DerErrorKind::BadBitString => {
                write!(f, "BIT STRING with unused bits at byte {}", self.offset)
            }
            DerErrorKind::UnexpectedValue => {
                write!(f, "unexpected INTEGER value at byte {}", self.offset)
            }
        }
    }
}

impl std::error::Error for DerError {}

/// One element: the offset of its first byte, its whole encoding and its contents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    /// Offset of the tag byte in the outermost input.
    pub offset: usize,
    /// Tag, length and contents: the element as it appears in the input.
    pub raw: &'a [u8],
    /// The contents only.
    pub contents: &'a [u8],
    /// Offset of the contents in the outermost input.
    pub contents_offset: usize,
}

impl<'a> Element<'a> {
    /// A reader over this element's contents (for constructed elements).
    pub fn reader(&self) -> Reader<'a> {
        Reader {
            input: self.contents,
            pos: 0,
            base: self.contents_offset,
        }
    }

    fn error(&self, kind: DerErrorKind) -> DerError {
        DerError {
            offset: self.offset,
            kind,
        }
    }
}

/// A cursor over a run of DER elements.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of `input[0]` in the outermost input, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole input.
    pub fn new(input: &'a [u8]) -> Self {
        Reader {
            input,
            pos: 0,
            base: 0,
        }
    }

    fn error_here(&self, kind: DerErrorKind) -> DerError {
        DerError {
            offset: self.base + self.pos,
            kind,
        }
    }

    /// Whether all elements have been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// Fails unless every element has been read.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error_here(DerErrorKind::TrailingData))
        }
    }

    /// Reads the next element, whatever its tag.
    pub fn any(&mut self) -> Result<Element<'a>, DerError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let (&tag, after_tag) = rest
            .split_first()
            .ok_or_else(|| self.error_here(DerErrorKind::Truncated))?;
        if tag & LOW_TAG_MASK == LOW_TAG_MASK {
            return Err(self.error_here(DerErrorKind::HighTagNumber));
        }
        let (&first, after_first) = after_tag
            .split_first()
            .ok_or_else(|| self.error_here(DerErrorKind::Truncated))?;
        let (len, header) = if first & LONG_LENGTH == 0 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & !LONG_LENGTH);
            if count == 0 {
                return Err(self.error_here(DerErrorKind::IndefiniteLength));
            }
            if count > MAX_LENGTH_BYTES {
                return Err(self.error_here(DerErrorKind::NonMinimalLength));
            }
            let bytes = after_first
                .get(..count)
                .ok_or_else(|| self.error_here(DerErrorKind::Truncated))?;
            // Shortest form: no leading zero byte, and the long form only from 128 on.
            if bytes[0] == 0 {
                return Err(self.error_here(DerErrorKind::NonMinimalLength));
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < usize::from(LONG_LENGTH) {
                return Err(self.error_here(DerErrorKind::NonMinimalLength));
            }
            (len, 2 + count)
        };
        let end = header
            .checked_add(len)
            .filter(|&end| end <= rest.len())
            .ok_or_else(|| self.error_here(DerErrorKind::Truncated))?;
        self.pos = start + end;
        Ok(Element {
            offset: self.base + start,
            raw: &rest[..end],
            contents: &rest[header..end],
            contents_offset: self.base + start + header,
        })
    }

    /// Reads the next element, which must have tag `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Element<'a>, DerError> {
        match self.peek_tag() {
            Some(found) if found != tag => Err(self.error_here(DerErrorKind::UnexpectedTag {
                expected: tag,
                found,
            })),
            _ => self.any(),
        }
    }

    /// Reads the next element if it has tag `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Element<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a `SEQUENCE` and returns a reader over its contents.
    pub fn sequence(&mut self) -> Result<Reader<'a>, DerError> {
        Ok(self.expect(SEQUENCE)?.reader())
    }

    /// Reads a minimally encoded `INTEGER` and returns the element.
    pub fn integer(&mut self) -> Result<Element<'a>, DerError> {
        let e = self.expect(INTEGER)?;
        match e.contents {
            [] => Err(e.error(DerErrorKind::BadInteger)),
            [0x00, next, ..] if next & 0x80 == 0 => Err(e.error(DerErrorKind::BadInteger)),
            [0xff, next, ..] if next & 0x80 != 0 => Err(e.error(DerErrorKind::BadInteger)),
            _ => Ok(e),
        }
    }

    /// Reads an `INTEGER` that must equal the small value `value`.
    pub fn small_integer(&mut self, value: u8) -> Result<(), DerError> {
        let e = self.integer()?;
        if e.contents == [value] && value < 0x80 {
            Ok(())
        } else {
            Err(e.error(DerErrorKind::UnexpectedValue))
        }
    }

    /// Reads an `OBJECT IDENTIFIER` and returns the full element (tag, length and contents), the
    /// form in which this module's OID constants are written.
    pub fn oid(&mut self) -> Result<Element<'a>, DerError> {
        self.expect(OID)
    }

    /// Reads a `NULL`.
    pub fn null(&mut self) -> Result<(), DerError> {
        let e = self.expect(NULL)?;
        if e.contents.is_empty() {
            Ok(())
        } else {
            Err(e.error(DerErrorKind::BadNull))
        }
    }

    /// Reads a `BIT STRING` made of whole bytes and returns those bytes.
    pub fn bit_string_bytes(&mut self) -> Result<Element<'a>, DerError> {
        let mut e = self.expect(BIT_STRING)?;
        match e.contents.split_first() {
            Some((0, bytes)) => {
                e.contents = bytes;
                e.contents_offset += 1;
                Ok(e)
            }
            _ => Err(e.error(DerErrorKind::BadBitString)),
        }
    }
}

/// Appends a DER length in its shortest form.
fn write_length(out: &mut Vec<u8>, len: usize) {
    if len < usize::from(LONG_LENGTH) {
        // Checked just above: fits in seven bits.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let significant = &bytes[skip..];
    // At most size_of::<usize>() bytes, far below 0x7f.
    out.push(LONG_LENGTH | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// Appends one element: `tag`, the length of `contents`, `contents`.
pub(crate) fn write_element(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    write_length(out, contents.len());
    out.extend_from_slice(contents);
}

/// One element as a new vector.
pub(crate) fn element(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    write_element(&mut out, tag, contents);
    out
}

/// A constructed element whose contents are the concatenation of `parts`.
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    element(tag, &parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_shortest_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 413, 65535, 65536] {
            let contents = vec![0u8; len];
            let der = element(OCTET_STRING, &contents);
            let mut r = Reader::new(&der);
            let e = r.expect(OCTET_STRING).unwrap();
            assert_eq!(e.contents.len(), len);
            assert_eq!(e.raw, &der[..]);
            r.finish().unwrap();
        }
    }

    #[test]
    fn refuses_what_is_not_der() {
        let cases: &[(&[u8], DerErrorKind)] = &[
            (&[0x04], DerErrorKind::Truncated),
            (&[0x04, 0x02, 0x00], DerErrorKind::Truncated),
            (&[0x04, 0x80, 0x00, 0x00], DerErrorKind::IndefiniteLength),
            (&[0x04, 0x81, 0x01, 0x00], DerErrorKind::NonMinimalLength),
            (&[0x04, 0x82, 0x00, 0x81], DerErrorKind::NonMinimalLength),
            (&[0x04, 0x85, 1, 0, 0, 0, 0], DerErrorKind::NonMinimalLength),
            (&[0x1f, 0x01, 0x00], DerErrorKind::HighTagNumber),
        ];
        for (input, kind) in cases {
            let err = Reader::new(input).any().unwrap_err();
            assert_eq!(&err.kind, kind, "{input:02x?}");
        }
        let err = Reader::new(&[0x02, 0x02, 0x00, 0x01])
            .integer()
            .unwrap_err();
        assert_eq!(err.kind, DerErrorKind::BadInteger);
        let err = Reader::new(&[0x02, 0x00]).integer().unwrap_err();
        assert_eq!(err.kind, DerErrorKind::BadInteger);
        let err = Reader::new(&[0x05, 0x01, 0x00]).null().unwrap_err();
        assert_eq!(err.kind, DerErrorKind::BadNull);
        let mut r = Reader::new(&[0x05, 0x00, 0x05]);
        r.null().unwrap();
        assert_eq!(r.finish().unwrap_err().offset, 2);
    }
}
