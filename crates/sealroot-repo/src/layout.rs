//! The repository's layout: every name in it, defined once, and the symlink texts that tie
//! them together. Nothing else in the crate spells a directory name or builds a link text.
//!
//! ```text
//! REPO/                       mode 0700
//! ├── meta.json               configuration (see Config)
//! ├── objects/XX/REST         file contents, tree objects, commits and images, by fs-verity digest
//! ├── images/HEX              -> ../objects/XX/REST : the objects that are composefs images
//! ├── images/refs/NAME        -> ../HEX (one ../ per component of NAME): named images
//! ├── commits/HEX             -> ../objects/XX/REST : the objects that are commits
//! ├── commits/HEX.sig, .p7s   a commit's ed25519 signatures, its image's kernel signature
//! ├── commits/refs/NAME       -> ../HEX (one ../ per component of NAME): named commits
//! ├── streams/NAME            -> ../objects/XX/REST : split streams (cfsctl's, and ours:
//! │                              sealroot-history-HEX, a ref's whole history, for cfsctl gc)
//! ├── streams/refs/sealroot/NAME -> ../../(../ per component)sealroot-history-HEX
//! ├── cache/devino            the digest cache of directory commits
//! └── tmp/                    markers, locks (tmp/locks/), temporary files and links
//! ```
//!
//! Every directory of the layout is a real directory: it is opened with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a symlink planted where a directory
//! belongs is refused, with an error naming it, instead of followed.

use crate::id::{ImageId, ObjectId, RefName};

/// The configuration file, shared with composefs-rs.
pub const META_FILE: &str = "meta.json";
/// Every object, in 256 directories `XX/`.
pub const OBJECTS: &str = "objects";
/// The links of the objects that are images.
pub const IMAGES: &str = "images";
/// Named images.
pub const IMAGE_REFS: &str = "images/refs";
/// The links of the objects that are commits, and their signature files.
pub const COMMITS: &str = "commits";
/// Named commits.
pub const COMMIT_REFS: &str = "commits/refs";
/// composefs-rs's split streams.
pub const STREAMS: &str = "streams";
/// Named split streams (`cfsctl`'s gc roots).
pub const STREAM_REFS: &str = "streams/refs";
/// sealroot's named split streams: one per commit ref, listing every object of its history,
/// so that `cfsctl gc` keeps them (it marks only from image refs and stream refs).
pub const SEALROOT_STREAM_REFS: &str = "streams/refs/sealroot";
/// The prefix of the `streams/` entries of sealroot's history streams.
pub const HISTORY_STREAM_PREFIX: &str = "sealroot-history-";
/// sealroot's digest cache of directory commits.
pub const CACHE: &str = "cache";
/// The digest cache file in [`CACHE`].
pub const DEVINO_CACHE: &str = "devino";
/// sealroot's scratch space.
pub const TMP: &str = "tmp";
/// Per-ref and per-commit lock files, in [`TMP`].
pub const LOCKS: &str = "tmp/locks";

/// The suffix of a commit's signature file.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// The suffix of the kernel built-in signature of a commit's image: DER PKCS#7 over the
/// image's fs-verity digest, as `fsverity sign` writes it.
pub const IMAGE_SIGNATURE_SUFFIX: &str = ".p7s";
/// The prefix of transaction markers in [`TMP`].
pub const MARKER_PREFIX: &str = "transaction.";
/// The prefix of the temporary names the digest store and composefs-rs use in `objects/XX`
/// where the filesystem has no `O_TMPFILE` (`.tmp-PID-N`, `.tmp-object-…`).
pub const STORE_TMP_PREFIX: &str = ".tmp-";

/// The kinds of refs, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// `images/refs/NAME -> ../HEX` (composefs-rs's refs).
    Image,
    /// `commits/refs/NAME -> ../HEX`.
    Commit,
    /// `streams/refs/sealroot/NAME -> ../../sealroot-history-HEX`: a commit ref's history
    /// stream, for `cfsctl gc`.
    Stream,
}

impl RefKind {
    /// The directory of refs of this kind.
    pub const fn dir(self) -> &'static str {
        match self {
            RefKind::Image => IMAGE_REFS,
            RefKind::Commit => COMMIT_REFS,
            RefKind::Stream => SEALROOT_STREAM_REFS,
        }
    }

    /// How many directories the refs directory lies below the directory its refs point
    /// into (`images/refs` below `images/`: 1; `streams/refs/sealroot` below `streams/`: 2).
    const fn depth(self) -> usize {
        match self {
            RefKind::Image | RefKind::Commit => 1,
            RefKind::Stream => 2,
        }
    }
}

/// The symlink text of ref `name` of `kind` to the entry `target` of the directory its refs
/// point into: `../` once per component of the name (and once more for stream refs), then
/// the target (`os/stable -> ../../HEX`).
pub fn ref_link(kind: RefKind, name: &RefName, target: &str) -> String {
    format!("{}{target}", "../".repeat(name.depth() + kind.depth() - 1))
}

/// The target a ref's symlink text names, if the text has exactly the form [`ref_link`]
/// makes for `name`: anything else (an absolute path, `..` too many or too few, another
/// directory) is refused, so a ref can never lead out of the repository.
pub fn parse_ref_link<'a>(kind: RefKind, name: &RefName, link: &'a str) -> Option<&'a str> {
    let mut rest = link;
    for _ in 0..name.depth() + kind.depth() - 1 {
        rest = rest.strip_prefix("../")?;
    }
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// The `streams/` entry of the history stream stored as object `id`.
pub fn history_stream_name(id: &ObjectId) -> String {
    format!("{HISTORY_STREAM_PREFIX}{}", id.to_hex())
}

/// The path of object `id` below the repository: `objects/XX/REST`.
pub fn object_rel(id: &ObjectId) -> String {
    format!("{OBJECTS}/{}", id.object_path())
}

/// The symlink text of `images/HEX` and `commits/HEX`: `../objects/XX/REST`.
pub fn object_link(id: &ObjectId) -> String {
    format!("../{}", object_rel(id))
}

/// The object a link of `images/`, `commits/` or `streams/` names, if its text has exactly
/// the form [`object_link`] makes.
pub fn parse_object_link(
    algorithm: sealroot_verity::HashAlgorithm,
    text: &str,
) -> Option<ObjectId> {
    let rel = text
        .strip_prefix("../")?
        .strip_prefix(OBJECTS)?
        .strip_prefix('/')?;
    ObjectId::from_object_path(algorithm, rel).ok()
}

/// `images/HEX`.
pub fn image_rel(id: &ImageId) -> String {
    format!("{IMAGES}/{}", id.to_hex())
}

/// The name of a lock file in [`LOCKS`] for `what` (a ref or a commit): a fixed-length
/// digest of it, so that any ref name makes a valid file name.
pub fn lock_name(kind: &str, what: &str) -> String {
    let digest = sealroot_verity::sha256_digest(format!("{kind}\0{what}").as_bytes());
    format!("{kind}.{}", digest.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_links_have_one_form() {
        let name = RefName::new("os/stable").unwrap();
        assert_eq!(ref_link(RefKind::Image, &name, "ab"), "../../ab");
        assert_eq!(
            parse_ref_link(RefKind::Image, &name, "../../ab"),
            Some("ab")
        );
        assert_eq!(ref_link(RefKind::Stream, &name, "s"), "../../../s");
        assert_eq!(
            parse_ref_link(RefKind::Stream, &name, "../../../s"),
            Some("s")
        );
        for bad in [
            "../ab",
            "../../../ab",
            "/etc/passwd",
            "../../x/ab",
            "../../",
            "ab",
        ] {
            assert_eq!(parse_ref_link(RefKind::Commit, &name, bad), None, "{bad}");
        }
    }

    #[test]
    fn lock_names_are_file_names() {
        let a = lock_name("ref", "a/b");
        assert!(!a.contains('/'));
        assert_ne!(a, lock_name("ref", "a_b"));
        assert_ne!(a, lock_name("commit", "a/b"));
    }
}
