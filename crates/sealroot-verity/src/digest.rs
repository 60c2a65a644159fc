//! Digest newtypes: a sha256 or sha512 fs-verity digest, never passed around as a hex string.

use std::fmt;
use std::str::FromStr;

/// The hash algorithms fs-verity supports, with the numbers the kernel uses for them
/// (`FS_VERITY_HASH_ALG_*` in `include/uapi/linux/fsverity.h`). The default is sha256, the
/// only one C composefs knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256: `FS_VERITY_HASH_ALG_SHA256 = 1`, 32-byte digests.
    #[default]
    Sha256,
    /// SHA-512: `FS_VERITY_HASH_ALG_SHA512 = 2`, 64-byte digests.
    Sha512,
}

impl HashAlgorithm {
    /// The kernel's number for this algorithm.
    pub const fn kernel_id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha512 => 2,
        }
    }

    /// The digest size in bytes.
    pub const fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The name used in `sha256:HEX` and by `fsverity digest --hash-alg`.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm with the kernel's number `id`, if any.
    pub const fn from_kernel_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(HashAlgorithm::Sha256),
            2 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha512" => Ok(HashAlgorithm::Sha512),
            _ => Err(DigestParseError::UnknownAlgorithm(s.to_owned())),
        }
    }
}

/// Why a digest could not be parsed from text or bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestParseError {
    /// The text or byte string has the wrong length for the algorithm.
    #[error("a {algorithm} digest is {expected} hex digits, got {got}")]
    Length {
        /// The algorithm expected.
        algorithm: HashAlgorithm,
        /// The expected number of hex digits (or bytes, for binary input).
        expected: usize,
        /// The number found.
        got: usize,
    },
    /// A character that is not a hex digit.
    #[error("not a hex digit at position {0}")]
    NotHex(usize),
    /// An algorithm name other than `sha256` or `sha512`.
    #[error("unknown digest algorithm {0:?} (expected sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// Hex whose length fits no algorithm (64 digits for sha256, 128 for sha512).
    #[error("{0} hex digits is neither a sha256 (64) nor a sha512 (128) digest")]
    AnyLength(usize),
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `text` (hex, either case) into `out`, which fixes the expected length.
fn decode_hex(
    text: &str,
    out: &mut [u8],
    algorithm: HashAlgorithm,
) -> Result<(), DigestParseError> {
    let bytes = text.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err(DigestParseError::Length {
            algorithm,
            expected: out.len() * 2,
            got: bytes.len(),
        });
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(DigestParseError::NotHex(2 * i))?;
        let lo = hex_value(pair[1]).ok_or(DigestParseError::NotHex(2 * i + 1))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(())
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 128];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    // The buffer holds only ASCII hex digits.
    f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).map_err(|_| fmt::Error)?)
}

macro_rules! digest_type {
    ($name:ident, $len:expr, $alg:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The algorithm of this digest type.
            pub const ALGORITHM: HashAlgorithm = $alg;
            /// The size of this digest in bytes.
            pub const SIZE: usize = $len;

            /// The digest bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// A digest from raw bytes, checking the length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, DigestParseError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| DigestParseError::Length {
                    algorithm: $alg,
                    expected: $len,
                    got: bytes.len(),
                })?;
                Ok(Self(arr))
            }

            /// Parses lower- or upper-case hex.
            pub fn from_hex(text: &str) -> Result<Self, DigestParseError> {
                let mut out = [0u8; $len];
                decode_hex(text, &mut out, $alg)?;
                Ok(Self(out))
            }

            /// Lower-case hex, as `fsverity digest` prints it.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }

            /// The object path a content-addressed store uses for this digest:
            /// `XX/REST`, the first two hex digits naming the directory.
            pub fn object_path(&self) -> String {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut out = String::with_capacity(2 * $len + 1);
                for (i, &b) in self.0.iter().enumerate() {
                    if i == 1 {
                        out.push('/');
                    }
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 15)]));
                }
                out
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:", $alg.name())?;
                write_hex(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }
    };
}

digest_type!(
    Sha256Digest,
    32,
    HashAlgorithm::Sha256,
    "A sha256 fs-verity digest (32 bytes). Composefs images record this kind."
);
digest_type!(
    Sha512Digest,
    64,
    HashAlgorithm::Sha512,
    "A sha512 fs-verity digest (64 bytes)."
);

/// A digest of either algorithm, as returned by the algorithm-generic [`Hasher`](crate::Hasher).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum AnyDigest {
    /// A sha256 digest.
    Sha256(Sha256Digest),
    /// A sha512 digest.
    Sha512(Sha512Digest),
}

impl AnyDigest {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AnyDigest::Sha256(d) => d.as_bytes(),
            AnyDigest::Sha512(d) => d.as_bytes(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self {
            AnyDigest::Sha256(_) => HashAlgorithm::Sha256,
            AnyDigest::Sha512(_) => HashAlgorithm::Sha512,
        }
    }

    /// The sha256 digest, if this is one.
    pub fn as_sha256(&self) -> Option<&Sha256Digest> {
        match self {
            AnyDigest::Sha256(d) => Some(d),
            AnyDigest::Sha512(_) => None,
        }
    }

    /// The sha512 digest, if this is one.
    pub fn as_sha512(&self) -> Option<&Sha512Digest> {
        match self {
            AnyDigest::Sha512(d) => Some(d),
            AnyDigest::Sha256(_) => None,
        }
    }

    /// A digest of `algorithm` from raw bytes, checking the length.
    pub fn from_slice(algorithm: HashAlgorithm, bytes: &[u8]) -> Result<Self, DigestParseError> {
        match algorithm {
            HashAlgorithm::Sha256 => Sha256Digest::from_slice(bytes).map(AnyDigest::Sha256),
            HashAlgorithm::Sha512 => Sha512Digest::from_slice(bytes).map(AnyDigest::Sha512),
        }
    }

    /// Parses hex (either case) of `algorithm`'s length.
    pub fn from_hex(algorithm: HashAlgorithm, text: &str) -> Result<Self, DigestParseError> {
        match algorithm {
            HashAlgorithm::Sha256 => Sha256Digest::from_hex(text).map(AnyDigest::Sha256),
            HashAlgorithm::Sha512 => Sha512Digest::from_hex(text).map(AnyDigest::Sha512),
        }
    }

    /// Parses hex (either case) whose length says the algorithm: 64 digits are a sha256
    /// digest, 128 a sha512 one.
    pub fn from_hex_any(text: &str) -> Result<Self, DigestParseError> {
        match text.len() {
            64 => Self::from_hex(HashAlgorithm::Sha256, text),
            128 => Self::from_hex(HashAlgorithm::Sha512, text),
            n => Err(DigestParseError::AnyLength(n)),
        }
    }

    /// Lower-case hex, as `fsverity digest` prints it.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The object path a content-addressed store uses for this digest: `XX/REST`, the
    /// first two hex digits naming the directory.
    pub fn object_path(&self) -> String {
        match self {
            AnyDigest::Sha256(d) => d.object_path(),
            AnyDigest::Sha512(d) => d.object_path(),
        }
    }
}

impl From<Sha256Digest> for AnyDigest {
    fn from(d: Sha256Digest) -> Self {
        AnyDigest::Sha256(d)
    }
}

impl From<Sha512Digest> for AnyDigest {
    fn from(d: Sha512Digest) -> Self {
        AnyDigest::Sha512(d)
    }
}

impl fmt::Display for AnyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyDigest::Sha256(d) => d.fmt(f),
            AnyDigest::Sha512(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let text = "d344782ff962ab7d1c5533755c19c5bf3c3485f55bfaf228fc89524c7e2ba61e";
        let d: Sha256Digest = text.parse().unwrap();
        assert_eq!(d.to_string(), text);
        assert_eq!(d.object_path(), format!("d3/{}", &text[2..]));
        assert_eq!(Sha256Digest::from_hex(&text.to_uppercase()).unwrap(), d);
    }

    #[test]
    fn hex_errors() {
        assert!(matches!(
            Sha256Digest::from_hex("abcd"),
            Err(DigestParseError::Length { got: 4, .. })
        ));
        let mut bad = "0".repeat(64);
        bad.replace_range(5..6, "g");
        assert_eq!(
            Sha256Digest::from_hex(&bad),
            Err(DigestParseError::NotHex(5))
        );
        assert!(Sha512Digest::from_hex(&"0".repeat(64)).is_err());
    }

    #[test]
    fn any_digest_text_forms() {
        let short = "d344782ff962ab7d1c5533755c19c5bf3c3485f55bfaf228fc89524c7e2ba61e";
        let long = short.repeat(2);
        let d256 = AnyDigest::from_hex_any(short).unwrap();
        let d512 = AnyDigest::from_hex_any(&long).unwrap();
        assert_eq!(d256.algorithm(), HashAlgorithm::Sha256);
        assert_eq!(d512.algorithm(), HashAlgorithm::Sha512);
        assert_eq!(d512.to_hex(), long);
        assert_eq!(d512.object_path(), format!("d3/{}", &long[2..]));
        assert_eq!(
            AnyDigest::from_slice(HashAlgorithm::Sha512, d512.as_bytes()),
            Ok(d512)
        );
        assert_eq!(AnyDigest::from(Sha256Digest([7; 32])).as_bytes(), &[7; 32]);
        assert_eq!(
            AnyDigest::from_hex_any(&short[..62]),
            Err(DigestParseError::AnyLength(62))
        );
        assert!(AnyDigest::from_hex(HashAlgorithm::Sha512, short).is_err());
        assert!(AnyDigest::from_slice(HashAlgorithm::Sha256, d512.as_bytes()).is_err());
    }
}

/// A hasher for sets of digests: a digest is already uniformly random, so its first eight
/// bytes are a good hash, and hashing all of it again (SipHash) was a fifth of a repository `gc`. Lengths
/// and enum tags written before the bytes are ignored.
#[derive(Default)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 {
            let mut b = [0u8; 8];
            let n = bytes.len().min(8);
            b[..n].copy_from_slice(&bytes[..n]);
            self.0 = u64::from_le_bytes(b) | 1;
        }
    }

    fn write_usize(&mut self, _: usize) {}

    fn write_isize(&mut self, _: isize) {}

    fn write_u8(&mut self, _: u8) {}
}

/// A set of digests (object, commit or tree ids), hashed by [`DigestHasher`].
pub type DigestSet<T> = std::collections::HashSet<T, std::hash::BuildHasherDefault<DigestHasher>>;
