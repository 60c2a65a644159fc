//! The detached signature file of a commit: its canonical text encoding and strict parser.
//! The format is described in the documentation of the parent module.

use std::fmt;

use base64ct::{Base64, Encoding as _};
use sealroot_verity::AnyDigest;

use super::key::{KeyParseError, PublicKey, SecretKey};
use super::verify::{sign, Signature, SIGNATURE_SIZE};

/// The first line of a signature file (without its `\n`): the format's name and version.
pub const SIGNATURE_FILE_HEADER: &str = "sealroot-signatures 1";
/// The format's name, which starts the header line whatever the version.
const MAGIC: &str = "sealroot-signatures";
/// The prefix of the commit line.
const COMMIT_PREFIX: &str = "commit ";
/// The kind of an ed25519 signature line.
const ED25519_KIND: &str = "ed25519";
/// The largest signature file parsed, in bytes: a signature line is 142 bytes, so this holds
/// [`MAX_SIGNATURES`] lines several times over and bounds what a hostile file costs.
pub const MAX_SIGNATURE_FILE_SIZE: usize = 1 << 20;
/// The most signatures a signature file may hold: far more than any real commit needs.
pub const MAX_SIGNATURES: usize = 1000;
/// The longest piece of a bad line quoted in an error.
const SNIPPET_LEN: usize = 40;

/// The signatures of one commit, as stored beside it.
///
/// The signatures are kept sorted by public key, at most one per key, so the encoding is
/// canonical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureFile {
    commit: AnyDigest,
    signatures: Vec<Signature>,
}

/// [`SignatureFile::add`] was refused: the file already holds [`MAX_SIGNATURES`] signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signature file holds at most {MAX_SIGNATURES} signatures")]
pub struct TooManySignatures;

impl SignatureFile {
    /// A signature file for `commit`, with no signature yet.
    pub fn new(commit: AnyDigest) -> Self {
        Self {
            commit,
            signatures: Vec::new(),
        }
    }

    /// The commit whose signatures these are.
    pub fn commit(&self) -> &AnyDigest {
        &self.commit
    }

    /// The signatures, sorted by public key, one per key.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// Adds `signature`, replacing (and returning) any signature by the same key. The
    /// signature is not checked: [`super::verify`] does that.
    pub fn add(&mut self, signature: Signature) -> Result<Option<Signature>, TooManySignatures> {
        match self
            .signatures
            .binary_search_by(|s| s.key.cmp(&signature.key))
        {
            Ok(index) => Ok(Some(std::mem::replace(
                &mut self.signatures[index],
                signature,
            ))),
            Err(index) => {
                if self.signatures.len() >= MAX_SIGNATURES {
                    return Err(TooManySignatures);
                }
                self.signatures.insert(index, signature);
                Ok(None)
            }
        }
    }

    /// Signs the commit with `secret` and adds the signature, replacing any earlier one by
    /// the same key.
    pub fn sign(&mut self, secret: &SecretKey) -> Result<Option<Signature>, TooManySignatures> {
        let signature = sign(secret, &self.commit);
        self.add(signature)
    }

    /// Removes the signature by `key`, returning it if there was one.
    pub fn remove(&mut self, key: &PublicKey) -> Option<Signature> {
        let index = self.signatures.binary_search_by(|s| s.key.cmp(key)).ok()?;
        Some(self.signatures.remove(index))
    }

    /// The canonical text encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("{SIGNATURE_FILE_HEADER}\n{COMMIT_PREFIX}{}\n", self.commit);
        for signature in &self.signatures {
            text.push_str(ED25519_KIND);
            text.push(' ');
            text.push_str(&signature.key.to_base64());
            text.push(' ');
            text.push_str(&Base64::encode_string(&signature.signature));
            text.push('\n');
        }
        text.into_bytes()
    }

    /// Parses a signature file, accepting only the canonical encoding. `source` names the
    /// file in errors.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, SignatureFileError> {
        let error = |line, problem| SignatureFileError::Line {
            file: source.to_owned(),
            line,
            problem,
        };
        if bytes.len() > MAX_SIGNATURE_FILE_SIZE {
            return Err(SignatureFileError::TooLarge {
                file: source.to_owned(),
                size: bytes.len(),
            });
        }
        if bytes.is_empty() {
            return Err(error(1, SignatureFileProblem::Empty));
        }
        let Some(body) = bytes.strip_suffix(b"\n") else {
            let last_line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(error(last_line, SignatureFileProblem::MissingNewline));
        };
        let mut lines = body.split(|&b| b == b'\n').zip(1..).map(|(raw, number)| {
            check_printable(raw)
                .map(|text| (number, text))
                .map_err(|problem| error(number, problem))
        });

        // The header. `split` yields at least one item, even for an empty body.
        let (number, header) = lines
            .next()
            .unwrap_or_else(|| Err(error(1, SignatureFileProblem::Empty)))?;
        if header != SIGNATURE_FILE_HEADER {
            let problem = match header.strip_prefix(MAGIC).and_then(|r| r.strip_prefix(' ')) {
                Some(version) => SignatureFileProblem::UnsupportedVersion {
                    version: snippet(version),
                },
                None => SignatureFileProblem::BadHeader {
                    found: snippet(header),
                },
            };
            return Err(error(number, problem));
        }

        // The commit.
        let Some(line) = lines.next() else {
            return Err(error(2, SignatureFileProblem::MissingCommit));
        };
        let (number, line) = line?;
        let commit = parse_commit(line).map_err(|problem| error(number, problem))?;

        // The signatures.
        let mut file = Self::new(commit);
        for line in lines {
            let (number, line) = line?;
            if file.signatures.len() == MAX_SIGNATURES {
                return Err(error(number, SignatureFileProblem::TooManySignatures));
            }
            let signature = parse_signature(line).map_err(|problem| error(number, problem))?;
            if let Some(previous) = file.signatures.last() {
                if signature.key == previous.key {
                    return Err(error(
                        number,
                        SignatureFileProblem::DuplicateKey { key: signature.key },
                    ));
                }
                if signature.key < previous.key {
                    return Err(error(
                        number,
                        SignatureFileProblem::OutOfOrder {
                            key: signature.key,
                            previous: previous.key,
                        },
                    ));
                }
            }
            file.signatures.push(signature);
        }
        Ok(file)
    }
}

/// The line as text, if it holds only printable ASCII and spaces.
fn check_printable(raw: &[u8]) -> Result<&str, SignatureFileProblem> {
    if let Some(column) = raw.iter().position(|&b| !(b' '..=b'~').contains(&b)) {
        return Err(SignatureFileProblem::UnexpectedByte {
            byte: raw[column],
            column: column + 1,
        });
    }
    std::str::from_utf8(raw)
        .map_err(|_| SignatureFileProblem::UnexpectedByte { byte: 0, column: 1 })
}

fn parse_commit(line: &str) -> Result<AnyDigest, SignatureFileProblem> {
    let bad = || SignatureFileProblem::BadCommitLine {
        found: snippet(line),
    };
    let hex = line.strip_prefix(COMMIT_PREFIX).ok_or_else(bad)?;
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    // 64 digits for a sha256 id, 128 for a sha512 one; anything else is refused.
    AnyDigest::from_hex_any(hex).map_err(|_| bad())
}

fn parse_signature(line: &str) -> Result<Signature, SignatureFileProblem> {
    let mut fields = line.split(' ');
    let kind = fields.next().unwrap_or_default();
    if kind != ED25519_KIND {
        return Err(SignatureFileProblem::UnknownKind {
            kind: snippet(kind),
        });
    }
    let (Some(key), Some(signature), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(SignatureFileProblem::MalformedSignatureLine);
    };
    let key = PublicKey::from_base64(key).map_err(SignatureFileProblem::BadKey)?;
    let bytes = Base64::decode_vec(signature).map_err(|_| SignatureFileProblem::SignatureBase64)?;
    let signature: [u8; SIGNATURE_SIZE] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignatureFileProblem::SignatureLength { got: bytes.len() })?;
    Ok(Signature { key, signature })
}

/// At most [`SNIPPET_LEN`] characters of `text` (already checked to be printable ASCII).
fn snippet(text: &str) -> String {
    match text.get(..SNIPPET_LEN) {
        Some(start) if start.len() < text.len() => format!("{start}…"),
        _ => text.to_owned(),
    }
}

/// Why a signature file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFileError {
    /// The file is larger than [`MAX_SIGNATURE_FILE_SIZE`].
    #[error(
        "signature file {file}: {size} bytes, more than the {MAX_SIGNATURE_FILE_SIZE} a \
         signature file may have"
    )]
    TooLarge {
        /// The file's name.
        file: String,
        /// Its size.
        size: usize,
    },
    /// A line is wrong.
    #[error("signature file {file}, line {line}: {problem}")]
    Line {
        /// The file's name.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        problem: SignatureFileProblem,
    },
}

/// What is wrong with a line of a signature file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFileProblem {
    /// The file is empty.
    #[error("the file is empty; expected `{SIGNATURE_FILE_HEADER}`")]
    Empty,
    /// The last line does not end with a newline (a truncated file?).
    #[error("the last line does not end with a newline: the file may be truncated")]
    MissingNewline,
    /// A byte other than printable ASCII or a space.
    #[error("unexpected byte 0x{byte:02x} in column {column} (only printable ASCII is allowed)")]
    UnexpectedByte {
        /// The byte.
        byte: u8,
        /// Its 1-based column.
        column: usize,
    },
    /// The first line is not a signature file header.
    #[error("not a sealroot signature file: expected `{SIGNATURE_FILE_HEADER}`, found {found:?}")]
    BadHeader {
        /// The start of the line.
        found: String,
    },
    /// A header with a version this code does not read.
    #[error("signature file version {version:?} is not supported (this sealroot reads version 1)")]
    UnsupportedVersion {
        /// The version found.
        version: String,
    },
    /// The file ends after the header.
    #[error("missing the `commit <id>` line")]
    MissingCommit,
    /// The second line is not `commit ` and 64 (sha256) or 128 (sha512) lower-case hex
    /// digits.
    #[error("expected `commit ` and 64 or 128 lower-case hex digits, found {found:?}")]
    BadCommitLine {
        /// The start of the line.
        found: String,
    },
    /// A line of a kind other than `ed25519`.
    #[error("unknown signature kind {kind:?} (expected `ed25519`)")]
    UnknownKind {
        /// The first field of the line.
        kind: String,
    },
    /// A signature line without exactly two fields after its kind, single-space separated.
    #[error("expected `ed25519 <public key> <signature>`, fields separated by single spaces")]
    MalformedSignatureLine,
    /// The public key field is not a valid key.
    #[error("bad public key: {0}")]
    BadKey(KeyParseError),
    /// The signature field is not base64.
    #[error("bad signature: not base64 (the standard alphabet, with `=` padding)")]
    SignatureBase64,
    /// The signature field does not decode to 64 bytes.
    #[error(
        "bad signature: an ed25519 signature is {SIGNATURE_SIZE} bytes, this decodes to {got}"
    )]
    SignatureLength {
        /// The number of bytes decoded.
        got: usize,
    },
    /// A second signature by the same key.
    #[error("a second signature by key {key}")]
    DuplicateKey {
        /// The key.
        key: PublicKey,
    },
    /// Signature lines not sorted by key.
    #[error("signature by key {key} is out of order: it sorts before key {previous} above it")]
    OutOfOrder {
        /// The key of this line.
        key: PublicKey,
        /// The key of the line before.
        previous: PublicKey,
    },
    /// More than [`MAX_SIGNATURES`] signatures.
    #[error("more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

impl fmt::Display for SignatureFile {
    /// The canonical encoding, as text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}
