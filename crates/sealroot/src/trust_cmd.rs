//! Commits and trust on the command line: `log`, `show`, `diff`, `key`, `sign`, `verify`,
//! the checks `mount --require-signature` makes, and `fsverity sign|enable`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sealroot_format::objects::{ChangeKind, Commit};
use sealroot_repo::{CommitId, Repository};
use sealroot_trust::ed25519::{self, Keyring, SecretKey, SignatureFile};
use sealroot_trust::pkcs7;
use sealroot_verity::{HashAlgorithm, Params};
use serde_json::json;

/// `KEY=VALUE` pairs from `--metadata`.
pub fn parse_metadata(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--metadata {p:?}: expected KEY=VALUE"))?;
        Commit::check_meta_key(k)?;
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            bail!("--metadata {k}: given twice");
        }
    }
    Ok(out)
}

/// The commit time: `--timestamp`, else `SOURCE_DATE_EPOCH` (reproducible builds), else now.
pub fn timestamp(given: Option<i64>) -> Result<i64> {
    if let Some(t) = given {
        return Ok(t);
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"));
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

fn commit_json(id: &CommitId, c: &Commit) -> serde_json::Value {
    json!({
        "commit": id.to_hex(),
        "parent": c.parent.map(|p| p.to_hex()),
        "tree": c.tree.to_hex(),
        "dirmeta": c.dirmeta.to_hex(),
        "image": c.image.to_hex(),
        "image_format": c.image_format,
        "timestamp": c.timestamp,
        "version": c.version,
        "metadata": c.metadata,
        "subject": c.subject,
        "body": c.body,
    })
}

fn print_commit(id: &CommitId, c: &Commit) {
    println!("commit {id}");
    if let Some(p) = &c.parent {
        println!("parent {p}");
    }
    println!("date   {} (unix {})", iso8601(c.timestamp), c.timestamp);
    if let Some(v) = &c.version {
        println!("version {v}");
    }
    println!(
        "image  sha256:{} (composefs format {})",
        c.image, c.image_format
    );
    for (k, v) in &c.metadata {
        println!("meta   {k}={v}");
    }
    if !c.subject.is_empty() {
        println!("\n    {}", c.subject);
    }
    if !c.body.is_empty() {
        println!();
        for line in c.body.lines() {
            println!("    {line}");
        }
    }
}

/// UTC date and time of a unix timestamp, `YYYY-MM-DD hh:mm:ss UTC`.
fn iso8601(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `sealroot show COMMIT`.
pub fn show(repo: &Repository, spec: &str, json: bool) -> Result<()> {
    let id = repo.resolve_commit(spec)?;
    let c = repo.read_commit(&id)?;
    let sigs = repo.read_signatures(&id)?;
    let keys: Vec<String> = match &sigs {
        Some(bytes) => SignatureFile::parse(bytes, &format!("signatures of {id}"))?
            .signatures()
            .iter()
            .map(|s| s.key.to_base64())
            .collect(),
        None => Vec::new(),
    };
    if json {
        let mut v = commit_json(&id, &c);
        v["signed_by"] = json!(keys);
        println!("{v}");
    } else {
        print_commit(&id, &c);
        for k in keys {
            println!("signed by ed25519 key {k} (not verified here: see `sealroot verify`)");
        }
    }
    Ok(())
}

/// `sealroot log REF`.
pub fn log(repo: &Repository, spec: &str, max: usize, json: bool) -> Result<()> {
    let id = repo.resolve_commit(spec)?;
    let entries = repo.log(&id, max)?;
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| commit_json(&e.id, &e.commit))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_commit(&e.id, &e.commit);
        }
        if let Some(last) = entries.last() {
            if let Some(p) = last.commit.parent {
                if !repo.has_commit(&CommitId(p))? {
                    println!("\n(history continues with {p}, which this repository does not have)");
                }
            }
        }
    }
    Ok(())
}

/// `sealroot diff A B`.
pub fn diff(repo: &Repository, a: &str, b: &str, json: bool) -> Result<()> {
    let (ia, ib) = (repo.resolve_commit(a)?, repo.resolve_commit(b)?);
    let (ca, cb) = (repo.read_commit(&ia)?, repo.read_commit(&ib)?);
    let changes = repo.diff_commits(&ca, &cb)?;
    let letter = |k: ChangeKind| match k {
        ChangeKind::Added => "A",
        ChangeKind::Removed => "D",
        ChangeKind::Modified => "M",
    };
    if json {
        let list: Vec<_> = changes
            .iter()
            .map(|c| json!({"path": String::from_utf8_lossy(&c.path), "change": match c.kind {
                ChangeKind::Added => "added", ChangeKind::Removed => "removed", ChangeKind::Modified => "modified" }}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for c in &changes {
            let mut line = Vec::new();
            sealroot_format::dumpfile::escape(
                &mut line,
                &c.path,
                sealroot_format::dumpfile::Escape::Listing,
            );
            writeln!(
                out,
                "{}    {}",
                letter(c.kind),
                String::from_utf8_lossy(&line)
            )?;
        }
    }
    Ok(())
}

/// `sealroot key generate SECRET`: writes SECRET (mode 0600) and SECRET.pub.
pub fn key_generate(secret_path: &Path, json: bool) -> Result<()> {
    let key = SecretKey::generate()?;
    let public = key.public_key();
    let pub_path = {
        let mut p = secret_path.as_os_str().to_owned();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    // Neither file may exist already; the public one first, so that a failure leaves no
    // secret key behind, and a file that could not be written whole is removed.
    write_new(
        &pub_path,
        0o644,
        format!("{}\n", public.to_base64()).as_bytes(),
    )?;
    if let Err(e) = write_new(
        secret_path,
        0o600,
        format!("{}\n", key.to_base64()).as_bytes(),
    ) {
        let _ = std::fs::remove_file(&pub_path);
        return Err(e);
    }
    if json {
        println!(
            "{}",
            json!({"secret": secret_path, "public": pub_path, "public_key": public.to_base64()})
        );
    } else {
        println!("{}", public.to_base64());
        eprintln!(
            "secret key in {} (keep it private), public key in {}",
            secret_path.display(),
            pub_path.display()
        );
    }
    Ok(())
}

/// Creates `path` (which must not exist) with `mode` holding `bytes`, durably; removes it
/// again if it could not be written whole.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// `sealroot key public SECRET`: the public keys of the secret keys in a file.
pub fn key_public(secret_path: &Path) -> Result<()> {
    for key in read_secret_keys(secret_path)? {
        println!("{}", key.public_key().to_base64());
    }
    Ok(())
}

fn read_secret_keys(path: &Path) -> Result<Vec<SecretKey>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys = ed25519::parse_secret_keys(&text, &path.display().to_string())?;
    if keys.is_empty() {
        bail!("{}: no secret key in it", path.display());
    }
    Ok(keys)
}

/// `sealroot sign --key SECRET COMMIT`: adds a signature by each key in the file.
pub fn sign(repo: &Repository, id: &CommitId, key_path: &Path, json: bool) -> Result<()> {
    let id = *id;
    let keys = read_secret_keys(key_path)?;
    // Only a commit that is intact is signed.
    repo.read_commit(&id)?;
    let tx = repo.transaction().context("cannot start a transaction")?;
    let mut file = match repo.read_signatures(&id)? {
        Some(bytes) => {
            let f = SignatureFile::parse(&bytes, &format!("signatures of {id}"))?;
            if f.commit() != &id.0 {
                bail!(
                    "the signature file beside commit {id} is for commit {}: remove it first",
                    f.commit()
                );
            }
            f
        }
        None => SignatureFile::new(id.0),
    };
    for k in &keys {
        file.sign(k)?;
    }
    tx.write_signatures(&id, &file.encode())?;
    tx.finish()?;
    let public: Vec<String> = keys.iter().map(|k| k.public_key().to_base64()).collect();
    if json {
        println!(
            "{}",
            json!({"commit": id.to_hex(), "signed_by": public, "signatures": file.signatures().len()})
        );
    } else {
        for p in public {
            println!("signed {id} with ed25519 key {p}");
        }
    }
    Ok(())
}

/// `sealroot sign --fsverity-key K --fsverity-cert C COMMIT`: the kernel built-in
/// signature of the commit's image (PKCS#7 over its fs-verity digest, as `fsverity sign`),
/// stored beside the commit.
pub fn sign_image(
    repo: &Repository,
    id: &CommitId,
    key: &Path,
    cert: &Path,
    json: bool,
) -> Result<()> {
    let id = *id;
    let commit = repo.read_commit(&id)?;
    let key = pkcs7::SigningKey::read_pem_file(key)?;
    let cert = pkcs7::Certificate::read_file(cert)?;
    let der = pkcs7::sign_digest(&key, &cert, HashAlgorithm::Sha256, commit.image.as_bytes())?;
    let tx = repo.transaction().context("cannot start a transaction")?;
    tx.write_image_signature(&id, &der)?;
    tx.finish()?;
    if json {
        println!(
            "{}",
            json!({"commit": id.to_hex(), "image": commit.image.to_hex(), "kernel_signature_bytes": der.len()})
        );
    } else {
        println!(
            "signed image sha256:{} of {id} for the kernel ({} bytes of PKCS#7)",
            commit.image,
            der.len()
        );
    }
    Ok(())
}

/// `verify --fsverity-cert C`: the image's kernel built-in signature, checked in userspace.
pub fn verify_image_signature(
    repo: &Repository,
    verified: &Verified,
    cert: &Path,
    json: bool,
) -> Result<()> {
    let (id, commit) = (verified.id, &verified.commit);
    let Some(der) = repo.read_image_signature(&id)? else {
        bail!("commit {id} has no kernel built-in signature for its image");
    };
    let cert = pkcs7::Certificate::read_file(cert)?;
    pkcs7::verify_signature(&cert, HashAlgorithm::Sha256, commit.image.as_bytes(), &der)
        .with_context(|| {
            format!(
                "commit {id}: the kernel signature of image sha256:{}",
                commit.image
            )
        })?;
    if json {
        println!(
            "{}",
            json!({"commit": id.to_hex(), "kernel_signature": "good"})
        );
    } else {
        println!(
            "image sha256:{}: good kernel built-in signature by {}",
            commit.image,
            cert.origin()
        );
    }
    Ok(())
}

/// Loads a keyring from a file or directory, with revoked keys.
pub fn keyring(keys: &Path, revoked: Option<&Path>) -> Result<Keyring> {
    let mut ring = Keyring::load(keys)?;
    if let Some(r) = revoked {
        ring.load_revoked(r)?;
    }
    // An empty keyring (or one whose keys are all revoked) is refused by verification itself.
    Ok(ring)
}

/// What a verified commit is.
pub struct Verified {
    /// The commit.
    pub id: CommitId,
    /// What it says.
    pub commit: Commit,
    /// The trusted keys whose signatures verified.
    pub keys: Vec<String>,
}

/// Verifies commit `spec`'s signatures against `ring`; with `derive`, re-creates the image
/// from the tree objects and checks it is the signed one.
pub fn verify_commit(
    repo: &Repository,
    id: &CommitId,
    ring: &Keyring,
    derive: bool,
) -> Result<Verified> {
    let id = *id;
    // The commit's bytes are checked against its id here.
    let commit = repo.read_commit(&id)?;
    let Some(bytes) = repo.read_signatures(&id)? else {
        bail!("commit {id} is not signed");
    };
    let file = SignatureFile::parse(&bytes, &format!("signatures of commit {id}"))?;
    let verified = ed25519::verify(ring, &id.0, &file)?;
    if derive {
        repo.derive_image(&id, &commit, None)?;
    }
    Ok(Verified {
        id,
        commit,
        keys: verified.keys.iter().map(|k| k.to_base64()).collect(),
    })
}

/// `sealroot verify`.
pub fn verify(
    repo: &Repository,
    id: &CommitId,
    ring: &Keyring,
    derive: bool,
    json: bool,
) -> Result<Verified> {
    let v = verify_commit(repo, id, ring, derive)?;
    if json {
        println!(
            "{}",
            json!({"commit": v.id.to_hex(), "image": v.commit.image.to_hex(), "verified_by": v.keys,
                   "image_derived": derive})
        );
    } else {
        for k in &v.keys {
            println!("commit {}: good signature by ed25519 key {k}", v.id);
        }
        if derive {
            println!(
                "image sha256:{} re-created from the tree objects: matches the signed commit",
                v.commit.image
            );
        }
    }
    Ok(v)
}

/// `sealroot fsverity sign FILE OUT --key K --cert C`: as fsverity-utils' `fsverity sign`.
pub fn fsverity_sign(
    file: &Path,
    out: &Path,
    key: &Path,
    cert: &Path,
    params: &Params,
) -> Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let digest = sealroot_verity::digest_reader(params, f)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let key = pkcs7::SigningKey::read_pem_file(key)?;
    let cert = pkcs7::Certificate::read_file(cert)?;
    let sig = pkcs7::sign_digest(&key, &cert, params.algorithm(), digest.as_bytes())?;
    crate::mkcomposefs::write_atomically(out, |f| Ok(f.write_all(&sig)?))?;
    println!(
        "Signed file '{}' ({}:{digest})",
        file.display(),
        params.algorithm()
    );
    Ok(())
}
