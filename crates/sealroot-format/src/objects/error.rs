//! Errors of the object parsers.

use sealroot_verity::HashAlgorithm;

use super::ObjectKind;

/// What is wrong with an object's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Bigger than the parser accepts.
    #[error("{size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The first line is not this kind's header.
    #[error("does not start with \"sealroot-{expected} 1\"")]
    BadHeader {
        /// The kind expected.
        expected: &'static str,
    },
    /// A format version this code does not know.
    #[error("format version {0} is newer than this sealroot understands (1)")]
    UnsupportedVersion(String),
    /// The last line has no `\n`.
    #[error("the last line does not end with a newline")]
    MissingNewline,
    /// A line this kind does not have (or one out of place).
    #[error("unexpected line \"{0}\"")]
    UnexpectedLine(String),
    /// A field that does not parse.
    #[error("bad {field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A line with too few or too many fields.
    #[error("{what}: expected {expected} fields, found {found}")]
    FieldCount {
        /// The line kind.
        what: &'static str,
        /// How many it needs (at least).
        expected: usize,
        /// How many it has.
        found: usize,
    },
    /// A required line is missing.
    #[error("no \"{0}\" line")]
    Missing(&'static str),
    /// A name, key or xattr appears twice.
    #[error("duplicate {what} \"{name}\"")]
    Duplicate {
        /// Entry, metadata key or xattr.
        what: &'static str,
        /// The (escaped) name.
        name: String,
    },
    /// Entries, keys or xattrs out of order.
    #[error("{what} \"{name}\" is out of order (they must be sorted bytewise)")]
    Unsorted {
        /// Entry, metadata key or xattr.
        what: &'static str,
        /// The (escaped) name.
        name: String,
    },
    /// Too many entries.
    #[error("more than {0} entries")]
    TooManyEntries(usize),
    /// Digests of two algorithms in one object: an object names objects of its repository's
    /// algorithm only.
    #[error("a {found} digest among {first} ones: an object names objects of one algorithm")]
    MixedAlgorithms {
        /// The algorithm of the first digest.
        first: HashAlgorithm,
        /// The other one, found later.
        found: HashAlgorithm,
    },
    /// Parses, but is not the one canonical encoding of what it says.
    #[error("not in canonical form (it would be encoded differently)")]
    NotCanonical,
}

/// An object that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}: {problem}", line_suffix(*line))]
pub struct ParseError {
    /// The kind of object being read.
    pub kind: ObjectKind,
    /// The 1-based line, or 0 for the object as a whole.
    pub line: usize,
    /// What is wrong.
    pub problem: Problem,
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

impl ParseError {
    pub(crate) fn new(kind: ObjectKind, line: usize, problem: Problem) -> Self {
        ParseError {
            kind,
            line,
            problem,
        }
    }
}
