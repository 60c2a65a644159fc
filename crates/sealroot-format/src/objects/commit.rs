//! Commit objects.

use std::collections::BTreeMap;

use sealroot_verity::{AnyDigest, HashAlgorithm};

use super::error::{ParseError, Problem};
use super::text::{self, fields};
use super::ObjectKind;

/// The longest metadata key.
pub const META_KEY_MAX: usize = 128;

/// A commit: a tree and what is said about it.
///
/// Its ids are all of one algorithm, its repository's (the parser refuses a mix; the encoder
/// does not check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The root directory's dirtree.
    pub tree: AnyDigest,
    /// The root directory's dirmeta.
    pub dirmeta: AnyDigest,
    /// The commit this one follows, if any.
    pub parent: Option<AnyDigest>,
    /// The fs-verity digest of the composefs image derived from the tree.
    pub image: AnyDigest,
    /// The composefs format version of that image (0 or 1).
    pub image_format: u32,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// A version string, such as `42.1`.
    pub version: Option<String>,
    /// Free-form metadata: keys of `[A-Za-z0-9._:-]`, 1 to [`META_KEY_MAX`] bytes.
    pub metadata: BTreeMap<String, String>,
    /// One line saying what this is (may be empty).
    pub subject: String,
    /// More text (may be empty).
    pub body: String,
}

/// A metadata key that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata key \"{0}\" must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")]
pub struct MetaKeyError(pub String);

impl Commit {
    /// Checks a metadata key.
    ///
    /// # Errors
    /// [`MetaKeyError`] for an empty, long or oddly spelt key.
    pub fn check_meta_key(key: &str) -> Result<(), MetaKeyError> {
        let ok = !key.is_empty()
            && key.len() <= META_KEY_MAX
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(())
        } else {
            Err(MetaKeyError(key.to_owned()))
        }
    }

    /// The algorithm of the commit's ids (that of its image's digest): its repository's.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.image.algorithm()
    }

    /// The commit object's bytes. Metadata keys must pass [`Commit::check_meta_key`] (a
    /// commit with a bad key encodes, but its bytes do not parse).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        text::header(&mut out, ObjectKind::Commit);
        out.extend_from_slice(format!("tree {}\ndirmeta {}\n", self.tree, self.dirmeta).as_bytes());
        if let Some(p) = &self.parent {
            out.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "image {}:{}\nimage-format {}\ntimestamp {}\n",
                self.image.algorithm(),
                self.image,
                self.image_format,
                self.timestamp
            )
            .as_bytes(),
        );
        let mut line = |key: &str, value: &str| {
            out.extend_from_slice(key.as_bytes());
            text::push_field(&mut out, value.as_bytes());
            out.push(b'\n');
        };
        if let Some(v) = &self.version {
            line("version", v);
        }
        for (k, v) in &self.metadata {
            line(&format!("meta {k}"), v);
        }
        // Subject and body are text that is there or not: empty means absent.
        if !self.subject.is_empty() {
            line("subject", &self.subject);
        }
        if !self.body.is_empty() {
            line("body", &self.body);
        }
        out
    }

    /// Parses a commit object (strict, canonical only).
    ///
    /// # Errors
    /// [`ParseError`] naming the line and the problem.
    pub fn parse(bytes: &[u8]) -> Result<Commit, ParseError> {
        let kind = ObjectKind::Commit;
        let mut tree = None;
        let mut dirmeta = None;
        let mut parent = None;
        let mut image = None;
        let mut image_format = None;
        let mut timestamp = None;
        let mut version = None;
        let mut metadata = BTreeMap::new();
        let mut subject = String::new();
        let mut body = String::new();
        let mut algorithm = text::OneAlgorithm::default();
        for (n, line) in text::body_lines(kind, bytes)? {
            let err = |p| ParseError::new(kind, n, p);
            let f = fields(line);
            let want = |count: usize| {
                if f.len() == count {
                    Ok(())
                } else {
                    Err(err(Problem::FieldCount {
                        what: "commit line",
                        expected: count,
                        found: f.len(),
                    }))
                }
            };
            let textual = |field: &'static str, raw: &[u8]| -> Result<String, ParseError> {
                let bytes = text::unescape(field, raw).map_err(err)?;
                String::from_utf8(bytes).map_err(|_| {
                    err(Problem::BadField {
                        field,
                        reason: "not UTF-8".into(),
                    })
                })
            };
            let mut id = |field: &'static str, raw: &[u8]| -> Result<AnyDigest, ParseError> {
                let d = text::digest(field, raw).map_err(err)?;
                algorithm.check(&d).map_err(err)?;
                Ok(d)
            };
            match f[0] {
                b"tree" => {
                    want(2)?;
                    tree = Some(id("tree", f[1])?);
                }
                b"dirmeta" => {
                    want(2)?;
                    dirmeta = Some(id("dirmeta", f[1])?);
                }
                b"parent" => {
                    want(2)?;
                    parent = Some(id("parent", f[1])?);
                }
                b"image" => {
                    want(2)?;
                    let (named, hex) = image_digest(f[1]).map_err(err)?;
                    let d = id("image", hex)?;
                    if d.algorithm() != named {
                        return Err(err(Problem::BadField {
                            field: "image",
                            reason: format!("a {} digest named {named}", d.algorithm()),
                        }));
                    }
                    image = Some(d);
                }
                b"image-format" => {
                    want(2)?;
                    let v: u32 = text::dec("image-format", f[1]).map_err(err)?;
                    if v > crate::erofs::COMPOSEFS_VERSION_MAX {
                        return Err(err(Problem::BadField {
                            field: "image-format",
                            reason: format!("composefs format {v} is unknown"),
                        }));
                    }
                    image_format = Some(v);
                }
                b"timestamp" => {
                    want(2)?;
                    timestamp = Some(text::dec("timestamp", f[1]).map_err(err)?);
                }
                b"version" => {
                    want(2)?;
                    version = Some(textual("version", f[1])?);
                }
                b"meta" => {
                    want(3)?;
                    let key = textual("metadata key", f[1])?;
                    Commit::check_meta_key(&key).map_err(|e| {
                        err(Problem::BadField {
                            field: "metadata key",
                            reason: e.to_string(),
                        })
                    })?;
                    let value = textual("metadata value", f[2])?;
                    if metadata.insert(key.clone(), value).is_some() {
                        return Err(err(Problem::Duplicate {
                            what: "metadata key",
                            name: key,
                        }));
                    }
                }
                b"subject" => {
                    want(2)?;
                    subject = textual("subject", f[1])?;
                }
                b"body" => {
                    want(2)?;
                    body = textual("body", f[1])?;
                }
                other => return Err(err(Problem::UnexpectedLine(text::shown(other)))),
            }
        }
        let missing = |what| ParseError::new(kind, 0, Problem::Missing(what));
        let commit = Commit {
            tree: tree.ok_or_else(|| missing("tree"))?,
            dirmeta: dirmeta.ok_or_else(|| missing("dirmeta"))?,
            parent,
            image: image.ok_or_else(|| missing("image"))?,
            image_format: image_format.ok_or_else(|| missing("image-format"))?,
            timestamp: timestamp.ok_or_else(|| missing("timestamp"))?,
            version,
            metadata,
            subject,
            body,
        };
        // Order, duplicates of single lines and number spellings: one comparison.
        if commit.encode() != bytes {
            return Err(ParseError::new(kind, 0, Problem::NotCanonical));
        }
        Ok(commit)
    }
}

/// Splits `ALG:HEX` into the algorithm named and the hex.
fn image_digest(field: &[u8]) -> Result<(HashAlgorithm, &[u8]), Problem> {
    let bad = || Problem::BadField {
        field: "image",
        reason: "not sha256:DIGEST or sha512:DIGEST".into(),
    };
    let colon = field.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let named = std::str::from_utf8(&field[..colon])
        .ok()
        .and_then(|name| name.parse().ok())
        .ok_or_else(bad)?;
    Ok((named, &field[colon + 1..]))
}
