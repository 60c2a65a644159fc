//! Creating a repository.

use std::path::Path;

use rustix::fs::{AtFlags, Mode};
use rustix::io::Errno;
use sealroot_sys::fsverity;
use sealroot_verity::HashAlgorithm;

use crate::config::Config;
use crate::error::{IoError, OpenError, Operation as Op};
use crate::fs::{self, REPO_DIR_MODE};
use crate::layout;
use crate::repository::{enable_params, open_top, probe_verity};
use crate::Repository;

/// How to create a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOptions {
    /// The digest algorithm naming objects and images (sha256 by default).
    pub algorithm: HashAlgorithm,
    /// Require fs-verity on every object and image: `init` fails on a filesystem without
    /// it, and `meta.json` gets fs-verity, which is how `cfsctl` learns the requirement.
    /// Without it, objects still get fs-verity wherever the filesystem supports it.
    pub require_verity: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            algorithm: HashAlgorithm::Sha256,
            require_verity: false,
        }
    }
}

impl Repository {
    /// Creates a repository at `path` (and the directory, if needed) and opens it. On an
    /// existing repository with the same algorithm and verity requirement this just opens
    /// it; with another configuration it fails with [`OpenError::AlreadyInitialized`].
    pub fn init(path: &Path, options: &InitOptions) -> Result<Repository, OpenError> {
        match rustix::fs::mkdirat(rustix::fs::CWD, path, Mode::from_raw_mode(REPO_DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(IoError::new(Op::CreateDir, path, e).into()),
        }
        let dir = open_top(path)?;

        if let Some(existing) = Self::existing_config(path, &dir, options)? {
            return Ok(existing);
        }

        let supported = probe_verity(&dir, options.algorithm);
        if options.require_verity && !supported {
            return Err(OpenError::VerityUnsupported {
                path: path.to_owned(),
            });
        }
        for sub in [layout::OBJECTS, layout::IMAGE_REFS, layout::TMP] {
            fs::ensure_dirs(&dir, sub)
                .map_err(|e| IoError::new(Op::CreateDir, path.join(sub), e))?;
        }

        let config = Config::new(options.algorithm, options.require_verity, supported);
        let meta = path.join(layout::META_FILE);
        let policy = fs::tmp_policy();
        let mut tmp = policy
            .create(&dir)
            .map_err(|e| IoError::new(Op::Create, path, e))?;
        fs::write_all(tmp.fd(), config.to_json().as_bytes())
            .map_err(|e| IoError::new(Op::Write, &meta, e))?;
        rustix::fs::fsync(tmp.fd()).map_err(|e| IoError::new(Op::Sync, &meta, e))?;
        if options.require_verity {
            tmp.reopen_read_only()
                .map_err(|e| IoError::new(Op::Open, &meta, e))?;
            fsverity::enable_verity(tmp.fd(), &enable_params(options.algorithm), None)
                .map_err(|e| IoError::new(Op::EnableVerity, &meta, e))?;
        }
        let linked = policy
            .link(&mut tmp, &dir, layout::META_FILE)
            .map_err(|e| IoError::new(Op::Link, &meta, e))?;
        drop(tmp);
        if !linked {
            // Another init won the race: accept it if it agrees.
            if let Some(existing) = Self::existing_config(path, &dir, options)? {
                return Ok(existing);
            }
        }
        rustix::fs::fsync(&dir).map_err(|e| IoError::new(Op::Sync, path, e))?;
        Self::open(path)
    }

    /// The repository at `path` if it already is one with `options`' configuration; an
    /// error if it is one with another configuration.
    fn existing_config(
        path: &Path,
        dir: &std::os::fd::OwnedFd,
        options: &InitOptions,
    ) -> Result<Option<Repository>, OpenError> {
        match rustix::fs::statat(dir, layout::META_FILE, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(IoError::new(Op::Stat, path.join(layout::META_FILE), e).into()),
        }
        let repo = Self::open(path)?;
        let c = repo.config();
        if c.algorithm == options.algorithm && c.require_verity == options.require_verity {
            Ok(Some(repo))
        } else {
            Err(OpenError::AlreadyInitialized {
                path: path.to_owned(),
                existing: format!(
                    "algorithm {}, fs-verity {}",
                    c.algorithm_id(),
                    if c.require_verity {
                        "required"
                    } else {
                        "not required"
                    }
                ),
            })
        }
    }
}
