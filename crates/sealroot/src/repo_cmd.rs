//! The repository commands: `init`, `commit`, `mount`, `refs`, `images`, `objects`, `ls`,
//! `cat`, `fsck`, `gc`. Each prints for people by default and JSON with `--json`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sealroot_format::{Content, FileType, InodeId, Tree};
use sealroot_repo::{
    FsckOptions, GcOptions, HashAlgorithm, ImageId, InitOptions, ObjectId, RefName, RefTarget,
    Repository,
};
use serde_json::json;

use crate::progress::Bar;

/// The repository `cfsctl` also uses by default.
const DEFAULT_REPO: &str = "/sysroot/composefs";

/// Where directory commits keep their digest cache, relative to the repository: a directory
/// of its own, since `gc` empties `tmp/`; `gc`, `fsck` and `cfsctl` look only at `objects/`,
/// `images/`, `streams/` and `tmp/`, so they leave it alone.
const DIGEST_CACHE: &str = "cache/devino";

#[derive(Parser)]
#[command(
    name = "sealroot",
    version,
    about = "Composefs images in a verified object store"
)]
struct Cli {
    /// The repository (default: $SEALROOT_REPO, else /sysroot/composefs).
    #[arg(long, global = true, env = "SEALROOT_REPO", default_value = DEFAULT_REPO)]
    repo: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, ValueEnum)]
enum Verity {
    /// Every file must carry a digest and its object must have fs-verity with it.
    Require,
    /// Require it where the kernel knows the option.
    On,
    /// Do not check per-file digests.
    Off,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a repository.
    Init {
        /// The digest algorithm naming objects.
        #[arg(long, value_enum, default_value = "sha256")]
        algorithm: Algorithm,
        /// Refuse to work on a filesystem without fs-verity.
        #[arg(long)]
        require_verity: bool,
    },
    /// Store a directory or a tar archive (plain, gzip, zstd; `-` for stdin) as an image and
    /// point a ref at it.
    Commit {
        /// The ref to set.
        #[arg(long = "ref")]
        refname: String,
        /// A directory, a tar archive, or `-`.
        source: PathBuf,
        /// Keep hard links shared (one inode) instead of one inode per name.
        #[arg(long)]
        hardlinks: bool,
        /// Set every mtime to 0.
        #[arg(long)]
        use_epoch: bool,
        /// Leave out device nodes.
        #[arg(long)]
        skip_devices: bool,
        /// Record no xattrs.
        #[arg(long)]
        skip_xattrs: bool,
        /// Record only user.* xattrs.
        #[arg(long)]
        user_xattrs: bool,
        /// Threads hashing and storing files (default: by CPU count).
        #[arg(long)]
        threads: Option<usize>,
        /// Read every file of a directory, trusting no digest from the cache of earlier
        /// commits (REPO/cache/devino); the cache is then made afresh from what was read.
        #[arg(long)]
        no_cache: bool,
        /// One line saying what this commit is.
        #[arg(long, short = 's', default_value = "")]
        subject: String,
        /// More text.
        #[arg(long, short = 'b', default_value = "")]
        body: String,
        /// A version string, such as 42.1.
        #[arg(long)]
        version: Option<String>,
        /// Free-form metadata (repeatable).
        #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// The parent commit (default: the commit the ref names now).
        #[arg(long, conflicts_with = "orphan")]
        parent: Option<String>,
        /// No parent, even if the ref names a commit.
        #[arg(long)]
        orphan: bool,
        /// Seconds since the epoch (default: $SOURCE_DATE_EPOCH, else now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// The history of a commit ref, newest first.
    Log {
        /// A commit ref or commit id.
        commit: String,
        /// At most this many commits.
        #[arg(long, short = 'n', default_value_t = usize::MAX)]
        max: usize,
    },
    /// What a commit says.
    Show {
        /// A commit ref or commit id.
        commit: String,
    },
    /// The paths that differ between two commits (A added, D removed, M modified).
    Diff {
        /// The older commit.
        a: String,
        /// The newer commit.
        b: String,
    },
    /// ed25519 keys for signing commits (ostree's base64 formats).
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Sign a commit with each ed25519 secret key of a file; with --fsverity-key and
    /// --fsverity-cert, also sign its image's fs-verity digest for the kernel (PKCS#7).
    Sign {
        /// The secret key file (base64, one key per line, as `ostree sign --keys-file`).
        #[arg(long, required_unless_present = "fsverity_key")]
        key: Option<PathBuf>,
        /// An RSA private key (PEM) for a kernel built-in signature of the image.
        #[arg(long, requires = "fsverity_cert")]
        fsverity_key: Option<PathBuf>,
        /// The X.509 certificate (PEM or DER) of --fsverity-key.
        #[arg(long, requires = "fsverity_key")]
        fsverity_cert: Option<PathBuf>,
        /// A commit ref or commit id.
        commit: String,
    },
    /// Check a commit's signatures, then re-create its image from the tree objects.
    Verify {
        /// Trusted public keys: a file (base64, one per line) or a directory of such files.
        #[arg(long)]
        keys: PathBuf,
        /// Revoked public keys: a file or directory.
        #[arg(long)]
        revoked: Option<PathBuf>,
        /// Check the signatures only; do not re-create the image.
        #[arg(long)]
        no_derive: bool,
        /// Also check the kernel built-in signature of the image against this certificate.
        #[arg(long)]
        fsverity_cert: Option<PathBuf>,
        /// A commit ref or commit id.
        commit: String,
    },
    /// Re-create a commit's image from its tree objects alone, check it is the one the commit
    /// records, and store it (or write it to a file).
    Derive {
        /// A commit ref or commit id.
        commit: String,
        /// Write the image here instead of storing it in the repository.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Enable fs-verity on the stored image with the commit's kernel built-in signature
        /// (`sign --fsverity-key`); the kernel checks it against its `.fs-verity` keyring.
        #[arg(long, conflicts_with = "output")]
        kernel_signature: bool,
    },
    /// fs-verity built-in signatures (as fsverity-utils).
    Fsverity {
        #[command(subcommand)]
        cmd: FsverityCmd,
    },
    /// Mount the image a ref names.
    Mount {
        /// The ref, or an image id.
        refname: String,
        /// Where to mount it.
        mountpoint: PathBuf,
        /// A writable upper layer (needs --workdir).
        #[arg(long)]
        upperdir: Option<PathBuf>,
        /// The overlayfs work directory for --upperdir.
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Per-file fs-verity checking (default: require where the repository has fs-verity).
        #[arg(long, value_enum)]
        verity: Option<Verity>,
        /// Mount only a commit signed by one of these keys (file or directory), whose image
        /// is the signed one.
        #[arg(long, value_name = "KEYS")]
        require_signature: Option<PathBuf>,
        /// Revoked keys, with --require-signature.
        #[arg(long, requires = "require_signature")]
        revoked: Option<PathBuf>,
    },
    /// Show the repository's configuration and what it holds.
    Status,
    /// List the refs.
    Refs,
    /// List the images.
    Images,
    /// List the objects.
    Objects,
    /// List a directory of an image without mounting it.
    Ls {
        /// The ref, or an image id.
        refname: String,
        /// The directory (default: the root).
        path: Option<String>,
    },
    /// Print a file of an image without mounting it (checked against its digest).
    Cat {
        /// The ref, or an image id.
        refname: String,
        /// The file.
        path: String,
    },
    /// Check every object, image and ref.
    Fsck {
        /// Remove corrupt objects and say which refs need a new commit.
        #[arg(long)]
        repair: bool,
    },
    /// Remove objects and images no ref reaches.
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make a new key pair: SECRET (mode 0600) and SECRET.pub.
    Generate {
        /// Where to write the secret key.
        secret: PathBuf,
    },
    /// Print the public keys of a secret key file.
    Public {
        /// The secret key file.
        secret: PathBuf,
    },
}

#[derive(Subcommand)]
enum FsverityCmd {
    /// Sign a file's fs-verity digest as PKCS#7 for the kernel, byte for byte as
    /// `fsverity sign` does.
    Sign {
        /// The file.
        file: PathBuf,
        /// Where to write the DER signature.
        out: PathBuf,
        /// The RSA private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The X.509 certificate (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// sha256 or sha512.
        #[arg(long, default_value = "sha256")]
        hash_alg: String,
        /// The Merkle tree block size.
        #[arg(long, default_value_t = 4096)]
        block_size: usize,
        /// A salt, in hex.
        #[arg(long)]
        salt: Option<String>,
    },
    /// Enable fs-verity on a file (sha256, 4 KiB blocks), optionally with a built-in
    /// signature the kernel checks against its `.fs-verity` keyring.
    Enable {
        /// The file.
        file: PathBuf,
        /// A DER PKCS#7 signature from `fsverity sign` or `sealroot fsverity sign`.
        #[arg(long)]
        signature: Option<PathBuf>,
    },
}

/// Whether `name` is one of these commands (so `sealroot NAME` goes here).
pub fn is_command(name: &str) -> bool {
    use clap::CommandFactory as _;
    Cli::command().find_subcommand(name).is_some()
}

/// Runs a repository command; `args` includes the program name.
pub fn run(args: &[OsString]) -> Result<std::process::ExitCode> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let json = cli.json;
    match cli.cmd {
        Cmd::Init {
            algorithm,
            require_verity,
        } => {
            let options = InitOptions {
                algorithm: match algorithm {
                    Algorithm::Sha256 => HashAlgorithm::Sha256,
                    Algorithm::Sha512 => HashAlgorithm::Sha512,
                },
                require_verity,
            };
            let repo = Repository::init(&cli.repo, &options)
                .with_context(|| format!("cannot create a repository at {}", cli.repo.display()))?;
            let verity = repo.verity_supported();
            if json {
                println!(
                    "{}",
                    json!({"repo": cli.repo, "algorithm": options.algorithm.name(), "verity": verity, "require_verity": require_verity})
                );
            } else {
                println!(
                    "initialized {} ({}, fs-verity {})",
                    cli.repo.display(),
                    options.algorithm.name(),
                    if verity {
                        "supported"
                    } else {
                        "NOT supported by this filesystem: objects are checked in userspace only"
                    }
                );
            }
        }
        Cmd::Commit {
            refname,
            source,
            hardlinks,
            use_epoch,
            skip_devices,
            skip_xattrs,
            user_xattrs,
            threads,
            no_cache,
            subject,
            body,
            version,
            metadata,
            parent,
            orphan,
            timestamp,
        } => {
            let name =
                RefName::new(&refname).with_context(|| format!("bad ref name {refname:?}"))?;
            let metadata = crate::trust_cmd::parse_metadata(&metadata)?;
            let timestamp = crate::trust_cmd::timestamp(timestamp)?;
            let repo = open(&cli.repo)?;
            let parent = match (parent, orphan) {
                (_, true) => None,
                (Some(p), false) => Some(repo.resolve_commit(&p)?),
                (None, false) => match repo.resolve_commit_ref(&name) {
                    Ok(id) => Some(id),
                    Err(sealroot_repo::RefError::NotFound(_)) => None,
                    Err(e) => return Err(e).context("cannot read the ref's current commit"),
                },
            };
            let bar = Bar::new(!json);
            let tx = repo
                .transaction_with_progress(&bar)
                .context("cannot start a transaction")?;
            let is_dir = source.is_dir();
            let cache_path = repo.path().join(DIGEST_CACHE);
            let cache = match (is_dir, no_cache) {
                (false, _) => None,
                (true, true) => Some(sealroot_tree::DigestCache::new()),
                (true, false) => {
                    let (cache, ignored) = sealroot_tree::DigestCache::load(&cache_path);
                    if let Some(e) = ignored {
                        eprintln!("warning: {e}; reading every file");
                    }
                    Some(cache)
                }
            }
            .map(std::sync::Arc::new);
            let opts = sealroot_tree::BuildOptions {
                use_epoch,
                skip_devices,
                skip_xattrs,
                user_xattrs,
                hardlinks,
                threads: threads.unwrap_or(0),
                digest_store: Some(tx.objects_path()),
                // The transaction syncs the filesystem once before the ref is set.
                sync_objects: false,
                cache: cache.clone(),
                ..Default::default()
            };
            let tree = if is_dir {
                sealroot_tree::build_from_dir(&source, &opts, &bar)
                    .with_context(|| format!("cannot commit {}", source.display()))?
            } else {
                let input: Box<dyn Read> = if source == Path::new("-") {
                    Box::new(std::io::stdin().lock())
                } else {
                    Box::new(std::fs::File::open(&source).with_context(|| {
                        format!(
                            "cannot open {}: not a directory or a readable archive",
                            source.display()
                        )
                    })?)
                };
                let sink = TxSink(&tx);
                let topts = sealroot_tree::tar::TarOptions::from_build_options(&opts);
                sealroot_tree::tar::build_from_tar(
                    std::io::BufReader::with_capacity(1 << 20, input),
                    &topts,
                    &sink,
                )
                .with_context(|| format!("cannot commit {}", source.display()))?
            };
            let new = tx
                .write_commit(
                    &tree,
                    &sealroot_repo::CommitOptions {
                        parent,
                        timestamp,
                        version,
                        metadata,
                        subject,
                        body,
                        image: Default::default(),
                        // The tree was just built into this transaction's objects.
                        objects_known_present: true,
                    },
                )
                .context("cannot write the commit")?;
            let image = new.image;
            // The commit ref, and the image ref of the same name for cfsctl.
            tx.set_commit_ref(&name, &new.id)
                .context("cannot set the ref")?;
            let mut stats = tx.finish().context("cannot finish the commit")?;
            if let Some(cache) = &cache {
                // The commit stands whatever happens here: a cache only saves time.
                if let Err(e) = save_cache(cache, &cache_path) {
                    eprintln!("warning: {e:#}");
                }
            }
            bar.finish();
            // A directory commit stores files through the tree builder, which reports them.
            let (dir_files, dir_bytes) = (
                bar.stored.0.load(std::sync::atomic::Ordering::Relaxed),
                bar.stored.1.load(std::sync::atomic::Ordering::Relaxed),
            );
            stats.objects_added += dir_files;
            stats.bytes_added += dir_bytes;
            let cached = bar.cached.load(std::sync::atomic::Ordering::Relaxed);
            if is_dir {
                stats.objects_present += bar.hashed().saturating_sub(dir_files);
            }
            if json {
                println!(
                    "{}",
                    json!({"ref": name.as_str(), "commit": new.id.to_hex(), "image": image.to_hex(),
                           "parent": new.commit.parent.map(|p| p.to_hex()),
                           "tree_objects": new.tree_objects, "tree_objects_added": new.tree_objects_added,
                           "objects_added": stats.objects_added,
                           "bytes_added": stats.bytes_added, "objects_present": stats.objects_present,
                           "files_cached": cached})
                );
            } else {
                println!("{}", new.id);
                eprintln!(
                    "{name}: commit {}, image {}; {} tree objects ({} new)",
                    new.id,
                    image.to_hex(),
                    new.tree_objects,
                    new.tree_objects_added
                );
                eprintln!(
                    "{name}: {} new objects ({} MiB), {} already present ({cached} unchanged files not read)",
                    stats.objects_added,
                    stats.bytes_added >> 20,
                    stats.objects_present
                );
            }
        }
        Cmd::Mount {
            refname,
            mountpoint,
            upperdir,
            workdir,
            verity,
            require_signature,
            revoked,
        } => {
            let repo = open(&cli.repo)?;
            let image = match &require_signature {
                Some(keys) => {
                    let ring = crate::trust_cmd::keyring(keys, revoked.as_deref())?;
                    let id = repo.resolve_commit(&refname)?;
                    // The signature covers the commit, which names the image by digest; the
                    // mount checks the image against that digest before the kernel sees it.
                    let v = crate::trust_cmd::verify_commit(&repo, &id, &ring, false)
                        .with_context(|| format!("refusing to mount {refname}"))?;
                    let image = ImageId::sha256(v.commit.image);
                    if !repo.has_image(&image)? {
                        bail!(
                            "refusing to mount {refname}: its signed image {} is not in the repository",
                            image.to_hex()
                        );
                    }
                    eprintln!(
                        "commit {} verified (ed25519 key {})",
                        v.id,
                        v.keys.join(", ")
                    );
                    image
                }
                None => repo
                    .resolve_image(&refname)
                    .with_context(|| format!("cannot resolve {refname}"))?,
            };
            // Whether the objects have fs-verity is read off the image (stored like them), not
            // learnt by writing a probe: a repository mounted at boot is often read-only.
            let image_has_verity = std::fs::File::open(repo.image_path(&image))
                .and_then(sealroot_sys::fsverity::is_verity_enabled)
                .unwrap_or(false);
            let verity = match verity {
                Some(Verity::Require) => sealroot_mount::VerityMode::Require,
                Some(Verity::On) => sealroot_mount::VerityMode::Try,
                Some(Verity::Off) => sealroot_mount::VerityMode::Off,
                None if repo.config().require_verity || image_has_verity => {
                    sealroot_mount::VerityMode::Require
                }
                None => sealroot_mount::VerityMode::Off,
            };
            if require_signature.is_some() && verity != sealroot_mount::VerityMode::Require {
                eprintln!(
                    "warning: the image has no fs-verity here: file contents are checked when \
                     objects are stored and by fsck, not by the kernel on every read"
                );
            }
            let options = sealroot_mount::MountOptions {
                basedirs: vec![repo.objects_path()],
                expected_digest: image.as_sha256().copied(),
                verity,
                readonly: upperdir.is_none(),
                upperdir,
                workdir,
                idmap: None,
            };
            sealroot_mount::mount_image(&repo.image_path(&image), &mountpoint, &options)
                .with_context(|| format!("cannot mount {refname} at {}", mountpoint.display()))?;
        }
        Cmd::Log { commit, max } => {
            crate::trust_cmd::log(&open(&cli.repo)?, &commit, max, json)?;
        }
        Cmd::Show { commit } => {
            crate::trust_cmd::show(&open(&cli.repo)?, &commit, json)?;
        }
        Cmd::Diff { a, b } => {
            crate::trust_cmd::diff(&open(&cli.repo)?, &a, &b, json)?;
        }
        Cmd::Key { cmd } => match cmd {
            KeyCmd::Generate { secret } => crate::trust_cmd::key_generate(&secret, json)?,
            KeyCmd::Public { secret } => crate::trust_cmd::key_public(&secret)?,
        },
        Cmd::Sign {
            key,
            fsverity_key,
            fsverity_cert,
            commit,
        } => {
            let repo = open(&cli.repo)?;
            let id = repo.resolve_commit(&commit)?;
            if let Some(key) = &key {
                crate::trust_cmd::sign(&repo, &id, key, json)?;
            }
            if let (Some(k), Some(c)) = (&fsverity_key, &fsverity_cert) {
                crate::trust_cmd::sign_image(&repo, &id, k, c, json)?;
            }
        }
        Cmd::Verify {
            keys,
            revoked,
            no_derive,
            fsverity_cert,
            commit,
        } => {
            let ring = crate::trust_cmd::keyring(&keys, revoked.as_deref())?;
            let repo = open(&cli.repo)?;
            let id = repo.resolve_commit(&commit)?;
            let v = crate::trust_cmd::verify(&repo, &id, &ring, !no_derive, json)?;
            if let Some(cert) = &fsverity_cert {
                crate::trust_cmd::verify_image_signature(&repo, &v, cert, json)?;
            }
        }
        Cmd::Derive {
            commit,
            output,
            kernel_signature,
        } => {
            let repo = open(&cli.repo)?;
            let id = repo.resolve_commit(&commit)?;
            let digest = match output {
                Some(path) => {
                    let c = repo.read_commit(&id)?;
                    crate::mkcomposefs::write_atomically(&path, |f| {
                        let mut w = std::io::BufWriter::new(f);
                        repo.derive_image(&id, &c, Some(&mut w))?;
                        w.flush()?;
                        Ok(())
                    })?;
                    c.image.to_hex()
                }
                None => {
                    let tx = repo.transaction().context("cannot start a transaction")?;
                    let image = tx.restore_image(&id, kernel_signature)?;
                    tx.finish()?;
                    image.to_hex()
                }
            };
            if json {
                println!("{}", json!({"commit": id.to_hex(), "image": digest}));
            } else {
                println!("{digest}");
            }
        }
        Cmd::Fsverity { cmd } => match cmd {
            FsverityCmd::Sign {
                file,
                out,
                key,
                cert,
                hash_alg,
                block_size,
                salt,
            } => {
                let salt = salt
                    .as_deref()
                    .map(hex::decode)
                    .transpose()
                    .context("--salt: not hex")?
                    .unwrap_or_default();
                let params = sealroot_verity::Params::new(hash_alg.parse()?, block_size, &salt)?;
                crate::trust_cmd::fsverity_sign(&file, &out, &key, &cert, &params)?
            }
            FsverityCmd::Enable { file, signature } => {
                let sig = signature
                    .map(|p| {
                        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
                    })
                    .transpose()?;
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                sealroot_sys::fsverity::enable_verity(
                    &f,
                    &sealroot_sys::fsverity::EnableParams::composefs_default(),
                    sig.as_deref(),
                )
                .with_context(|| format!("cannot enable fs-verity on {}", file.display()))?;
            }
        },
        Cmd::Status => {
            let repo = open(&cli.repo)?;
            let config = repo.config();
            let refs = repo.refs().context("cannot list refs")?;
            let images = repo.images().context("cannot list images")?;
            let verity = repo.verity_supported();
            if json {
                println!(
                    "{}",
                    json!({"repo": repo.path(), "algorithm": config.algorithm_id(),
                           "sealroot_format": config.sealroot_format, "require_verity": config.require_verity,
                           "verity_supported": verity, "writable": repo.is_writable(),
                           "refs": refs.len(), "images": images.len()})
                );
            } else {
                println!("repository:      {}", repo.path().display());
                println!("algorithm:       {}", config.algorithm_id());
                match config.sealroot_format {
                    Some(f) => println!("format:          sealroot {f}"),
                    None => println!("format:          composefs-rs (no sealroot section)"),
                }
                println!(
                    "fs-verity:       {}{}",
                    if verity {
                        "enabled on every object"
                    } else {
                        "NOT supported by this filesystem: objects are checked in userspace only"
                    },
                    if config.require_verity {
                        " (required)"
                    } else {
                        ""
                    }
                );
                println!(
                    "writable:        {}",
                    if repo.is_writable() {
                        "yes"
                    } else {
                        "no (unknown features or permissions)"
                    }
                );
                println!("refs:            {}", refs.len());
                println!("images:          {}", images.len());
            }
        }
        Cmd::Refs => {
            let repo = open(&cli.repo)?;
            let refs = repo.refs().context("cannot list refs")?;
            if json {
                let list: Vec<_> = refs
                    .iter()
                    .map(|r| match &r.target {
                        RefTarget::Image(i) => json!({"ref": r.name.as_str(), "image": i.to_hex()}),
                        RefTarget::Dangling(i) => {
                            json!({"ref": r.name.as_str(), "image": i.to_hex(), "problem": "image missing"})
                        }
                        RefTarget::Invalid(t) => json!({"ref": r.name.as_str(), "problem": t}),
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for r in refs {
                    match r.target {
                        RefTarget::Image(i) => println!("{} {}", r.name, i.to_hex()),
                        RefTarget::Dangling(i) => {
                            println!("{} {} (image missing)", r.name, i.to_hex())
                        }
                        RefTarget::Invalid(t) => println!("{} (invalid: {t})", r.name),
                    }
                }
            }
        }
        Cmd::Images => {
            let repo = open(&cli.repo)?;
            let images = repo.images().context("cannot list images")?;
            print_ids(json, "images", images.iter().map(ImageId::to_hex));
        }
        Cmd::Objects => {
            let repo = open(&cli.repo)?;
            let mut ids = Vec::new();
            for o in repo.objects() {
                ids.push(o.context("cannot list objects")?);
            }
            print_ids(json, "objects", ids.iter().map(ObjectId::to_hex));
        }
        Cmd::Ls { refname, path } => {
            let repo = open(&cli.repo)?;
            let tree = read_tree(&repo, &refname)?;
            let path = path.unwrap_or_else(|| "/".to_owned());
            let dir = lookup(&tree, &path)?;
            print_ls(&tree, dir, &path, json)?;
        }
        Cmd::Cat { refname, path } => {
            let repo = open(&cli.repo)?;
            let tree = read_tree(&repo, &refname)?;
            let id = lookup(&tree, &path)?;
            cat(&repo, &tree, id, &path)?;
        }
        Cmd::Fsck { repair } => {
            let repo = open(&cli.repo)?;
            let bar = Bar::new(!json);
            let options = if repair {
                FsckOptions::repair()
            } else {
                FsckOptions::check()
            };
            let report = repo.fsck(&options, &bar).context("fsck failed")?;
            bar.finish();
            crate::report::print_fsck(&report, json);
            let refs_left_broken = report
                .repaired
                .as_ref()
                .is_some_and(|r| !r.refs_needing_commit.is_empty());
            if (!report.is_clean() && report.repaired.is_none()) || refs_left_broken {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Cmd::Gc { dry_run } => {
            let repo = open(&cli.repo)?;
            let bar = Bar::new(!json);
            let options = if dry_run {
                GcOptions::dry_run()
            } else {
                GcOptions::remove()
            };
            let report = repo.gc(&options, &bar).context("gc failed")?;
            bar.finish();
            crate::report::print_gc(&report, json);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Saves the digest cache of a directory commit to `path`, making its directory if needed.
fn save_cache(cache: &sealroot_tree::DigestCache, path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    cache.save(path)?;
    Ok(())
}

fn open(path: &Path) -> Result<Repository> {
    Repository::open(path).with_context(|| format!("cannot open the repository {}", path.display()))
}

fn read_tree(repo: &Repository, name: &str) -> Result<Tree> {
    let image = repo
        .resolve_image(name)
        .with_context(|| format!("cannot resolve {name}"))?;
    repo.read_image(&image)
        .with_context(|| format!("cannot read image {} of {name}", image.to_hex()))
}

fn lookup(tree: &Tree, path: &str) -> Result<InodeId> {
    tree.resolve(path.as_bytes())
        .with_context(|| format!("{path}: no such file or directory in the image"))
}

fn print_ids(json: bool, what: &str, ids: impl Iterator<Item = String>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let list: Vec<String> = ids.collect();
        let _ = writeln!(out, "{}", json!({ what: list }));
    } else {
        for id in ids {
            let _ = writeln!(out, "{id}");
        }
    }
}

fn type_char(mode: u32) -> char {
    match FileType::from_mode(mode) {
        Some(FileType::Directory) => 'd',
        Some(FileType::Symlink) => 'l',
        Some(FileType::CharDevice) => 'c',
        Some(FileType::BlockDevice) => 'b',
        Some(FileType::Fifo) => 'p',
        Some(FileType::Socket) => 's',
        _ => '-',
    }
}

fn print_ls(tree: &Tree, dir: InodeId, path: &str, json: bool) -> Result<()> {
    let inode = tree.inode(dir);
    let entries: Vec<(Vec<u8>, InodeId)> = match &inode.content {
        Content::Directory(e) => e.iter().map(|e| (e.name.clone(), e.inode)).collect(),
        _ => vec![(path.as_bytes().to_vec(), dir)],
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut list = Vec::new();
    for (name, id) in entries {
        let node = tree.inode(id);
        let s = &node.stat;
        let name_s = String::from_utf8_lossy(&name).into_owned();
        let target = match &node.content {
            Content::Symlink(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        };
        let size = match &node.content {
            Content::Regular(f) => f.inline.as_ref().map_or(s.size, |c| c.len() as u64),
            Content::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        if json {
            list.push(
                json!({"name": name_s, "mode": format!("{:o}", s.mode), "uid": s.uid, "gid": s.gid,
                             "size": size, "mtime": s.mtime.sec, "target": target}),
            );
        } else {
            let perms = s.mode & 0o7777;
            let mut line = format!(
                "{}{:04o} {:>6} {:>6} {:>12} {} ",
                type_char(s.mode),
                perms,
                s.uid,
                s.gid,
                size,
                s.mtime.sec
            );
            let mut escaped = Vec::new();
            sealroot_format::dumpfile::escape(
                &mut escaped,
                &name,
                sealroot_format::dumpfile::Escape::Listing,
            );
            line.push_str(&String::from_utf8_lossy(&escaped));
            if let Some(t) = target {
                line.push_str(" -> ");
                line.push_str(&t);
            }
            writeln!(out, "{line}")?;
        }
    }
    if json {
        writeln!(out, "{}", serde_json::Value::Array(list))?;
    }
    out.flush()?;
    Ok(())
}

/// Writes a regular file's content to stdout: inline bytes, or its object, whose fs-verity
/// digest is checked against the image's record as it streams (a mismatch is an error).
fn cat(repo: &Repository, tree: &Tree, id: InodeId, path: &str) -> Result<()> {
    let Content::Regular(file) = &tree.inode(id).content else {
        bail!("{path}: not a regular file");
    };
    let mut stdout = std::io::stdout().lock();
    if let Some(content) = &file.inline {
        stdout.write_all(content)?;
        return Ok(());
    }
    if tree.inode(id).stat.size == 0 {
        return Ok(());
    }
    let payload = file
        .payload
        .as_deref()
        .with_context(|| format!("{path}: the image names no object for it"))?;
    // The payload is the object's name: refuse anything else (an image from elsewhere could
    // name any path).
    let rel = String::from_utf8_lossy(payload);
    let object = ObjectId::from_object_path(repo.algorithm(), &rel)
        .with_context(|| format!("{path}: the image's payload {rel:?} is not an object name"))?;
    if let Some(want) = &file.digest {
        if object.digest().as_sha256() != Some(want) {
            bail!("{path}: the image's digest {want} and object name {rel} disagree");
        }
    }
    let mut f = repo
        .open_object(&object)
        .with_context(|| format!("{path}: its object {rel}"))?;
    if sealroot_sys::fsverity::is_verity_enabled(&f).unwrap_or(false) {
        // The kernel checks every read against the measured digest: check that once.
        let (alg, got) = sealroot_sys::fsverity::measure_verity(&f)
            .with_context(|| format!("{path}: measuring object {rel}"))?;
        if u16::from(object.algorithm().kernel_id()) != alg || got != object.as_bytes() {
            bail!("{path}: object {rel} is corrupt (its fs-verity digest is not its name)");
        }
        std::io::copy(&mut f, &mut stdout).with_context(|| format!("reading object {rel}"))?;
        return Ok(());
    }
    // Without fs-verity: hashed while it is copied; a mismatch is reported (and the exit
    // status says so) after the bytes went out.
    let mut hasher = sealroot_verity::Hasher::new(repo.verity_params());
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading object {rel}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        stdout.write_all(&buf[..n])?;
    }
    stdout.flush()?;
    let got = hasher.finish();
    if got != *object.digest() {
        bail!("{path}: object {rel} is corrupt (its fs-verity digest is {got}, not its name)");
    }
    Ok(())
}

/// Stores tar contents straight into the transaction's objects.
struct TxSink<'a, 'r>(&'a sealroot_repo::Transaction<'r>);

impl sealroot_tree::tar::ObjectSink for TxSink<'_, '_> {
    fn store(
        &self,
        content: &mut dyn Read,
        _size: u64,
    ) -> std::io::Result<sealroot_verity::Sha256Digest> {
        let id = self
            .0
            .ensure_object_from_reader(content)
            .map_err(std::io::Error::other)?;
        id.digest()
            .as_sha256()
            .copied()
            .ok_or_else(|| std::io::Error::other("tar commits need a sha256 repository"))
    }
}
