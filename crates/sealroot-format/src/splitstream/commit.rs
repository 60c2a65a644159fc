//! The split stream of a sealroot commit.

use sealroot_verity::AnyDigest;

use super::{
    encode, parse, Chunk, EncodeError, ParseError, SplitStream, COMMIT_CONTENT_TYPE,
    COMMIT_STREAM_MAX, PARENT_REF,
};

/// Why bytes are not a sealroot commit stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitStreamError {
    /// Bigger than [`COMMIT_STREAM_MAX`].
    #[error("{0} bytes, more than the {COMMIT_STREAM_MAX} a commit stream may have")]
    TooLarge(usize),
    /// Not a split stream sealroot reads.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A split stream of another kind.
    #[error("content type {0:#018x}, not a sealroot commit ({COMMIT_CONTENT_TYPE:#018x})")]
    ContentType(u64),
    /// Not exactly one chunk, the commit object (object reference 0).
    #[error("its chunks are not the commit object alone")]
    Chunks,
    /// A named reference other than [`PARENT_REF`].
    #[error("unexpected named reference {0:?}")]
    NamedRef(String),
    /// Object references not in the order [`CommitStream::encode`] writes.
    #[error("not canonical: {0}")]
    NotCanonical(&'static str),
}

/// A sealroot commit's split stream: the stream `cfsctl gc` follows to keep the commit. Its
/// content is the commit object (one chunk, object reference 0), so `cfsctl cat` prints the
/// commit; its object references are the commit followed by every other object the commit
/// needs in ascending order (dirtrees, dirmetas, the image, file objects); it names its parent
/// commit's stream [`PARENT_REF`] when there is one, so that `cfsctl gc` walks the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStream {
    /// The commit object.
    pub commit: AnyDigest,
    /// The commit object's size (the stream size).
    pub commit_size: u64,
    /// Every other object the commit needs, sorted and each once (the commit itself, if
    /// there, is left out when encoding).
    pub objects: Vec<AnyDigest>,
    /// The parent commit's stream object, if the parent has one.
    pub parent: Option<AnyDigest>,
}

impl CommitStream {
    /// The split stream.
    pub fn to_stream(&self) -> SplitStream {
        let mut rest: Vec<AnyDigest> = self
            .objects
            .iter()
            .filter(|d| **d != self.commit)
            .copied()
            .collect();
        // Canonical whatever the caller gave: sorted, each once.
        rest.sort_unstable();
        rest.dedup();
        let mut object_refs = Vec::with_capacity(rest.len() + 1);
        object_refs.push(self.commit);
        object_refs.extend(rest);
        SplitStream {
            algorithm: self.commit.algorithm(),
            content_type: COMMIT_CONTENT_TYPE,
            stream_size: self.commit_size,
            object_refs,
            named_refs: self
                .parent
                .iter()
                .map(|p| (PARENT_REF.to_owned(), *p))
                .collect(),
            chunks: vec![Chunk::External(0)],
        }
    }

    /// The stream's bytes.
    ///
    /// # Errors
    /// [`EncodeError::MixedAlgorithms`] if a digest is not of the commit's algorithm.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode(&self.to_stream())
    }

    /// Reads a commit stream, strictly: what [`parse`] refuses, another content type, other
    /// chunks or names, and object references out of order are refused.
    ///
    /// # Errors
    /// [`CommitStreamError`] saying which.
    pub fn parse(bytes: &[u8]) -> Result<CommitStream, CommitStreamError> {
        if bytes.len() > COMMIT_STREAM_MAX {
            return Err(CommitStreamError::TooLarge(bytes.len()));
        }
        let s = parse(bytes)?;
        if s.content_type != COMMIT_CONTENT_TYPE {
            return Err(CommitStreamError::ContentType(s.content_type));
        }
        if s.chunks != [Chunk::External(0)] {
            return Err(CommitStreamError::Chunks);
        }
        if let Some(name) = s.named_refs.keys().find(|n| *n != PARENT_REF) {
            return Err(CommitStreamError::NamedRef(name.clone()));
        }
        let (commit, rest) = s
            .object_refs
            .split_first()
            .ok_or(CommitStreamError::Chunks)?;
        if !rest.windows(2).all(|w| w[0] < w[1]) {
            return Err(CommitStreamError::NotCanonical(
                "object references after the commit are not in ascending order",
            ));
        }
        Ok(CommitStream {
            commit: *commit,
            commit_size: s.stream_size,
            objects: rest.to_vec(),
            parent: s.named_refs.get(PARENT_REF).copied(),
        })
    }

    /// Every object the stream keeps: the commit, then the others.
    pub fn objects(&self) -> impl Iterator<Item = &AnyDigest> {
        std::iter::once(&self.commit).chain(self.objects.iter().filter(|d| **d != self.commit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splitstream::references;
    use crate::splitstream::tests::{d256, d512};

    #[test]
    fn commit_streams() {
        let commit = d256(5);
        let cs = CommitStream {
            commit,
            commit_size: 321,
            objects: vec![d256(1), commit, d256(4), d256(9)],
            parent: Some(d256(7)),
        };
        let b = cs.encode().unwrap();
        let r = references(&b).unwrap();
        assert_eq!(r.object_refs, [commit, d256(1), d256(4), d256(9)]);
        assert_eq!(r.stream_refs, [d256(7)]);
        assert_eq!(r.info.content_type, COMMIT_CONTENT_TYPE);
        assert_eq!(&r.info.content_type.to_le_bytes(), b"srcommit");
        let back = CommitStream::parse(&b).unwrap();
        assert_eq!(back.commit, commit);
        assert_eq!(back.parent, Some(d256(7)));
        assert_eq!(back.commit_size, 321);
        assert_eq!(
            back.objects().copied().collect::<Vec<_>>(),
            [commit, d256(1), d256(4), d256(9)]
        );
        assert_eq!(back.encode().unwrap(), b);

        let orphan = CommitStream {
            parent: None,
            ..cs.clone()
        };
        assert_eq!(
            CommitStream::parse(&orphan.encode().unwrap())
                .unwrap()
                .parent,
            None
        );

        // Other streams are not commit streams.
        let mut s = cs.to_stream();
        s.content_type = 1;
        assert_eq!(
            CommitStream::parse(&encode(&s).unwrap()),
            Err(CommitStreamError::ContentType(1))
        );
        let mut s = cs.to_stream();
        s.chunks = vec![Chunk::External(1)];
        assert_eq!(
            CommitStream::parse(&encode(&s).unwrap()),
            Err(CommitStreamError::Chunks)
        );
        let mut s = cs.to_stream();
        s.named_refs.insert("image".into(), d256(1));
        assert!(matches!(
            CommitStream::parse(&encode(&s).unwrap()),
            Err(CommitStreamError::NamedRef(n)) if n == "image"
        ));
        let mut s = cs.to_stream();
        s.object_refs.swap(1, 2);
        assert!(matches!(
            CommitStream::parse(&encode(&s).unwrap()),
            Err(CommitStreamError::NotCanonical(_))
        ));
        let mixed = CommitStream {
            objects: vec![d512(1)],
            ..cs
        };
        assert!(matches!(
            mixed.encode(),
            Err(EncodeError::MixedAlgorithms { .. })
        ));
    }
}
