//! One 512-byte tar header block: its fields, its checksum and its numbers.
//!
//! The layout is POSIX ustar (`pax(1)`), with the GNU variants: GNU headers carry the magic
//! `"ustar "` + `" \0"` and use the ustar `prefix` area for other things, so the prefix is read
//! only under the POSIX magic `"ustar\0"`. Numbers are octal text, or, for values octal cannot
//! hold (sizes of 8 GiB and more, negative times, large ids), GNU's base-256: the first byte has
//! its high bit set and the whole field is a big-endian two's-complement number.
//!
//! Everything here is pure and panic-free on any 512 bytes.

/// The size of every tar block: headers, and the unit content is padded to.
pub(crate) const BLOCK_SIZE: usize = 512;

/// A field of the header: its name (for error messages) and its byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    start: usize,
    len: usize,
}

impl Field {
    const fn new(name: &'static str, start: usize, len: usize) -> Field {
        Field { name, start, len }
    }
}

/// `name[100]`: the path, or its last part when `prefix` is used.
pub(crate) const NAME: Field = Field::new("name", 0, 100);
/// `mode[8]`: permission bits (some writers add the file type bits too).
pub(crate) const MODE: Field = Field::new("mode", 100, 8);
/// `uid[8]`.
pub(crate) const UID: Field = Field::new("uid", 108, 8);
/// `gid[8]`.
pub(crate) const GID: Field = Field::new("gid", 116, 8);
/// `size[12]`: the number of content bytes that follow the header.
pub(crate) const SIZE: Field = Field::new("size", 124, 12);
/// `mtime[12]`: seconds since the epoch.
pub(crate) const MTIME: Field = Field::new("mtime", 136, 12);
/// `chksum[8]`: the sum of the header's bytes, this field counted as spaces.
pub(crate) const CHECKSUM: Field = Field::new("chksum", 148, 8);
/// Where `typeflag` is.
const TYPEFLAG_OFFSET: usize = 156;
/// `linkname[100]`: the target of a hard or symbolic link.
pub(crate) const LINKNAME: Field = Field::new("linkname", 157, 100);
/// `magic[6]` and `version[2]` together.
const MAGIC: Field = Field::new("magic", 257, 8);
/// `devmajor[8]`.
pub(crate) const DEVMAJOR: Field = Field::new("devmajor", 329, 8);
/// `devminor[8]`.
pub(crate) const DEVMINOR: Field = Field::new("devminor", 337, 8);
/// `prefix[155]`: the leading directories of a long path (POSIX ustar only).
const PREFIX: Field = Field::new("prefix", 345, 155);

/// The magic and version of a POSIX ustar (and pax) header.
const USTAR_MAGIC: &[u8; 8] = b"ustar\x0000";
/// The magic and version of a GNU tar header (whose `prefix` area holds other things).
#[cfg(test)]
const GNU_MAGIC: &[u8; 8] = b"ustar  \x00";

/// What the checksum of a header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Checksum {
    /// The block is all zeros: an end-of-archive marker.
    Zero,
    /// The checksum matches.
    Valid,
    /// It does not match, or is not a number.
    Invalid,
}

/// Why a numeric field could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// Octal text with a byte that is not an octal digit, space or NUL where it should be.
    NotOctal,
    /// More than the type holds (or a negative value where none is allowed).
    OutOfRange,
}

impl std::fmt::Display for NumberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NumberError::NotOctal => "is neither octal nor base-256",
            NumberError::OutOfRange => "is out of range",
        })
    }
}

/// One header block.
pub(crate) struct Header<'a>(pub(crate) &'a [u8; BLOCK_SIZE]);

impl<'a> Header<'a> {
    /// The raw bytes of `field`.
    pub(crate) fn raw(&self, field: Field) -> &'a [u8] {
        self.0
            .get(field.start..field.start + field.len)
            .unwrap_or_default()
    }

    /// A text field up to its first NUL (the whole field if it has none).
    pub(crate) fn text(&self, field: Field) -> &'a [u8] {
        let raw = self.raw(field);
        match raw.iter().position(|&b| b == 0) {
            Some(end) => &raw[..end],
            None => raw,
        }
    }

    /// The type flag byte.
    pub(crate) fn typeflag(&self) -> u8 {
        self.0[TYPEFLAG_OFFSET]
    }

    /// Checks the checksum. Writers differ in whether they summed the bytes as signed or
    /// unsigned chars; either sum is accepted, as GNU tar does.
    pub(crate) fn checksum(&self) -> Checksum {
        if self.0.iter().all(|&b| b == 0) {
            return Checksum::Zero;
        }
        let Ok(stored) = parse_number(self.raw(CHECKSUM)) else {
            return Checksum::Invalid;
        };
        let range = CHECKSUM.start..CHECKSUM.start + CHECKSUM.len;
        let (mut unsigned, mut signed) = (0i64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if range.contains(&i) { b' ' } else { b };
            unsigned += i64::from(b);
            signed += i64::from(b as i8);
        }
        if i128::from(unsigned) == stored || i128::from(signed) == stored {
            Checksum::Valid
        } else {
            Checksum::Invalid
        }
    }

    /// Whether this is a POSIX ustar header (whose `prefix` holds leading directories).
    pub(crate) fn is_ustar(&self) -> bool {
        self.raw(MAGIC) == USTAR_MAGIC
    }

    /// The path the header itself gives: `prefix/name` in a ustar header, else `name`.
    pub(crate) fn path(&self) -> Vec<u8> {
        let name = self.text(NAME);
        let prefix = if self.is_ustar() {
            self.text(PREFIX)
        } else {
            &[]
        };
        let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
        if !prefix.is_empty() {
            path.extend_from_slice(prefix);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        path
    }

    /// A numeric field that must be zero or positive and fit in `u64`.
    pub(crate) fn unsigned(&self, field: Field) -> Result<u64, NumberError> {
        u64::try_from(parse_number(self.raw(field))?).map_err(|_| NumberError::OutOfRange)
    }

    /// A numeric field that must fit in `u32`.
    pub(crate) fn u32(&self, field: Field) -> Result<u32, NumberError> {
        u32::try_from(parse_number(self.raw(field))?).map_err(|_| NumberError::OutOfRange)
    }

    /// A numeric field that may be negative and must fit in `i64`.
    pub(crate) fn signed(&self, field: Field) -> Result<i64, NumberError> {
        i64::try_from(parse_number(self.raw(field))?).map_err(|_| NumberError::OutOfRange)
    }
}

/// Reads a numeric field: GNU base-256 if its first byte has the high bit set, else octal
/// text, optionally surrounded by spaces and ended by a space or NUL. An empty field is 0.
pub(crate) fn parse_number(field: &[u8]) -> Result<i128, NumberError> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => parse_base256(field),
        _ => parse_octal(field),
    }
}

/// Base-256: big-endian two's complement over the whole field, where a first byte of `0x80`
/// marks a positive and `0xff` a negative number.
fn parse_base256(field: &[u8]) -> Result<i128, NumberError> {
    // i128 holds 16 bytes; the widest tar field is 12.
    if field.len() > 15 {
        return Err(NumberError::OutOfRange);
    }
    let negative = field.first() == Some(&0xff);
    let mut value: i128 = 0;
    for (i, &b) in field.iter().enumerate() {
        let b = if i == 0 && !negative { b & 0x7f } else { b };
        value = (value << 8) | i128::from(b);
    }
    if negative {
        // The field's bits are the two's complement of a negative number of its width.
        value -= 1i128 << (8 * field.len());
    }
    Ok(value)
}

/// Octal text.
fn parse_octal(field: &[u8]) -> Result<i128, NumberError> {
    let mut rest = field;
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let digits = rest
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let (number, tail) = rest.split_at(digits);
    if !tail.iter().all(|&b| b == b' ' || b == 0) {
        return Err(NumberError::NotOctal);
    }
    let mut value: i128 = 0;
    for &d in number {
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
            .ok_or(NumberError::OutOfRange)?;
    }
    Ok(value)
}

/// The largest major number the kernel's 32-bit device encoding holds (12 bits).
const MAJOR_MAX: u32 = 0xfff;
/// The largest minor number it holds (20 bits).
const MINOR_MAX: u32 = 0xf_ffff;

/// The 32-bit device number the kernel's "new" encoding gives `major:minor`: what glibc's
/// `makedev` puts in the low 32 bits of a `dev_t`, and so what `stat` of the extracted device
/// shows to `build_from_dir`. `None` if the numbers do not fit it: the kernel keeps device
/// numbers in 32 bits, so `mknod(2)` refuses them (glibc says `EINVAL`), and the image
/// stores 32 bits too.
pub(crate) fn makedev(major: u32, minor: u32) -> Option<u32> {
    if major > MAJOR_MAX || minor > MINOR_MAX {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with `name` and `size`, checksummed.
    fn header(name: &[u8], size: &[u8]) -> [u8; BLOCK_SIZE] {
        let mut h = [0u8; BLOCK_SIZE];
        h[..name.len()].copy_from_slice(name);
        h[124..124 + size.len()].copy_from_slice(size);
        h[257..265].copy_from_slice(USTAR_MAGIC);
        set_checksum(&mut h);
        h
    }

    fn set_checksum(h: &mut [u8; BLOCK_SIZE]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn octal_numbers() {
        let cases: &[(&[u8], Result<i128, NumberError>)] = &[
            (b"0000644\0", Ok(0o644)),
            (b"     644 ", Ok(0o644)),
            (b"00000000012\0", Ok(10)),
            (b"\0\0\0\0\0\0\0\0", Ok(0)),
            (b"        ", Ok(0)),
            (b"77777777777\0", Ok(0o77777777777)),
            (b"0000x44\0", Err(NumberError::NotOctal)),
            (b"0000844\0", Err(NumberError::NotOctal)),
            (b"064 4\0\0\0", Err(NumberError::NotOctal)),
        ];
        for (field, want) in cases {
            assert_eq!(
                &parse_number(field),
                want,
                "{:?}",
                String::from_utf8_lossy(field)
            );
        }
    }

    #[test]
    fn base256_numbers() {
        // 8 GiB + 1: the smallest size octal's 11 digits cannot hold... plus some.
        let mut size = [0u8; 12];
        size[0] = 0x80;
        size[4..].copy_from_slice(&(8u64 << 30 | 1).to_be_bytes());
        assert_eq!(parse_number(&size), Ok((8i128 << 30) | 1));
        // u64::MAX fits; the marker bit does not count.
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_number(&big), Ok(i128::from(u64::MAX)));
        // -1 and -2^40 in 12 bytes.
        assert_eq!(parse_number(&[0xff; 12]), Ok(-1));
        let mut neg = [0xffu8; 12];
        neg[4..].copy_from_slice(&(-(1i64 << 40)).to_be_bytes());
        assert_eq!(parse_number(&neg), Ok(-(1i128 << 40)));
    }

    #[test]
    fn a_size_above_8_gib_in_a_real_header() {
        let mut size = [0u8; 12];
        size[0] = 0x80;
        size[4..].copy_from_slice(&(9u64 << 30).to_be_bytes());
        let h = header(b"big", &size);
        let h = Header(&h);
        assert_eq!(h.checksum(), Checksum::Valid);
        assert_eq!(h.unsigned(SIZE), Ok(9 << 30));
        // Too large for u64, or negative: out of range, not wrapped.
        let mut huge = [0u8; 12];
        huge[0] = 0x80;
        huge[3] = 1;
        assert_eq!(
            Header(&header(b"x", &huge)).unsigned(SIZE),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(
            Header(&header(b"x", &[0xff; 12])).unsigned(SIZE),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(Header(&header(b"x", &[0xff; 12])).signed(SIZE), Ok(-1));
    }

    #[test]
    fn checksums() {
        let mut h = header(b"file", b"00000000001\0");
        assert_eq!(Header(&h).checksum(), Checksum::Valid);
        h[0] = b'g';
        assert_eq!(Header(&h).checksum(), Checksum::Invalid);
        assert_eq!(Header(&[0; BLOCK_SIZE]).checksum(), Checksum::Zero);
        // A signed sum, as some old writers computed it, over a byte above 0x7f.
        let mut h = header(b"\xe9t\xe9", b"0\0");
        let signed: i32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i32::from(b as i8)
                }
            })
            .sum();
        h[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert_eq!(Header(&h).checksum(), Checksum::Valid);
        // A checksum that is not a number.
        let mut h = header(b"file", b"0\0");
        h[148] = b'z';
        assert_eq!(Header(&h).checksum(), Checksum::Invalid);
    }

    #[test]
    fn ustar_prefix_only_with_the_posix_magic() {
        let mut h = header(b"name", b"0\0");
        h[345..350].copy_from_slice(b"a/pre");
        set_checksum(&mut h);
        assert_eq!(Header(&h).path(), b"a/pre/name");
        h[257..265].copy_from_slice(GNU_MAGIC);
        assert_eq!(Header(&h).path(), b"name");
        // A name filling all 100 bytes has no NUL.
        let long = [b'n'; 100];
        let h = header(&long, b"0\0");
        assert_eq!(Header(&h).path(), long);
    }

    #[test]
    fn device_numbers_as_glibc_makedev() {
        assert_eq!(makedev(0, 0), Some(0));
        assert_eq!(makedev(1, 3), Some(0x103));
        assert_eq!(makedev(8, 17), Some(0x811));
        assert_eq!(
            makedev(259, 0x12345),
            Some(0x12345 & 0xff | 0x103 << 8 | (0x12300 << 12))
        );
        assert_eq!(makedev(MAJOR_MAX, MINOR_MAX), Some(u32::MAX));
        assert_eq!(makedev(MAJOR_MAX + 1, 0), None);
        assert_eq!(makedev(0, MINOR_MAX + 1), None);
        assert_eq!(makedev(u32::MAX, u32::MAX), None);
    }
}
