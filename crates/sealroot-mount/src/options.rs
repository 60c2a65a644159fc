//! What a composefs mount is made of, and the `mount.composefs -o` option string that names it.

use std::path::PathBuf;

use sealroot_verity::{AnyDigest, DigestParseError};

/// How overlayfs is told to treat the fs-verity digests that the image records for its files.
///
/// These are the `verity` and `tryverity` options of `mount.composefs`. Both ask overlayfs for
/// `verity=require`: every metacopy file must carry a digest, and each backing object must have
/// fs-verity enabled with that digest, or opening the file fails with `EIO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VerityMode {
    /// No `verity=` option: overlayfs does not look at digests (its default, `verity=off`).
    #[default]
    Off,
    /// `tryverity`: ask for `verity=require`, but mount without it when the kernel does not
    /// know the option (before Linux 6.6). A kernel that knows the option enforces it fully.
    Try,
    /// `verity`: `verity=require`, and the mount fails if the kernel refuses it.
    Require,
}

/// Everything [`crate::mount_image`] needs besides the image and the mount point.
///
/// Build it with struct-update syntax over [`Default`]:
///
/// ```
/// # use sealroot_mount::{MountOptions, VerityMode};
/// let opts = MountOptions {
///     basedirs: vec!["/sysroot/composefs/objects".into()],
///     verity: VerityMode::Require,
///     ..Default::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// The object stores, in lookup order. Each becomes an overlayfs data-only layer: the
    /// metacopy files of the image name their content with a `trusted.overlay.redirect` path
    /// that is looked up in these directories. At least one is required.
    pub basedirs: Vec<PathBuf>,
    /// The fs-verity (4 KiB blocks, no salt) digest the image file must have: sha256 as C
    /// composefs knows it, or sha512 (an image of a sha512 repository), the image hashed with
    /// that algorithm. It is checked before anything is mounted, and the mount is made from the
    /// very bytes that were checked (see the crate documentation).
    pub expected_digest: Option<AnyDigest>,
    /// What overlayfs does with the per-file digests.
    pub verity: VerityMode,
    /// A writable overlayfs upper layer; needs [`MountOptions::workdir`] on the same filesystem.
    pub upperdir: Option<PathBuf>,
    /// The overlayfs work directory that goes with [`MountOptions::upperdir`].
    pub workdir: Option<PathBuf>,
    /// Mount read-only (`MOUNT_ATTR_RDONLY`). Without an upper layer the mount cannot be
    /// written anyway; this also makes the mount itself say `ro`.
    pub readonly: bool,
    /// A user namespace file (such as `/proc/PID/ns/user`) whose ID mapping the mount shows
    /// file owners through: the erofs mount of the image is made id-mapped with it
    /// (`MOUNT_ATTR_IDMAP`), as `mount.composefs -o idmap=` does, so an owner `u` in the image
    /// appears as what `u` inside that namespace is outside it, and an owner the mapping does
    /// not cover as the overflow id (65534). Such a file is open to others' permissions only:
    /// not even root overrides the permissions of a file whose owner is unmapped. The object
    /// stores and an upper layer are not id-mapped: contents and copied-up files are as they
    /// are. The namespace must be a user namespace other than the initial one (the kernel
    /// refuses that one); it is opened and checked before anything is mounted
    /// ([`crate::MountError::NotUserNamespace`], [`crate::MountError::InitialUserNamespace`]).
    pub idmap: Option<PathBuf>,
}

/// Flags from an option string that are not part of [`MountOptions`] but that a front end may
/// want to act on or explain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtraFlags {
    /// `digest=` was given without `verity`, `tryverity` or `noverity`, so, as in
    /// `mount.composefs`, it turned on [`VerityMode::Require`]. On a kernel or filesystem
    /// without fs-verity every metacopy file then reads as `EIO`; a front end can say so and
    /// point at `noverity`.
    pub verity_implied_by_digest: bool,
}

/// Why a `mount.composefs -o` option string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// An option `mount.composefs` does not know (it fails the same way: "Unsupported option").
    /// An empty option, as in `ro,,rw` or after a trailing comma, is reported here with an empty
    /// name.
    #[error("unsupported option {0:?}")]
    Unsupported(String),
    /// An option that needs `=VALUE` was given without one.
    #[error("no value specified for {0} option")]
    MissingValue(&'static str),
    /// A flag option was given a value (`ro=1`). `mount.composefs` ignores such values; we
    /// refuse them rather than guess what was meant.
    #[error("option {0} takes no value")]
    UnexpectedValue(&'static str),
    /// `basedir=` with an empty component (`a::b`, a leading or trailing `:`).
    #[error("value for basedir option has incorrect format: {0:?}")]
    BadBasedir(String),
    /// `digest=` that is not 64 hex digits.
    #[error("bad digest {value:?}: {source}")]
    BadDigest {
        /// The text given.
        value: String,
        /// What is wrong with it.
        source: DigestParseError,
    },
    /// `noverity` together with `verity` or `tryverity`.
    #[error("noverity conflicts with {0}")]
    VerityConflict(&'static str),
    /// Only one of `upperdir` and `workdir`.
    #[error("both workdir and upperdir must be specified if used")]
    UpperWithoutWork,
    /// No `basedir=` at all.
    #[error("no object dirs specified (basedir=DIR[:DIR...])")]
    NoBasedir,
}

/// Splits one option off the front of `s` as `mount.composefs` does: the option ends at the
/// first `,` not escaped by a backslash; the key ends at the first unescaped `=`. Backslash
/// escapes are removed from the value only (the key is compared as written). Returns the key,
/// the value if there was an `=`, and the rest after the comma, if there was a comma.
fn split_option(s: &str) -> (&str, Option<String>, Option<&str>) {
    let bytes = s.as_bytes();
    let mut equal = None;
    let mut end = bytes.len();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if equal.is_none() => equal = Some(i),
            b'\\' if i + 1 < bytes.len() => i += 1,
            b',' => {
                end = i;
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let item = &s[..end];
    let rest = (end < s.len()).then(|| &s[end + 1..]);
    match equal {
        Some(eq) => {
            let mut value = String::with_capacity(item.len() - eq);
            let mut chars = item[eq + 1..].chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
            (&item[..eq], Some(value), rest)
        }
        None => (item, None, rest),
    }
}

/// Parses a `mount.composefs -o` option string, such as
/// `basedir=/composefs/objects,digest=HEX,ro`.
///
/// The options and their meaning are those of `mount.composefs(8)`:
///
/// | option | effect |
/// |---|---|
/// | `basedir=DIR[:DIR...]` | [`MountOptions::basedirs`]; a later `basedir` replaces an earlier one |
/// | `digest=HEX` | [`MountOptions::expected_digest`]: 64 hex digits (sha256), or 128 (sha512, sealroot only); also implies `verity`, as in C |
/// | `verity` | [`VerityMode::Require`] |
/// | `tryverity` | [`VerityMode::Try`] (`verity` and `digest` win over it, as in C) |
/// | `noverity` | sealroot only: [`VerityMode::Off`] even with `digest=` (check the image, not the objects) |
/// | `upperdir=DIR`, `workdir=DIR` | a writable upper layer; both or neither |
/// | `ro`, `rw` | [`MountOptions::readonly`]; the last one wins |
/// | `idmap=PATH` | [`MountOptions::idmap`]: a user namespace such as `/proc/PID/ns/user`; a later one wins |
///
/// Options are separated by commas; a backslash escapes the next character (so a path may hold
/// `\,`). Any other option is refused, as `mount.composefs` refuses it, and so is an empty one
/// between commas; an empty string as a whole is no options (so it fails for want of a
/// `basedir`, as a missing `-o` does in C).
/// Unlike C, a digest that is not 64 (or 128) hex digits is refused here rather than at mount time, and a
/// value given to a flag option (`ro=1`) is refused rather than ignored.
pub fn parse_mount_options(s: &str) -> Result<(MountOptions, ExtraFlags), OptionsError> {
    let mut opts = MountOptions::default();
    let mut verity = false;
    let mut tryverity = false;
    let mut noverity = false;
    let mut rest = (!s.is_empty()).then_some(s);

    fn required(key: &'static str, value: Option<String>) -> Result<String, OptionsError> {
        value.ok_or(OptionsError::MissingValue(key))
    }
    fn flag(key: &'static str, value: Option<String>) -> Result<(), OptionsError> {
        match value {
            None => Ok(()),
            Some(_) => Err(OptionsError::UnexpectedValue(key)),
        }
    }

    while let Some(current) = rest {
        let (key, value, next) = split_option(current);
        rest = next;
        match key {
            "basedir" => {
                let value = required("basedir", value)?;
                let dirs: Vec<PathBuf> = value.split(':').map(PathBuf::from).collect();
                if dirs.iter().any(|d| d.as_os_str().is_empty()) {
                    return Err(OptionsError::BadBasedir(value));
                }
                opts.basedirs = dirs;
            }
            "digest" => {
                let value = required("digest", value)?;
                let digest = AnyDigest::from_hex_any(&value)
                    .map_err(|source| OptionsError::BadDigest { value, source })?;
                opts.expected_digest = Some(digest);
            }
            "verity" => {
                flag("verity", value)?;
                verity = true;
            }
            "tryverity" => {
                flag("tryverity", value)?;
                tryverity = true;
            }
            "noverity" => {
                flag("noverity", value)?;
                noverity = true;
            }
            "upperdir" => opts.upperdir = Some(required("upperdir", value)?.into()),
            "workdir" => opts.workdir = Some(required("workdir", value)?.into()),
            "idmap" => opts.idmap = Some(required("idmap", value)?.into()),
            "ro" => {
                flag("ro", value)?;
                opts.readonly = true;
            }
            "rw" => {
                flag("rw", value)?;
                opts.readonly = false;
            }
            other => return Err(OptionsError::Unsupported(other.to_owned())),
        }
    }

    if opts.basedirs.is_empty() {
        return Err(OptionsError::NoBasedir);
    }
    if opts.upperdir.is_some() != opts.workdir.is_some() {
        return Err(OptionsError::UpperWithoutWork);
    }
    let mut extra = ExtraFlags::default();
    opts.verity = if noverity {
        if verity {
            return Err(OptionsError::VerityConflict("verity"));
        }
        if tryverity {
            return Err(OptionsError::VerityConflict("tryverity"));
        }
        VerityMode::Off
    } else if verity {
        VerityMode::Require
    } else if opts.expected_digest.is_some() {
        extra.verity_implied_by_digest = true;
        VerityMode::Require
    } else if tryverity {
        VerityMode::Try
    } else {
        VerityMode::Off
    };
    Ok((opts, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "d344782ff962ab7d1c5533755c19c5bf3c3485f55bfaf228fc89524c7e2ba61e";

    fn digest() -> Option<AnyDigest> {
        Some(AnyDigest::from_hex_any(D).unwrap())
    }

    fn dirs(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn split_option_follows_c() {
        // (input, key, value, rest)
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            ("ro", "ro", None, None),
            ("ro,rw", "ro", None, Some("rw")),
            ("ro,", "ro", None, Some("")),
            ("", "", None, None),
            ("a=b=c,d", "a", Some("b=c"), Some("d")),
            (r"basedir=/x\,y,ro", "basedir", Some("/x,y"), Some("ro")),
            (r"basedir=/x\\y", "basedir", Some(r"/x\y"), None),
            (r"k\=x=v", r"k\=x", Some("v"), None),
            ("k=", "k", Some(""), None),
            (r"k=v\", "k", Some("v"), None),
        ];
        for &(input, key, value, rest) in cases {
            let (k, v, r) = split_option(input);
            assert_eq!((k, v.as_deref(), r), (key, value, rest), "input {input:?}");
        }
    }

    #[test]
    fn accepted_option_strings() {
        let base = MountOptions {
            basedirs: dirs(&["/objects"]),
            ..Default::default()
        };
        let with = |change: fn(&mut MountOptions)| {
            let mut opts = base.clone();
            change(&mut opts);
            opts
        };
        let checked = with(|o| {
            o.expected_digest = digest();
            o.verity = VerityMode::Require;
        });
        let plain = ExtraFlags::default();
        let implied = ExtraFlags {
            verity_implied_by_digest: true,
        };
        let cases: Vec<(String, MountOptions, ExtraFlags)> = vec![
            ("basedir=/objects".into(), base.clone(), plain),
            (
                "basedir=/a:/b:/c".into(),
                with(|o| o.basedirs = dirs(&["/a", "/b", "/c"])),
                plain,
            ),
            ("basedir=/old,basedir=/objects".into(), base.clone(), plain),
            (
                r"basedir=/with\,comma".into(),
                with(|o| o.basedirs = dirs(&["/with,comma"])),
                plain,
            ),
            (
                "basedir=/objects,verity".into(),
                with(|o| o.verity = VerityMode::Require),
                plain,
            ),
            (
                "tryverity,basedir=/objects".into(),
                with(|o| o.verity = VerityMode::Try),
                plain,
            ),
            // C: verity wins over tryverity whatever the order.
            (
                "verity,tryverity,basedir=/objects".into(),
                with(|o| o.verity = VerityMode::Require),
                plain,
            ),
            (
                format!("basedir=/objects,digest={D}"),
                checked.clone(),
                implied,
            ),
            (
                format!("basedir=/objects,digest={},tryverity", D.to_uppercase()),
                checked.clone(),
                implied,
            ),
            (
                format!("basedir=/objects,digest={D},verity"),
                checked.clone(),
                plain,
            ),
            (
                format!("basedir=/objects,digest={D},noverity"),
                with(|o| o.expected_digest = digest()),
                plain,
            ),
            (
                "basedir=/objects,ro".into(),
                with(|o| o.readonly = true),
                plain,
            ),
            ("ro,basedir=/objects,rw".into(), base.clone(), plain),
            (
                r"idmap=/proc/42/ns/user,basedir=/objects,idmap=/run/ns\,user".into(),
                with(|o| o.idmap = Some("/run/ns,user".into())),
                plain,
            ),
            (
                "basedir=/objects,upperdir=/u,workdir=/w".into(),
                with(|o| {
                    o.upperdir = Some("/u".into());
                    o.workdir = Some("/w".into());
                }),
                plain,
            ),
        ];
        for (input, opts, extra) in cases {
            assert_eq!(
                parse_mount_options(&input),
                Ok((opts, extra)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn refused_option_strings() {
        use OptionsError::*;
        let mut cases: Vec<(String, OptionsError)> = vec![
            ("".into(), NoBasedir),
            ("ro".into(), NoBasedir),
            ("basedir=/o,".into(), Unsupported(String::new())),
            ("basedir=/o,,ro".into(), Unsupported(String::new())),
            ("basedir=/o,nosuid".into(), Unsupported("nosuid".into())),
            ("basedir=/o,Verity".into(), Unsupported("Verity".into())),
            (
                "basedir=/o,lowerdir=/x".into(),
                Unsupported("lowerdir".into()),
            ),
            ("basedir".into(), MissingValue("basedir")),
            ("basedir=".into(), BadBasedir(String::new())),
            ("basedir=/a::/b".into(), BadBasedir("/a::/b".into())),
            ("basedir=:/a".into(), BadBasedir(":/a".into())),
            ("basedir=/a:".into(), BadBasedir("/a:".into())),
            (
                "basedir=/o,verity,noverity".into(),
                VerityConflict("verity"),
            ),
            (
                "basedir=/o,noverity,tryverity".into(),
                VerityConflict("tryverity"),
            ),
            ("basedir=/o,upperdir=/u".into(), UpperWithoutWork),
            ("basedir=/o,workdir=/w".into(), UpperWithoutWork),
        ];
        for key in ["digest", "upperdir", "workdir", "idmap"] {
            cases.push((format!("basedir=/o,{key}"), MissingValue(key)));
        }
        for (key, value) in [
            ("ro", "1"),
            ("rw", "1"),
            ("verity", "require"),
            ("noverity", ""),
        ] {
            cases.push((format!("basedir=/o,{key}={value}"), UnexpectedValue(key)));
        }
        for (input, err) in cases {
            assert_eq!(parse_mount_options(&input), Err(err), "input {input:?}");
        }
    }

    #[test]
    fn bad_digests_are_refused_early() {
        // 128 digits are a sha512 digest; 96 or 130 are neither.
        for bad in ["abcd", &"g".repeat(64), &"0".repeat(96), &"0".repeat(130)] {
            let input = format!("basedir=/o,digest={bad}");
            match parse_mount_options(&input) {
                Err(OptionsError::BadDigest { value, .. }) => assert_eq!(value, bad),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
        let (opts, _) =
            parse_mount_options(&format!("basedir=/o,digest={}", "0".repeat(128))).unwrap();
        assert_eq!(
            opts.expected_digest.map(|d| d.algorithm()),
            Some(sealroot_verity::HashAlgorithm::Sha512)
        );
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            OptionsError::Unsupported("nosuid".into()).to_string(),
            "unsupported option \"nosuid\""
        );
        assert_eq!(
            OptionsError::MissingValue("idmap").to_string(),
            "no value specified for idmap option"
        );
    }
}
