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
        let mut partial = Partial::default();
        for (n, line) in text::body_lines(ObjectKind::Commit, bytes)? {
            partial.read(&Line { n, f: fields(line) })?;
        }
        let commit = partial.finish()?;
        // Order, duplicates of single lines and number spellings: one comparison.
        if commit.encode() != bytes {
            return Err(ParseError::new(
                ObjectKind::Commit,
                0,
                Problem::NotCanonical,
            ));
        }
        Ok(commit)
    }
}

/// A commit being parsed: what its lines said so far.
#[derive(Default)]
struct Partial {
    tree: Option<AnyDigest>,
    dirmeta: Option<AnyDigest>,
    parent: Option<AnyDigest>,
    image: Option<AnyDigest>,
    image_format: Option<u32>,
    timestamp: Option<i64>,
    version: Option<String>,
    metadata: BTreeMap<String, String>,
    subject: String,
    body: String,
    algorithm: text::OneAlgorithm,
}

impl Partial {
    /// Takes in one line.
    fn read(&mut self, l: &Line<'_>) -> Result<(), ParseError> {
        match l.f[0] {
            b"tree" => self.tree = Some(self.id(l, "tree", l.value()?)?),
            b"dirmeta" => self.dirmeta = Some(self.id(l, "dirmeta", l.value()?)?),
            b"parent" => self.parent = Some(self.id(l, "parent", l.value()?)?),
            b"image" => self.image = Some(self.image(l)?),
            b"image-format" => {
                let v: u32 = text::dec("image-format", l.value()?).map_err(|p| l.err(p))?;
                if v > crate::erofs::COMPOSEFS_VERSION_MAX {
                    return Err(l.bad("image-format", format!("composefs format {v} is unknown")));
                }
                self.image_format = Some(v);
            }
            b"timestamp" => {
                self.timestamp = Some(text::dec("timestamp", l.value()?).map_err(|p| l.err(p))?)
            }
            b"version" => self.version = Some(l.textual("version", l.value()?)?),
            b"meta" => self.meta(l)?,
            b"subject" => self.subject = l.textual("subject", l.value()?)?,
            b"body" => self.body = l.textual("body", l.value()?)?,
            other => return Err(l.err(Problem::UnexpectedLine(text::shown(other)))),
        }
        Ok(())
    }

    /// The digest `raw` of field `field`, of the algorithm of the others.
    fn id(
        &mut self,
        l: &Line<'_>,
        field: &'static str,
        raw: &[u8],
    ) -> Result<AnyDigest, ParseError> {
        let d = text::digest(field, raw).map_err(|p| l.err(p))?;
        self.algorithm.check(&d).map_err(|p| l.err(p))?;
        Ok(d)
    }

    /// The digest of an `image ALG:HEX` line, whose algorithm must be the one it names.
    fn image(&mut self, l: &Line<'_>) -> Result<AnyDigest, ParseError> {
        let (named, hex) = image_digest(l.value()?).map_err(|p| l.err(p))?;
        let d = self.id(l, "image", hex)?;
        if d.algorithm() != named {
            return Err(l.bad("image", format!("a {} digest named {named}", d.algorithm())));
        }
        Ok(d)
    }

    /// A `meta KEY VALUE` line.
    fn meta(&mut self, l: &Line<'_>) -> Result<(), ParseError> {
        l.want(3)?;
        let key = l.textual("metadata key", l.f[1])?;
        Commit::check_meta_key(&key).map_err(|e| l.bad("metadata key", e.to_string()))?;
        let value = l.textual("metadata value", l.f[2])?;
        if self.metadata.insert(key.clone(), value).is_some() {
            return Err(l.err(Problem::Duplicate {
                what: "metadata key",
                name: key,
            }));
        }
        Ok(())
    }

    /// The commit, if no line it must have is missing.
    fn finish(self) -> Result<Commit, ParseError> {
        let missing = |what| ParseError::new(ObjectKind::Commit, 0, Problem::Missing(what));
        Ok(Commit {
            tree: self.tree.ok_or_else(|| missing("tree"))?,
            dirmeta: self.dirmeta.ok_or_else(|| missing("dirmeta"))?,
            parent: self.parent,
            image: self.image.ok_or_else(|| missing("image"))?,
            image_format: self.image_format.ok_or_else(|| missing("image-format"))?,
            timestamp: self.timestamp.ok_or_else(|| missing("timestamp"))?,
            version: self.version,
            metadata: self.metadata,
            subject: self.subject,
            body: self.body,
        })
    }
}

/// Line `n` of a commit, split into its fields.
struct Line<'a> {
    n: usize,
    f: Vec<&'a [u8]>,
}

impl Line<'_> {
    fn err(&self, p: Problem) -> ParseError {
        ParseError::new(ObjectKind::Commit, self.n, p)
    }

    fn bad(&self, field: &'static str, reason: String) -> ParseError {
        self.err(Problem::BadField { field, reason })
    }

    /// Checks that the line has `count` fields.
    fn want(&self, count: usize) -> Result<(), ParseError> {
        if self.f.len() == count {
            Ok(())
        } else {
            Err(self.err(Problem::FieldCount {
                what: "commit line",
                expected: count,
                found: self.f.len(),
            }))
        }
    }

    /// The value of a `KEY VALUE` line.
    fn value(&self) -> Result<&[u8], ParseError> {
        self.want(2)?;
        Ok(self.f[1])
    }

    /// Escaped UTF-8 text `raw` of field `field`.
    fn textual(&self, field: &'static str, raw: &[u8]) -> Result<String, ParseError> {
        let bytes = text::unescape(field, raw).map_err(|p| self.err(p))?;
        String::from_utf8(bytes).map_err(|_| self.bad(field, "not UTF-8".into()))
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
