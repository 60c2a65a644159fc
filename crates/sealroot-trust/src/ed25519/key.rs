//! Public and secret keys in ostree's base64 formats, and key files.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64, Encoding as _};
use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// The size of an ed25519 public key in bytes.
pub const PUBLIC_KEY_SIZE: usize = 32;
/// The size of an ed25519 seed (the secret from which the key pair derives) in bytes.
pub const SEED_SIZE: usize = 32;
/// The size of a secret key in libsodium's format: the seed, then the public key.
pub const SECRET_KEY_SIZE: usize = SEED_SIZE + PUBLIC_KEY_SIZE;
/// The largest key file read, in bytes: a key is under a hundred bytes of text, so this
/// leaves room for [`MAX_KEYS`] keys with comments while bounding what a stray file costs.
pub const MAX_KEY_FILE_SIZE: u64 = 1 << 20;
/// The most keys a key file, or all the files of a keyring together, may hold.
pub const MAX_KEYS: usize = 10_000;

/// Decodes standard base64 with canonical padding into `N` bytes held in a buffer that is
/// wiped when dropped, allocated once so that no copy of the bytes is left behind by a
/// reallocation. Text that decodes to another length gives `wrong_length(decoded length)`.
fn decode_base64<const N: usize>(
    text: &str,
    wrong_length: fn(usize) -> KeyParseError,
) -> Result<Zeroizing<[u8; N]>, KeyParseError> {
    // Padded base64 is a multiple of four characters, each four giving at most three bytes.
    let mut buffer = Zeroizing::new(vec![0u8; text.len() / 4 * 3]);
    let decoded = Base64::decode(text, &mut buffer).map_err(|_| KeyParseError::Base64)?;
    let bytes: &[u8; N] = decoded
        .try_into()
        .map_err(|_| wrong_length(decoded.len()))?;
    Ok(Zeroizing::new(*bytes))
}

/// An ed25519 public key: a point of the curve that is not of small order.
///
/// Its text form (for [`fmt::Display`], [`FromStr`] and key files) is the base64 of its 32
/// bytes, as ostree writes it. Keys order by their bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_SIZE]);

impl PublicKey {
    /// A key from its 32 bytes, refusing bytes that are not a point of the curve or are a
    /// point of small order (a "weak" key, for which signatures can be forged).
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_SIZE]) -> Result<Self, KeyParseError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyParseError::NotOnCurve)?;
        if key.is_weak() {
            return Err(KeyParseError::WeakKey);
        }
        Ok(Self(*bytes))
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_SIZE] {
        &self.0
    }

    /// Parses the base64 of the key's 32 bytes (no surrounding whitespace).
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        let bytes = decode_base64(text, |got| KeyParseError::PublicKeyLength { got })?;
        Self::from_bytes(&bytes)
    }

    /// The base64 of the key's 32 bytes.
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.0)
    }

    /// The key as ed25519-dalek's type. Construction checked the bytes, so this only fails if
    /// that check and this one ever disagree.
    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

/// An ed25519 secret key.
///
/// Its text form is the base64 of libsodium's 64-byte secret key (the 32-byte seed, then the
/// 32-byte public key), as `ostree sign --sign-type=ed25519` reads it. The key is wiped from
/// memory when dropped; [`fmt::Debug`] shows only the public key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new random key, from the operating system's random number generator.
    pub fn generate() -> Result<Self, GenerateError> {
        let mut seed = Zeroizing::new([0u8; SEED_SIZE]);
        getrandom::getrandom(seed.as_mut_slice()).map_err(GenerateError)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key derived from a 32-byte seed (RFC 8032's "private key").
    pub fn from_seed(seed: &[u8; SEED_SIZE]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The key from libsodium's 64 bytes (seed, then public key), refusing a public half that
    /// does not match the seed.
    pub fn from_keypair_bytes(bytes: &[u8; SECRET_KEY_SIZE]) -> Result<Self, KeyParseError> {
        SigningKey::from_keypair_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyParseError::PublicHalfMismatch)
    }

    /// Parses the base64 of libsodium's 64-byte secret key (no surrounding whitespace).
    ///
    /// Errors never include any of the text.
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        let bytes = decode_base64(text, |got| KeyParseError::SecretKeyLength { got })?;
        Self::from_keypair_bytes(&bytes)
    }

    /// The base64 of libsodium's 64-byte secret key: what ostree and [`Self::from_base64`]
    /// read. The returned string is not wiped when dropped.
    pub fn to_base64(&self) -> String {
        let bytes = Zeroizing::new(self.0.to_keypair_bytes());
        Base64::encode_string(bytes.as_slice())
    }

    /// The public key that verifies this key's signatures.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl FromStr for SecretKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

/// The operating system could not provide random bytes for a new key.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a key: no random bytes from the operating system: {0}")]
pub struct GenerateError(getrandom::Error);

/// Why a single key could not be parsed. The messages never include the key's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyParseError {
    /// The text is not base64.
    #[error("not base64 (the standard alphabet, with `=` padding)")]
    Base64,
    /// A public key that does not decode to 32 bytes.
    #[error("a public key is {PUBLIC_KEY_SIZE} bytes, this decodes to {got}")]
    PublicKeyLength {
        /// The number of bytes decoded.
        got: usize,
    },
    /// A secret key that does not decode to 64 bytes.
    #[error(
        "a secret key is {SECRET_KEY_SIZE} bytes, the 32-byte seed then the 32-byte public key \
         (libsodium's format, which `ostree sign --sign-type=ed25519` uses); this decodes to \
         {got}{}",
        seed_hint(*.got)
    )]
    SecretKeyLength {
        /// The number of bytes decoded.
        got: usize,
    },
    /// A secret key whose second half is not the public key of its first half.
    #[error("the public half of the secret key does not match its seed: the key is damaged")]
    PublicHalfMismatch,
    /// 32 bytes that are not the encoding of a point of the curve.
    #[error("not an ed25519 public key (not a point of the curve)")]
    NotOnCurve,
    /// A point of small order, for which anyone can forge signatures.
    #[error("a weak ed25519 public key (a point of small order), refused")]
    WeakKey,
    /// A line of a key file that is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
}

fn seed_hint(got: usize) -> &'static str {
    if got == SEED_SIZE {
        " (a bare seed is not accepted)"
    } else {
        ""
    }
}

/// Which kind of key a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Public keys (trusted or revoked keys).
    Public,
    /// Secret keys (signing keys).
    Secret,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Public => "public",
            KeyKind::Secret => "secret",
        })
    }
}

/// Why a key file could not be parsed. `file` is the name given by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file is larger than [`MAX_KEY_FILE_SIZE`].
    #[error("{file}: {size} bytes, more than the {MAX_KEY_FILE_SIZE} a key file may have")]
    TooLarge {
        /// The file's name.
        file: String,
        /// Its size in bytes (at least this many).
        size: u64,
    },
    /// The file holds more than [`MAX_KEYS`] keys.
    #[error("{file}: more than {MAX_KEYS} keys")]
    TooManyKeys {
        /// The file's name.
        file: String,
    },
    /// A line that is not a key.
    #[error("{file}:{line}: not a valid {kind} key: {problem}")]
    Line {
        /// The file's name.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// The kind of key expected.
        kind: KeyKind,
        /// What is wrong with it.
        problem: KeyParseError,
    },
}

/// Parses a file of public keys: one base64 key per line, blank lines and `#` comments
/// ignored, surrounding whitespace trimmed. `source` names the file in errors.
pub fn parse_public_keys(text: &[u8], source: &str) -> Result<Vec<PublicKey>, KeyError> {
    parse_key_lines(text, source, KeyKind::Public, PublicKey::from_base64)
}

/// Parses a file of secret keys, in the same layout as [`parse_public_keys`]. Errors name the
/// file and the line, never the key.
pub fn parse_secret_keys(text: &[u8], source: &str) -> Result<Vec<SecretKey>, KeyError> {
    parse_key_lines(text, source, KeyKind::Secret, SecretKey::from_base64)
}

fn parse_key_lines<T>(
    text: &[u8],
    source: &str,
    kind: KeyKind,
    parse: impl Fn(&str) -> Result<T, KeyParseError>,
) -> Result<Vec<T>, KeyError> {
    let size = u64::try_from(text.len()).unwrap_or(u64::MAX);
    if size > MAX_KEY_FILE_SIZE {
        return Err(KeyError::TooLarge {
            file: source.to_owned(),
            size,
        });
    }
    let mut keys = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_error = |problem| KeyError::Line {
            file: source.to_owned(),
            line: index + 1,
            kind,
            problem,
        };
        let line = std::str::from_utf8(raw)
            .map_err(|_| line_error(KeyParseError::NotUtf8))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if keys.len() == MAX_KEYS {
            return Err(KeyError::TooManyKeys {
                file: source.to_owned(),
            });
        }
        keys.push(parse(line).map_err(line_error)?);
    }
    Ok(keys)
}
