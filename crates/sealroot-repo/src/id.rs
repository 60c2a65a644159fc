//! The names of things in a repository: [`ObjectId`], [`ImageId`] and [`RefName`].

use std::fmt;
use std::str::FromStr;

use sealroot_verity::{AnyDigest, DigestParseError, HashAlgorithm, Sha256Digest, Sha512Digest};

/// log2 of the fs-verity Merkle-tree block size of every object: 4 KiB, what composefs uses
/// (and what `cfsctl` records as the `-12` of `fsverity-sha256-12`).
pub const LOG_BLOCK_SIZE: u8 = 12;

/// The longest ref name accepted, in bytes: one file name's worth, so that the whole name
/// stays far from `PATH_MAX` below `images/refs/`.
pub const REF_NAME_MAX: usize = 255;

/// Why text could not be read as an [`ObjectId`] or [`ImageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The digest itself is malformed (length, hex digits, algorithm name).
    #[error(transparent)]
    Digest(#[from] DigestParseError),
    /// Bare hex whose length fits no algorithm (64 digits for sha256, 128 for sha512).
    #[error("{0} hex digits is neither a sha256 (64) nor a sha512 (128) digest")]
    Length(usize),
    /// An object path that is not `XX/REST` (two hex digits, a slash, the rest of the digest).
    #[error("{0:?} is not an object path XX/REST")]
    NotAnObjectPath(String),
}

pub(crate) use sealroot_verity::DigestSet;

/// The name of an object: the fs-verity digest (4 KiB blocks, no salt) of its content.
///
/// [`Display`](fmt::Display) gives `ALG:HEX` (`sha256:0a1b…`); [`FromStr`] reads that form or
/// bare hex (whose length says the algorithm). On disk the object is
/// `objects/`[`object_path`](ObjectId::object_path).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(AnyDigest);

impl ObjectId {
    /// The object named by `digest`.
    pub const fn new(digest: AnyDigest) -> Self {
        ObjectId(digest)
    }

    /// The digest.
    pub const fn digest(&self) -> &AnyDigest {
        &self.0
    }

    /// The digest's algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.0.algorithm()
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Lower-case hex without the algorithm, as in file names.
    pub fn to_hex(&self) -> String {
        self.0.to_string()
    }

    /// The path below `objects/`: `XX/REST`, the first two hex digits naming the directory.
    pub fn object_path(&self) -> String {
        let hex = self.to_hex();
        format!("{}/{}", &hex[..2], &hex[2..])
    }

    /// Parses hex of `algorithm`'s length (either case).
    pub fn from_hex(algorithm: HashAlgorithm, hex: &str) -> Result<Self, IdParseError> {
        Ok(ObjectId(AnyDigest::from_hex(algorithm, hex)?))
    }

    /// Parses an object path `XX/REST` of `algorithm`; only lower-case hex is accepted, as
    /// that is the only spelling that names a file in the store.
    pub fn from_object_path(algorithm: HashAlgorithm, path: &str) -> Result<Self, IdParseError> {
        Self::from_object_path_bytes(algorithm, path.as_bytes())
            .ok_or_else(|| IdParseError::NotAnObjectPath(path.to_owned()))
    }

    /// [`from_object_path`](Self::from_object_path) of raw bytes (an image's payload),
    /// without allocating: `gc` and `fsck` read one per file of every image.
    pub(crate) fn from_object_path_bytes(algorithm: HashAlgorithm, path: &[u8]) -> Option<Self> {
        if path.len() < 3 || path[2] != b'/' {
            return None;
        }
        let dir = (lower_hex_value(path[0])? << 4) | lower_hex_value(path[1])?;
        Self::from_dir_entry(algorithm, dir, &path[3..])
    }

    /// The object named by file `name` in directory `objects/XX` (`dir_byte` is `0xXX`), if
    /// `name` is the lower-case rest of an `algorithm` digest. Anything else (a temporary
    /// file, a stray name) gives `None`.
    pub(crate) fn from_dir_entry(
        algorithm: HashAlgorithm,
        dir_byte: u8,
        name: &[u8],
    ) -> Option<Self> {
        let size = algorithm.digest_size();
        if name.len() + 2 != size * 2 {
            return None;
        }
        // Decoded in place: listing and collecting parse one name per object.
        let mut bytes = [0u8; Sha512Digest::SIZE];
        bytes[0] = dir_byte;
        for (out, pair) in bytes[1..size].iter_mut().zip(name.chunks_exact(2)) {
            *out = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
        }
        AnyDigest::from_slice(algorithm, &bytes[..size])
            .ok()
            .map(ObjectId)
    }
}

/// The value of a lower-case hex digit.
fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Whether `s` is non-empty lower-case hex.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl From<Sha256Digest> for ObjectId {
    fn from(d: Sha256Digest) -> Self {
        ObjectId(AnyDigest::Sha256(d))
    }
}

impl From<Sha512Digest> for ObjectId {
    fn from(d: Sha512Digest) -> Self {
        ObjectId(AnyDigest::Sha512(d))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.algorithm(), self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ObjectId {
    type Err = IdParseError;

    /// `sha256:HEX`, `sha512:HEX`, or bare hex of 64 or 128 digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((alg, hex)) = s.split_once(':') {
            return Self::from_hex(alg.parse()?, hex);
        }
        match s.len() {
            64 => Self::from_hex(HashAlgorithm::Sha256, s),
            128 => Self::from_hex(HashAlgorithm::Sha512, s),
            n => Err(IdParseError::Length(n)),
        }
    }
}

/// The name of a composefs image in a repository: the fs-verity digest of the image file,
/// which is stored as an object like any other and linked from `images/`.
///
/// Written like an [`ObjectId`] (`sha256:HEX`); the hex is what `cfsctl` and the kernel
/// argument `composefs.digest=` use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(ObjectId);

impl ImageId {
    /// The image stored as object `object`.
    pub const fn new(object: ObjectId) -> Self {
        ImageId(object)
    }

    /// The image with fs-verity digest `digest` (what a commit records).
    pub const fn from_digest(digest: AnyDigest) -> Self {
        ImageId(ObjectId::new(digest))
    }

    /// The object holding the image.
    pub const fn object(&self) -> &ObjectId {
        &self.0
    }

    /// Lower-case hex without the algorithm: the image's name in `images/`.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The fs-verity digest, which is what `sealroot-mount` checks an image against.
    pub const fn digest(&self) -> &AnyDigest {
        self.0.digest()
    }

    /// The digest if it is a sha256 one (what C composefs knows); `None` in a sha512
    /// repository.
    pub fn as_sha256(&self) -> Option<&Sha256Digest> {
        self.0.digest().as_sha256()
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image {}", self.0)
    }
}

impl FromStr for ImageId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(ImageId)
    }
}

/// Why a ref name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefNameError {
    /// The empty name.
    #[error("a ref name cannot be empty")]
    Empty,
    /// Longer than [`REF_NAME_MAX`] bytes.
    #[error("ref name is {0} bytes, more than the {REF_NAME_MAX} allowed")]
    TooLong(usize),
    /// A byte outside the allowed set (printable ASCII except space and `\`).
    #[error("ref name {name:?} has a forbidden character {byte:?} at byte {position}")]
    BadCharacter {
        /// The name.
        name: String,
        /// The byte.
        byte: char,
        /// Its position.
        position: usize,
    },
    /// A leading, trailing or doubled `/`: an empty path component.
    #[error("ref name {0:?} has an empty component (leading, trailing or double '/')")]
    EmptyComponent(String),
    /// A component starting with `.`: `.`, `..` and hidden names are refused, so that no ref
    /// can point outside `images/refs/` or hide among temporary files.
    #[error("ref name {0:?} has a component starting with '.'")]
    DotComponent(String),
}

/// A validated ref name: a relative path below `images/refs/`, such as `os/stable` or
/// `oci/app:latest`.
///
/// The rules: 1 to [`REF_NAME_MAX`] bytes of printable ASCII without space or `\`;
/// components separated by single `/`; no component empty or starting with `.` (so no `.`,
/// `..`, absolute path or hidden file).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefName(String);

impl RefName {
    /// Checks `name` against the rules above.
    pub fn new(name: &str) -> Result<Self, RefNameError> {
        if name.is_empty() {
            return Err(RefNameError::Empty);
        }
        if name.len() > REF_NAME_MAX {
            return Err(RefNameError::TooLong(name.len()));
        }
        if let Some((position, c)) = name
            .char_indices()
            .find(|&(_, c)| !c.is_ascii_graphic() || c == '\\')
        {
            return Err(RefNameError::BadCharacter {
                name: name.to_owned(),
                byte: c,
                position,
            });
        }
        for component in name.split('/') {
            if component.is_empty() {
                return Err(RefNameError::EmptyComponent(name.to_owned()));
            }
            if component.starts_with('.') {
                return Err(RefNameError::DotComponent(name.to_owned()));
            }
        }
        Ok(RefName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of `/`-separated components (1 for `stable`, 2 for `os/stable`).
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// The directory part (`os` for `os/stable`), if any.
    pub(crate) fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(dir, _)| dir)
    }

    /// The last component (`stable` for `os/stable`).
    pub(crate) fn file_name(&self) -> &str {
        self.0
            .rsplit_once('/')
            .map_or(self.0.as_str(), |(_, last)| last)
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ref {:?}", self.0)
    }
}

impl FromStr for RefName {
    type Err = RefNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RefName::new(s)
    }
}

impl AsRef<str> for RefName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "d344782ff962ab7d1c5533755c19c5bf3c3485f55bfaf228fc89524c7e2ba61e";

    #[test]
    fn object_id_text_forms() {
        let id: ObjectId = HEX.parse().unwrap();
        assert_eq!(id.algorithm(), HashAlgorithm::Sha256);
        assert_eq!(id.to_string(), format!("sha256:{HEX}"));
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        assert_eq!(id.object_path(), format!("d3/{}", &HEX[2..]));
        assert_eq!(
            ObjectId::from_object_path(HashAlgorithm::Sha256, &id.object_path()).unwrap(),
            id
        );
        let long = HEX.repeat(2);
        let id512: ObjectId = long.parse().unwrap();
        assert_eq!(id512.algorithm(), HashAlgorithm::Sha512);
        assert_eq!(format!("sha512:{long}").parse::<ObjectId>().unwrap(), id512);
        assert_eq!("abc".parse::<ObjectId>(), Err(IdParseError::Length(3)));
        assert!("md5:00".parse::<ObjectId>().is_err());
    }

    #[test]
    fn object_paths_are_strict() {
        let alg = HashAlgorithm::Sha256;
        for bad in [
            HEX.to_owned(),
            format!("D3/{}", &HEX[2..]),
            format!("d/{}", &HEX[1..]),
            format!("d3/{}", &HEX[2..].to_uppercase()),
            format!("d3/{}0", &HEX[2..]),
            format!("../{}", &HEX[2..]),
        ] {
            assert!(ObjectId::from_object_path(alg, &bad).is_err(), "{bad}");
        }
        assert!(ObjectId::from_dir_entry(alg, 0xd3, &HEX.as_bytes()[2..]).is_some());
        assert!(ObjectId::from_dir_entry(alg, 0xd3, b".tmp-1-2").is_none());
        assert!(
            ObjectId::from_dir_entry(HashAlgorithm::Sha512, 0xd3, &HEX.as_bytes()[2..]).is_none()
        );
    }

    #[test]
    fn ref_names() {
        for good in [
            "stable",
            "os/x86_64/stable",
            "oci/app:latest",
            "a-b.c+d@e~f",
            "x/y.z",
        ] {
            assert_eq!(RefName::new(good).unwrap().as_str(), good);
        }
        assert_eq!(RefName::new("a/b/c").unwrap().depth(), 3);
        assert_eq!(RefName::new("a/b/c").unwrap().parent(), Some("a/b"));
        assert_eq!(RefName::new("a").unwrap().parent(), None);
        type Check = fn(&RefNameError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, RefNameError::Empty)),
            ("/abs", |e| matches!(e, RefNameError::EmptyComponent(_))),
            ("a//b", |e| matches!(e, RefNameError::EmptyComponent(_))),
            ("a/", |e| matches!(e, RefNameError::EmptyComponent(_))),
            ("..", |e| matches!(e, RefNameError::DotComponent(_))),
            ("a/../b", |e| matches!(e, RefNameError::DotComponent(_))),
            ("a/./b", |e| matches!(e, RefNameError::DotComponent(_))),
            (".hidden", |e| matches!(e, RefNameError::DotComponent(_))),
            ("with space", |e| {
                matches!(e, RefNameError::BadCharacter { position: 4, .. })
            }),
            ("back\\slash", |e| {
                matches!(e, RefNameError::BadCharacter { .. })
            }),
            ("nul\0", |e| matches!(e, RefNameError::BadCharacter { .. })),
            ("é", |e| matches!(e, RefNameError::BadCharacter { .. })),
        ];
        for (name, check) in cases {
            let e = RefName::new(name).unwrap_err();
            assert!(check(&e), "{name:?}: {e:?}");
        }
        assert!(matches!(
            RefName::new(&"a".repeat(REF_NAME_MAX + 1)),
            Err(RefNameError::TooLong(_))
        ));
        assert!(RefName::new(&"a".repeat(REF_NAME_MAX)).is_ok());
    }
}
