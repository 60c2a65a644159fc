//! `key`, `sign`, `verify`, `fsverity`: keys, signatures and their checks.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sealroot_core::files::write_atomically;
use sealroot_core::{keys, sign as signing, verify as verifying};
use serde_json::json;

use super::{print_json, Ctx};

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
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

#[derive(Args)]
pub(crate) struct SignArgs {
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
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
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
}

#[derive(Subcommand)]
pub(crate) enum FsverityCmd {
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

pub(crate) fn key(ctx: &Ctx, cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Generate { secret } => {
            let g = keys::generate(&secret)?;
            if ctx.json {
                print_json(
                    &json!({"secret": g.secret, "public": g.public, "public_key": g.key.to_base64()}),
                );
            } else {
                println!("{}", g.key.to_base64());
                eprintln!(
                    "secret key in {} (keep it private), public key in {}",
                    g.secret.display(),
                    g.public.display()
                );
            }
        }
        KeyCmd::Public { secret } => {
            for key in keys::read_secret_keys(&secret)? {
                println!("{}", key.public_key().to_base64());
            }
        }
    }
    Ok(())
}

pub(crate) fn sign(ctx: &Ctx, a: SignArgs) -> Result<()> {
    let repo = ctx.open()?;
    let id = repo.resolve_commit(&a.commit)?;
    if let Some(key) = &a.key {
        let keys = keys::read_secret_keys(key)?;
        let s = signing::sign(&repo, &id, &keys)?;
        if ctx.json {
            print_json(
                &json!({"commit": id.to_hex(), "signed_by": s.signed_by, "signatures": s.signatures}),
            );
        } else {
            for p in s.signed_by {
                println!("signed {id} with ed25519 key {p}");
            }
        }
    }
    if let (Some(k), Some(c)) = (&a.fsverity_key, &a.fsverity_cert) {
        let s = signing::sign_image(&repo, &id, k, c)?;
        if ctx.json {
            print_json(
                &json!({"commit": id.to_hex(), "image": s.image.to_hex(), "kernel_signature_bytes": s.bytes}),
            );
        } else {
            println!(
                "signed image {}:{} of {id} for the kernel ({} bytes of PKCS#7)",
                s.image.algorithm(),
                s.image,
                s.bytes
            );
        }
    }
    Ok(())
}

pub(crate) fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<()> {
    let ring = verifying::keyring(&a.keys, a.revoked.as_deref())?;
    let repo = ctx.open()?;
    let id = repo.resolve_commit(&a.commit)?;
    let v = verifying::verify_commit(&repo, &id, &ring, !a.no_derive)?;
    if ctx.json {
        print_json(
            &json!({"commit": v.id.to_hex(), "image": v.commit.image.to_hex(), "verified_by": v.keys,
                           "image_derived": v.image_derived}),
        );
    } else {
        for k in &v.keys {
            println!("commit {}: good signature by ed25519 key {k}", v.id);
        }
        if v.image_derived {
            println!(
                "image {}:{} re-created from the tree objects: matches the signed commit",
                v.commit.image.algorithm(),
                v.commit.image
            );
        }
    }
    if let Some(cert) = &a.fsverity_cert {
        let origin = verifying::verify_image_signature(&repo, &v.id, &v.commit, cert)?;
        if ctx.json {
            print_json(&json!({"commit": v.id.to_hex(), "kernel_signature": "good"}));
        } else {
            println!(
                "image {}:{}: good kernel built-in signature by {origin}",
                v.commit.image.algorithm(),
                v.commit.image
            );
        }
    }
    Ok(())
}

pub(crate) fn fsverity(cmd: FsverityCmd) -> Result<()> {
    match cmd {
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
            let (digest, der) = signing::fsverity_sign_file(&file, &key, &cert, &params)?;
            write_atomically(&out, |f| f.write_all(&der))?;
            println!(
                "Signed file '{}' ({}:{digest})",
                file.display(),
                params.algorithm()
            );
        }
        FsverityCmd::Enable { file, signature } => {
            let sig = signature
                .map(|p| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display())))
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
    }
    Ok(())
}
