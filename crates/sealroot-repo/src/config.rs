//! `meta.json`: the repository's configuration, in the format composefs-rs (`cfsctl`) reads,
//! with sealroot's own settings in a `sealroot` section that `cfsctl` ignores.
//!
//! ```json
//! {
//!   "version": 1,
//!   "algorithm": "fsverity-sha256-12",
//!   "features": { "compatible": [], "read-only-compatible": ["v1_erofs"], "incompatible": [] },
//!   "erofs_formats": { "default": 1 },
//!   "sealroot": { "format": 1, "require-verity": false, "fs-verity-at-init": false }
//! }
//! ```
//!
//! `version`, `algorithm`, `features` and `erofs_formats` mean what they mean to composefs-rs
//! 0.9: the base layout version (tools refuse a newer one), the digest algorithm with log2 of
//! the Merkle block size, ext4-style feature lists (unknown `incompatible` features: refuse;
//! unknown `read-only-compatible` ones: read but never write), and the EROFS format `cfsctl`
//! writes into this repository. `sealroot.format` is sealroot's own version of the layout
//! (refused when newer); `require-verity` says every object must have fs-verity;
//! `fs-verity-at-init` records whether the filesystem supported fs-verity when the repository
//! was made. A repository without a `sealroot` section was made by `cfsctl`; it requires
//! fs-verity exactly when `meta.json` itself has fs-verity enabled, as `cfsctl` decides.

use std::path::Path;

use sealroot_verity::HashAlgorithm;
use serde_json::{Map, Value};

use crate::error::OpenError;
use crate::id::LOG_BLOCK_SIZE;

pub use crate::layout::META_FILE;
/// The largest `meta.json` read: a configuration is a few hundred bytes.
pub(crate) const META_MAX: u64 = 64 << 10;
/// The composefs-rs repository layout version this code reads and writes.
pub const COMPOSEFS_REPO_VERSION: u64 = 1;
/// sealroot's own layout version, `sealroot.format`.
pub const SEALROOT_FORMAT: u64 = 1;
/// The `read-only-compatible` features this code understands. `v1_erofs` only says which
/// EROFS format `cfsctl` writes here; reading and writing images does not depend on it.
const KNOWN_READ_ONLY_COMPATIBLE: &[&str] = &["v1_erofs"];
/// The `incompatible` features this code understands: none.
const KNOWN_INCOMPATIBLE: &[&str] = &[];

/// A repository's configuration, as read from `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The digest algorithm naming every object (always with 4 KiB Merkle blocks).
    pub algorithm: HashAlgorithm,
    /// Whether every object and image must have fs-verity enabled.
    pub require_verity: bool,
    /// `sealroot.format`, or `None` for a repository made by `cfsctl`.
    pub sealroot_format: Option<u64>,
    /// Whether the filesystem supported fs-verity when the repository was made (`None`:
    /// not recorded, a `cfsctl` repository).
    pub verity_at_init: Option<bool>,
    /// `read-only-compatible` features this code does not know: it may read, never write.
    pub unknown_read_only_features: Vec<String>,
}

impl Config {
    /// A new repository's configuration.
    pub(crate) fn new(
        algorithm: HashAlgorithm,
        require_verity: bool,
        verity_at_init: bool,
    ) -> Self {
        Config {
            algorithm,
            require_verity,
            sealroot_format: Some(SEALROOT_FORMAT),
            verity_at_init: Some(verity_at_init),
            unknown_read_only_features: Vec::new(),
        }
    }

    /// The composefs-rs algorithm identifier, `fsverity-sha256-12`.
    pub fn algorithm_id(&self) -> String {
        format!("fsverity-{}-{LOG_BLOCK_SIZE}", self.algorithm)
    }

    /// The `meta.json` text for this configuration: what `cfsctl init` writes, plus the
    /// `sealroot` section.
    pub(crate) fn to_json(&self) -> String {
        format!(
            r#"{{
  "version": {COMPOSEFS_REPO_VERSION},
  "algorithm": "{}",
  "features": {{
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  }},
  "erofs_formats": {{
    "default": 1
  }},
  "sealroot": {{
    "format": {},
    "require-verity": {},
    "fs-verity-at-init": {}
  }}
}}
"#,
            self.algorithm_id(),
            self.sealroot_format.unwrap_or(SEALROOT_FORMAT),
            self.require_verity,
            self.verity_at_init.unwrap_or(false),
        )
    }

    /// Reads `meta.json` text. `path` is only for messages; `file_has_verity` says whether the
    /// file itself has fs-verity enabled (how `cfsctl` marks a repository requiring it).
    /// Public so that the text can be checked (and fuzzed) without a repository;
    /// [`Repository::open`](crate::Repository::open) reads the file and calls this.
    pub fn parse(text: &[u8], path: &Path, file_has_verity: bool) -> Result<Self, OpenError> {
        let meta = Meta { path, prefix: "" };
        let value: Value =
            serde_json::from_slice(text).map_err(|e| meta.bad(format!("not JSON: {e}")))?;
        let top = meta.object(&value, "not a JSON object")?;
        meta.version(top, "version", "repository version", COMPOSEFS_REPO_VERSION)?;
        let unknown_read_only_features = match top.get("features") {
            Some(features) => meta.features(features)?,
            None => Vec::new(),
        };
        let mut config = Config {
            algorithm: meta.algorithm(top)?,
            require_verity: file_has_verity,
            sealroot_format: None,
            verity_at_init: None,
            unknown_read_only_features,
        };
        if let Some(section) = top.get("sealroot") {
            meta.sealroot_section(section, &mut config)?;
        }
        Ok(config)
    }
}

/// Reading the parts of `meta.json`, whose path the errors name.
struct Meta<'a> {
    path: &'a Path,
    /// How messages name the keys of the object being read: `sealroot.` in that section.
    prefix: &'static str,
}

impl Meta<'_> {
    fn bad(&self, reason: impl Into<String>) -> OpenError {
        OpenError::BadConfig {
            path: self.path.to_owned(),
            reason: reason.into(),
        }
    }

    /// `value` as a JSON object, else an error saying `not_one`.
    fn object<'v>(
        &self,
        value: &'v Value,
        not_one: &str,
    ) -> Result<&'v Map<String, Value>, OpenError> {
        value.as_object().ok_or_else(|| self.bad(not_one))
    }

    /// The version number `object[key]` (`what` in the error when it is newer), no newer than
    /// `supported`.
    fn version(
        &self,
        object: &Map<String, Value>,
        key: &str,
        what: &'static str,
        supported: u64,
    ) -> Result<u64, OpenError> {
        let found = object
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.bad(format!("no unsigned integer \"{}{key}\"", self.prefix)))?;
        if found > supported {
            return Err(OpenError::NewerFormat {
                path: self.path.to_owned(),
                what,
                found,
                supported,
            });
        }
        Ok(found)
    }

    /// Checks the `features` section: no `incompatible` feature this code does not know.
    /// Returns the `read-only-compatible` features it does not know.
    fn features(&self, features: &Value) -> Result<Vec<String>, OpenError> {
        let features = self.object(features, "\"features\" is not an object")?;
        let list = |key: &str| -> Result<Vec<String>, OpenError> {
            match features.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            self.bad(format!("feature list {key:?} holds a non-string"))
                        })
                    })
                    .collect(),
                Some(_) => Err(self.bad(format!("feature list {key:?} is not an array"))),
            }
        };
        let incompatible: Vec<String> = list("incompatible")?
            .into_iter()
            .filter(|f| !KNOWN_INCOMPATIBLE.contains(&f.as_str()))
            .collect();
        if !incompatible.is_empty() {
            return Err(OpenError::IncompatibleFeatures {
                path: self.path.to_owned(),
                features: incompatible,
            });
        }
        Ok(list("read-only-compatible")?
            .into_iter()
            .filter(|f| !KNOWN_READ_ONLY_COMPATIBLE.contains(&f.as_str()))
            .collect())
    }

    /// The digest algorithm of `"algorithm": "fsverity-HASH-LOG"`, with 4 KiB blocks.
    fn algorithm(&self, top: &Map<String, Value>) -> Result<HashAlgorithm, OpenError> {
        let algorithm_text = top
            .get("algorithm")
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad("no string \"algorithm\""))?;
        let unsupported = || OpenError::UnsupportedAlgorithm {
            path: self.path.to_owned(),
            algorithm: algorithm_text.to_owned(),
        };
        match algorithm_text
            .strip_prefix("fsverity-")
            .and_then(|rest| rest.split_once('-'))
        {
            Some((hash, log)) if log == LOG_BLOCK_SIZE.to_string() => {
                hash.parse::<HashAlgorithm>().map_err(|_| unsupported())
            }
            _ => Err(unsupported()),
        }
    }

    /// Reads sealroot's own section into `config`.
    fn sealroot_section(&self, section: &Value, config: &mut Config) -> Result<(), OpenError> {
        let section = self.object(section, "\"sealroot\" is not an object")?;
        let meta = Meta {
            path: self.path,
            prefix: "sealroot.",
        };
        let format = meta.version(section, "format", "sealroot format", SEALROOT_FORMAT)?;
        let flag = |key: &str| -> Result<bool, OpenError> {
            match section.get(key) {
                None => Ok(false),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| meta.bad(format!("\"{}{key}\" is not a boolean", meta.prefix))),
            }
        };
        config.sealroot_format = Some(format);
        config.require_verity |= flag("require-verity")?;
        config.verity_at_init = Some(flag("fs-verity-at-init")?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, OpenError> {
        Config::parse(text.as_bytes(), Path::new("meta.json"), false)
    }

    #[test]
    fn round_trip() {
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            for (req, at_init) in [(false, false), (true, true), (false, true)] {
                let c = Config::new(alg, req, at_init);
                assert_eq!(parse(&c.to_json()).unwrap(), c);
            }
        }
    }

    #[test]
    fn cfsctl_meta_json() {
        // What `cfsctl init --insecure --algorithm fsverity-sha512-12` writes.
        let text = r#"{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}"#;
        let c = parse(text).unwrap();
        assert_eq!(c.algorithm, HashAlgorithm::Sha512);
        assert!(!c.require_verity);
        assert_eq!(c.sealroot_format, None);
        let c = Config::parse(text.as_bytes(), Path::new("m"), true).unwrap();
        assert!(c.require_verity);
    }

    #[test]
    fn refusals() {
        let base = Config::new(HashAlgorithm::Sha256, false, false).to_json();
        let newer = base.replace("\"version\": 1", "\"version\": 2");
        assert!(matches!(
            parse(&newer),
            Err(OpenError::NewerFormat { found: 2, .. })
        ));
        let newer = base.replace("\"format\": 1", "\"format\": 7");
        assert!(matches!(
            parse(&newer),
            Err(OpenError::NewerFormat {
                what: "sealroot format",
                found: 7,
                ..
            })
        ));
        let incompat = base.replace("\"incompatible\": []", "\"incompatible\": [\"zstd\"]");
        assert!(matches!(
            parse(&incompat),
            Err(OpenError::IncompatibleFeatures { features, .. }) if features == ["zstd"]
        ));
        let ro = base.replace("\"v1_erofs\"", "\"v1_erofs\", \"shiny\"");
        assert_eq!(parse(&ro).unwrap().unknown_read_only_features, ["shiny"]);
        for alg in ["fsverity-sha256-16", "sha256", "fsverity-md5-12"] {
            let t = base.replace("fsverity-sha256-12", alg);
            assert!(
                matches!(parse(&t), Err(OpenError::UnsupportedAlgorithm { .. })),
                "{alg}"
            );
        }
        for broken in ["", "[]", "{}", "{\"version\": \"1\"}"] {
            assert!(
                matches!(parse(broken), Err(OpenError::BadConfig { .. })),
                "{broken}"
            );
        }
    }
}
