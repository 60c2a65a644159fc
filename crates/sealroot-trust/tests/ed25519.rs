//! Tests of `sealroot_trust::ed25519`: key formats (RFC 8032 vectors, ostree's layout, and
//! openssl interoperability when openssl is installed), key files and keyrings, the signature
//! file's canonical encoding and strict parser, and every path of the verification policy.

use std::fs;
use std::path::Path;
use std::process::Command;

use base64ct::{Base64, Encoding as _};
use sealroot_testkit::Rng;
use sealroot_trust::ed25519::{
    commit_message, parse_public_keys, parse_secret_keys, sign, verify, KeyError, KeyKind,
    KeyParseError, Keyring, KeyringError, PublicKey, SecretKey, Signature, SignatureFile,
    SignatureFileError, SignatureFileProblem, VerifyError, COMMIT_SIGNATURE_DOMAIN, MAX_KEYS,
    MAX_SIGNATURES,
};
use sealroot_verity::{sha256_digest, AnyDigest, HashAlgorithm, Params};

// RFC 8032, section 7.1, TEST 1.
const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC_SIGNATURE_OF_EMPTY: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
/// `echo -n SEED PUBLIC | xxd -r -p | base64 -w 0`: libsodium's 64-byte secret key.
const RFC_SECRET_BASE64: &str =
    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==";
const RFC_PUBLIC_BASE64: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const RFC_SEED_BASE64: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn rfc_key() -> SecretKey {
    SecretKey::from_seed(&hex(RFC_SEED).try_into().unwrap())
}

/// A deterministic key per number, for tests that need several.
fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn commit(name: &str) -> AnyDigest {
    sha256_digest(name.as_bytes()).into()
}

/// The sha512 id of a commit object `name` (a sha512 repository's).
fn commit512(name: &str) -> AnyDigest {
    sealroot_verity::digest(&Params::composefs(HashAlgorithm::Sha512), name.as_bytes())
}

fn keyring(trusted: &[&SecretKey]) -> Keyring {
    let mut keyring = Keyring::new();
    for key in trusted {
        keyring.add_trusted(key.public_key());
    }
    keyring
}

fn signed(commit: AnyDigest, keys: &[&SecretKey]) -> SignatureFile {
    let mut file = SignatureFile::new(commit);
    for key in keys {
        file.sign(key).unwrap();
    }
    file
}

// ---------------------------------------------------------------------------------------
// Keys

#[test]
fn rfc8032_vector_1_through_our_base64_formats() {
    let secret = rfc_key();
    assert_eq!(secret.to_base64(), RFC_SECRET_BASE64);
    assert_eq!(secret.public_key().as_bytes().as_slice(), hex(RFC_PUBLIC));
    assert_eq!(secret.public_key().to_base64(), RFC_PUBLIC_BASE64);

    let parsed = SecretKey::from_base64(RFC_SECRET_BASE64).unwrap();
    assert_eq!(parsed.public_key(), secret.public_key());
    assert_eq!(parsed.to_base64(), RFC_SECRET_BASE64);
    let public = PublicKey::from_base64(RFC_PUBLIC_BASE64).unwrap();
    assert_eq!(public, secret.public_key());
    assert_eq!(public.to_string(), RFC_PUBLIC_BASE64);
    assert_eq!(RFC_PUBLIC_BASE64.parse::<PublicKey>().unwrap(), public);

    // The decoded 64 bytes are libsodium's layout: they sign as RFC 8032 says.
    let bytes: [u8; 64] = Base64::decode_vec(RFC_SECRET_BASE64)
        .unwrap()
        .try_into()
        .unwrap();
    let dalek = ed25519_dalek::SigningKey::from_keypair_bytes(&bytes).unwrap();
    use ed25519_dalek::Signer as _;
    assert_eq!(
        dalek.sign(b"").to_bytes().as_slice(),
        hex(RFC_SIGNATURE_OF_EMPTY)
    );
}

#[test]
fn commit_signatures_are_pinned() {
    let commit = commit("sealroot");
    let mut expected_message = b"sealroot-commit-signature-v1\0".to_vec();
    expected_message.extend_from_slice(commit.as_bytes());
    assert_eq!(commit_message(&commit), expected_message);
    assert_eq!(COMMIT_SIGNATURE_DOMAIN.len(), 29);

    let signature = sign(&rfc_key(), &commit);
    assert_eq!(signature.key, rfc_key().public_key());
    assert_eq!(
        Base64::encode_string(&signature.signature),
        PINNED_SIGNATURE,
        "the signature of a fixed commit by a fixed key changed: the scheme is an ABI"
    );
    // Checked independently of our code.
    let dalek = ed25519_dalek::VerifyingKey::from_bytes(signature.key.as_bytes()).unwrap();
    dalek
        .verify_strict(
            &expected_message,
            &ed25519_dalek::Signature::from_bytes(&signature.signature),
        )
        .unwrap();
    assert!(signature.verifies(&commit));
}

const PINNED_SIGNATURE: &str =
    "ErOgnPU4p3qLa2+PRIl2LUAPOXVE2WNoqF9R5DR+iagXKINTMtdW2rXbfSHEWVvy2qvs2qOpiXubeYH5XvSSBA==";

/// The RFC key's signature of the sha512 commit id of `sealroot`, computed independently
/// (Python's `cryptography`, over the domain and the 64 bytes of the id).
const PINNED_SIGNATURE_SHA512: &str =
    "TTHFG26hi93nFB6JE7FdgMrfUcT1BoCmcTwkLrig+fDcYX12/VTL7p7xS7kpNGm3pRTwK+BeJt9uOg7jX371Bw==";

#[test]
fn sha512_commit_signatures_are_pinned() {
    let commit = commit512("sealroot");
    assert_eq!(
        commit.to_hex()[..16],
        *"9d683aeebe36f010",
        "fsverity digest --hash-alg=sha512 of \"sealroot\""
    );
    let mut expected_message = COMMIT_SIGNATURE_DOMAIN.to_vec();
    expected_message.extend_from_slice(commit.as_bytes());
    assert_eq!(commit_message(&commit), expected_message);
    assert_eq!(expected_message.len(), 29 + 64);
    let signature = sign(&rfc_key(), &commit);
    assert_eq!(
        Base64::encode_string(&signature.signature),
        PINNED_SIGNATURE_SHA512
    );
    assert!(signature.verifies(&commit));
    // A signature of one id does not verify the other.
    assert!(!signature.verifies(&self::commit("sealroot")));
}

#[test]
fn sha512_signature_files_round_trip_and_verify() {
    let commit = commit512("c");
    let file = signed(commit, &[&key(1), &key(2)]);
    let text = String::from_utf8(file.encode()).unwrap();
    assert!(
        text.starts_with(&format!(
            "sealroot-signatures 1\ncommit {}\n",
            commit.to_hex()
        )),
        "{text}"
    );
    let parsed = SignatureFile::parse(text.as_bytes(), "c.sig").unwrap();
    assert_eq!(parsed, file);
    assert_eq!(*parsed.commit(), commit);
    let verified = verify(&keyring(&[&key(1)]), &commit, &parsed).unwrap();
    assert_eq!(verified.commit, commit);
    // The file of the sha256 id of the same object does not stand for this one.
    let other = signed(self::commit("c"), &[&key(1)]);
    assert!(matches!(
        verify(&keyring(&[&key(1)]), &commit, &other),
        Err(VerifyError::WrongCommit { .. })
    ));
    // 127, 129 or upper-case digits: refused.
    let hex = commit.to_hex();
    for bad in [&hex[..127], &format!("{hex}0"), &hex.to_uppercase()] {
        let t = text.replace(&hex, bad);
        let err = SignatureFile::parse(t.as_bytes(), "c.sig").unwrap_err();
        assert!(err.to_string().contains("64 or 128"), "{err}");
    }
}

#[test]
fn generated_keys_round_trip() {
    let a = SecretKey::generate().unwrap();
    let b = SecretKey::generate().unwrap();
    assert_ne!(a.public_key(), b.public_key());
    let text = a.to_base64();
    assert_eq!(text.len(), 88);
    let parsed: SecretKey = text.parse().unwrap();
    assert_eq!(parsed.public_key(), a.public_key());
    assert_eq!(
        PublicKey::from_base64(&a.public_key().to_base64()).unwrap(),
        a.public_key()
    );
}

#[test]
fn secret_key_debug_and_errors_do_not_reveal_the_secret() {
    let secret = rfc_key();
    let debug = format!("{secret:?}");
    assert!(debug.contains(RFC_PUBLIC_BASE64), "{debug}");
    assert!(!debug.contains(&RFC_SECRET_BASE64[..20]), "{debug}");

    // A corrupted key: one character changed in the seed part.
    let mut corrupt = RFC_SECRET_BASE64.to_owned();
    corrupt.replace_range(3..4, "X");
    let error =
        parse_secret_keys(format!("# mine\n{corrupt}\n").as_bytes(), "signing.key").unwrap_err();
    let message = error.to_string();
    assert_eq!(
        error,
        KeyError::Line {
            file: "signing.key".into(),
            line: 2,
            kind: KeyKind::Secret,
            problem: KeyParseError::PublicHalfMismatch
        }
    );
    assert!(message.starts_with("signing.key:2: "), "{message}");
    assert!(!message.contains(&corrupt[..12]), "{message}");

    // Not base64: the message must not quote the offending symbol.
    let mut bad = RFC_SECRET_BASE64.to_owned();
    bad.replace_range(5..6, "*");
    let message = parse_secret_keys(bad.as_bytes(), "k")
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "k:1: not a valid secret key: not base64 (the standard alphabet, with `=` padding)"
    );
}

#[test]
fn secret_key_must_be_the_64_byte_libsodium_form() {
    let error = SecretKey::from_base64(RFC_SEED_BASE64).unwrap_err();
    assert_eq!(error, KeyParseError::SecretKeyLength { got: 32 });
    assert!(
        error.to_string().contains("a bare seed is not accepted"),
        "{error}"
    );
    assert!(error.to_string().contains("libsodium"), "{error}");

    // Public half of another key.
    let mut bytes = hex(RFC_SEED);
    bytes.extend_from_slice(key(1).public_key().as_bytes());
    assert_eq!(
        SecretKey::from_base64(&Base64::encode_string(&bytes)).unwrap_err(),
        KeyParseError::PublicHalfMismatch
    );
    // A public key where a secret key is expected.
    assert_eq!(
        SecretKey::from_base64(RFC_PUBLIC_BASE64).unwrap_err(),
        KeyParseError::SecretKeyLength { got: 32 }
    );
    // Unpadded, or with surrounding whitespace: not accepted by the single-key parser.
    assert_eq!(
        SecretKey::from_base64(RFC_SECRET_BASE64.trim_end_matches('=')).unwrap_err(),
        KeyParseError::Base64
    );
    assert_eq!(
        SecretKey::from_base64(&format!(" {RFC_SECRET_BASE64}")).unwrap_err(),
        KeyParseError::Base64
    );
}

#[test]
fn public_key_errors() {
    assert_eq!(
        PublicKey::from_base64(RFC_SECRET_BASE64).unwrap_err(),
        KeyParseError::PublicKeyLength { got: 64 }
    );
    assert_eq!(
        PublicKey::from_base64("").unwrap_err(),
        KeyParseError::PublicKeyLength { got: 0 }
    );
    assert_eq!(
        PublicKey::from_base64("not base64!").unwrap_err(),
        KeyParseError::Base64
    );
    // Non-canonical trailing bits ("...URo=" is canonical, "...URp=" decodes the same).
    let noncanonical = RFC_PUBLIC_BASE64.replace("URo=", "URp=");
    assert_eq!(
        PublicKey::from_base64(&noncanonical).unwrap_err(),
        KeyParseError::Base64
    );
    // The identity point: of small order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        PublicKey::from_bytes(&identity).unwrap_err(),
        KeyParseError::WeakKey
    );
    // Some y has no x on the curve.
    let not_on_curve = (2u8..)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .unwrap();
    assert_eq!(
        PublicKey::from_bytes(&not_on_curve).unwrap_err(),
        KeyParseError::NotOnCurve
    );
}

#[test]
fn public_keys_order_by_bytes() {
    let mut keys: Vec<PublicKey> = (1..=20).map(|n| key(n).public_key()).collect();
    keys.sort();
    assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
}

// ---------------------------------------------------------------------------------------
// Key files

#[test]
fn key_files_skip_comments_blank_lines_and_whitespace() {
    let text = format!(
        "# release keys\n\n  {}  \r\n\t# old\n{}\n   \n",
        key(1).public_key(),
        key(2).public_key()
    );
    let keys = parse_public_keys(text.as_bytes(), "trusted.ed25519").unwrap();
    assert_eq!(keys, vec![key(1).public_key(), key(2).public_key()]);

    let secrets = parse_secret_keys(
        format!("{}\n# comment\n{}", key(1).to_base64(), key(2).to_base64()).as_bytes(),
        "s",
    )
    .unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[1].public_key(), key(2).public_key());

    assert!(parse_public_keys(b"", "empty").unwrap().is_empty());
    assert!(parse_public_keys(b"# nothing\n\n", "empty")
        .unwrap()
        .is_empty());
}

#[test]
fn key_file_errors_name_the_file_and_line() {
    let text = format!("{}\n\n{}x\n", key(1).public_key(), key(2).public_key());
    let error = parse_public_keys(text.as_bytes(), "/etc/sealroot/trusted.ed25519").unwrap_err();
    assert_eq!(
        error.to_string(),
        "/etc/sealroot/trusted.ed25519:3: not a valid public key: not base64 (the standard \
         alphabet, with `=` padding)"
    );

    // A secret key in a public key file.
    let error = parse_public_keys(key(1).to_base64().as_bytes(), "pub").unwrap_err();
    assert_eq!(
        error,
        KeyError::Line {
            file: "pub".into(),
            line: 1,
            kind: KeyKind::Public,
            problem: KeyParseError::PublicKeyLength { got: 64 }
        }
    );
    assert_eq!(
        error.to_string(),
        "pub:1: not a valid public key: a public key is 32 bytes, this decodes to 64"
    );

    let error = parse_public_keys(b"# ok\n\xff\n", "bin").unwrap_err();
    assert_eq!(
        error.to_string(),
        "bin:2: not a valid public key: not UTF-8 text"
    );
    // A key followed by a comment on the same line is not a key.
    let text = format!("{} # laptop\n", key(1).public_key());
    assert!(parse_public_keys(text.as_bytes(), "c").is_err());
}

#[test]
fn key_files_are_bounded() {
    let line = format!("{}\n", key(1).public_key());
    let text = line.repeat(MAX_KEYS);
    assert_eq!(
        parse_public_keys(text.as_bytes(), "many").unwrap().len(),
        MAX_KEYS
    );
    let text = line.repeat(MAX_KEYS + 1);
    assert_eq!(
        parse_public_keys(text.as_bytes(), "many").unwrap_err(),
        KeyError::TooManyKeys {
            file: "many".into()
        }
    );
    let big = vec![b'#'; (1 << 20) + 1];
    let error = parse_public_keys(&big, "big").unwrap_err();
    assert_eq!(
        error.to_string(),
        "big: 1048577 bytes, more than the 1048576 a key file may have"
    );
}

/// ostree's test suite makes its keys this way (`gen_ed25519_keys` in `tests/libtest.sh`);
/// ostree's manual documents the same: the secret key is the base64 of the seed followed by
/// the public key. ostree itself is not installed here, so this checks that keys made the
/// documented way parse and match, with openssl when it is installed.
#[test]
fn ostree_documented_key_generation() {
    // Without openssl: the same bytes, put together as `echo -n SEEDPUB | base64` does.
    let mut seed_and_public = hex(RFC_SEED);
    seed_and_public.extend_from_slice(&hex(RFC_PUBLIC));
    let secret_line = Base64::encode_string(&seed_and_public);
    let secret =
        &parse_secret_keys(format!("{secret_line}\n").as_bytes(), "ostree.secret").unwrap()[0];
    assert_eq!(secret.public_key().to_base64(), RFC_PUBLIC_BASE64);

    if !has_openssl() {
        sealroot_testkit::skip(
            "ostree_documented_key_generation",
            "no openssl: its openssl half did not run",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
        set -eu
        pemfile=key.pem
        openssl genpkey -algorithm ed25519 -outform PEM -out "${pemfile}"
        ED25519PUBLIC="$(openssl pkey -outform DER -pubout -in ${pemfile} | tail -c 32 | base64)"
        ED25519SEED="$(openssl pkey -outform DER -in ${pemfile} | tail -c 32 | base64)"
        ED25519SECRET="$(echo ${ED25519SEED}${ED25519PUBLIC} | base64 -d | base64 -w 0)"
        echo "${ED25519PUBLIC}" > trusted.ed25519
        echo "${ED25519SECRET}" > secret.ed25519
    "#;
    run_sh(dir.path(), script);
    let secret = &parse_secret_keys(
        &fs::read(dir.path().join("secret.ed25519")).unwrap(),
        "secret.ed25519",
    )
    .unwrap()[0];
    let keyring = Keyring::load(&dir.path().join("trusted.ed25519")).unwrap();
    assert_eq!(keyring.trusted, vec![secret.public_key()]);

    // openssl, not our code, signs the commit message; our policy accepts the signature.
    let commit = commit("made by openssl");
    fs::write(dir.path().join("message"), commit_message(&commit)).unwrap();
    run_sh(
        dir.path(),
        "openssl pkeyutl -sign -inkey key.pem -rawin -in message -out signature",
    );
    let signature: [u8; 64] = fs::read(dir.path().join("signature"))
        .unwrap()
        .try_into()
        .unwrap();
    let mut file = SignatureFile::new(commit);
    file.add(Signature {
        key: secret.public_key(),
        signature,
    })
    .unwrap();
    assert_eq!(file.signatures()[0], sign(secret, &commit));
    let verified = verify(&keyring, &commit, &file).unwrap();
    assert_eq!(verified.keys, vec![secret.public_key()]);
}

fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success())
}

fn run_sh(dir: &Path, script: &str) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Keyrings

#[test]
fn keyring_loads_a_file_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.ed25519");
    fs::write(
        &file,
        format!("{}\n{}\n", key(1).public_key(), key(1).public_key()),
    )
    .unwrap();
    let keyring = Keyring::load(&file).unwrap();
    assert_eq!(keyring.trusted, vec![key(1).public_key()]);
    assert!(keyring.revoked.is_empty());

    let d = dir.path().join("trusted.ed25519.d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("20-b"), format!("{}\n", key(3).public_key())).unwrap();
    fs::write(d.join("10-a"), format!("# a\n{}\n", key(2).public_key())).unwrap();
    fs::write(d.join(".hidden"), "garbage\n").unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("sub/k"), "garbage\n").unwrap();
    std::os::unix::fs::symlink(d.join("20-b"), d.join("30-link")).unwrap();

    let mut keyring = Keyring::load(&d).unwrap();
    assert_eq!(
        keyring.trusted,
        vec![key(2).public_key(), key(3).public_key()]
    );
    assert_eq!(keyring.load_trusted(&file).unwrap(), 2);
    assert_eq!(
        keyring.trusted,
        vec![
            key(2).public_key(),
            key(3).public_key(),
            key(1).public_key()
        ]
    );
    assert!(!keyring.add_trusted(key(1).public_key()));

    let revoked = dir.path().join("revoked.ed25519");
    fs::write(&revoked, format!("{}\n", key(2).public_key())).unwrap();
    assert_eq!(keyring.load_revoked(&revoked).unwrap(), 1);
    assert!(keyring.is_revoked(&key(2).public_key()));
    assert!(!keyring.is_trusted(&key(2).public_key()));
    assert!(keyring.is_trusted(&key(3).public_key()));
    assert!(!keyring.is_empty());
}

#[test]
fn keyring_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = Keyring::load(&missing).unwrap_err();
    assert!(matches!(error, KeyringError::Io { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{error}"
    );

    let d = dir.path().join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("a"), format!("{}\n", key(1).public_key())).unwrap();
    fs::write(d.join("b"), "\n\nnonsense!\n").unwrap();
    let error = Keyring::load(&d).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:3: not a valid public key: not base64 (the standard alphabet, with `=` padding)",
            d.join("b").display()
        )
    );

    let big = dir.path().join("big");
    fs::write(&big, vec![b'\n'; (1 << 20) + 1]).unwrap();
    let error = Keyring::load(&big).unwrap_err();
    assert!(
        matches!(
            error,
            KeyringError::Key(KeyError::TooLarge {
                size: 1_048_577,
                ..
            })
        ),
        "{error:?}"
    );

    // Too many keys over several files.
    let many = dir.path().join("many");
    fs::create_dir(&many).unwrap();
    let line = format!("{}\n", key(1).public_key());
    fs::write(many.join("a"), line.repeat(MAX_KEYS / 2 + 1)).unwrap();
    fs::write(many.join("b"), line.repeat(MAX_KEYS / 2 + 1)).unwrap();
    let error = Keyring::load(&many).unwrap_err();
    assert!(
        matches!(error, KeyringError::TooManyKeys { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("more than 10000 keys"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// The signature file

#[test]
fn signature_file_encoding_is_pinned() {
    let commit = commit("sealroot");
    let file = signed(commit, &[&rfc_key()]);
    let expected = format!(
        "sealroot-signatures 1\ncommit {commit}\ned25519 {RFC_PUBLIC_BASE64} {PINNED_SIGNATURE}\n"
    );
    assert_eq!(String::from_utf8(file.encode()).unwrap(), expected);
    assert_eq!(file.to_string(), expected);
    assert_eq!(
        SignatureFile::parse(expected.as_bytes(), "x.sig").unwrap(),
        file
    );
}

#[test]
fn signature_files_round_trip_sorted_one_per_key() {
    let commit = commit("c");
    let keys: Vec<SecretKey> = (1..=8).map(key).collect();
    let mut file = SignatureFile::new(commit);
    assert_eq!(SignatureFile::parse(&file.encode(), "empty").unwrap(), file);
    for k in keys.iter().rev() {
        assert_eq!(file.sign(k).unwrap(), None);
    }
    let public: Vec<PublicKey> = file.signatures().iter().map(|s| s.key).collect();
    let mut sorted = public.clone();
    sorted.sort();
    assert_eq!(public, sorted);

    // Signing again by the same key replaces, not adds.
    let mut other = sign(&keys[0], &commit);
    other.signature[0] ^= 1;
    let replaced = file.add(other).unwrap().unwrap();
    assert_eq!(replaced, sign(&keys[0], &commit));
    assert_eq!(file.signatures().len(), 8);

    let encoded = file.encode();
    let parsed = SignatureFile::parse(&encoded, "f").unwrap();
    assert_eq!(parsed, file);
    assert_eq!(parsed.encode(), encoded);

    assert_eq!(file.remove(&keys[0].public_key()), Some(other));
    assert_eq!(file.remove(&keys[0].public_key()), None);
    assert_eq!(file.signatures().len(), 7);
}

#[test]
fn signature_file_add_is_bounded() {
    let commit = commit("full");
    let mut file = SignatureFile::new(commit);
    let template = sign(&key(1), &commit);
    let mut n = 0u32;
    while file.signatures().len() < MAX_SIGNATURES {
        // Distinct valid keys, quickly: public keys of seeds 0, 1, 2, …
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        n += 1;
        let key = SecretKey::from_seed(&seed).public_key();
        file.add(Signature { key, ..template }).unwrap();
    }
    assert!(file
        .add(Signature {
            key: key(200).public_key(),
            ..template
        })
        .is_err());
    // Replacing is still allowed.
    let first = file.signatures()[0];
    assert_eq!(file.add(first).unwrap(), Some(first));
    let encoded = file.encode();
    assert_eq!(SignatureFile::parse(&encoded, "full").unwrap(), file);

    // One more line than the limit is refused by the parser.
    let mut text = String::from_utf8(encoded).unwrap();
    // Whatever the line holds: the count is checked first.
    let extra = "ed25519 x y\n";
    text.push_str(extra);
    let error = SignatureFile::parse(text.as_bytes(), "over").unwrap_err();
    assert_eq!(
        error,
        SignatureFileError::Line {
            file: "over".into(),
            line: MAX_SIGNATURES + 3,
            problem: SignatureFileProblem::TooManySignatures
        }
    );
}

#[test]
fn signature_file_parse_errors() {
    let commit = commit("errors");
    let a = sign(&key(1), &commit);
    let b = sign(&key(2), &commit);
    let (first, second) = if a.key < b.key { (a, b) } else { (b, a) };
    let line = |s: &Signature| {
        format!(
            "ed25519 {} {}\n",
            s.key.to_base64(),
            Base64::encode_string(&s.signature)
        )
    };
    let head = format!("sealroot-signatures 1\ncommit {commit}\n");
    let good = format!("{head}{}{}", line(&first), line(&second));
    SignatureFile::parse(good.as_bytes(), "good").unwrap();

    let key_b64 = first.key.to_base64();
    let sig_b64 = Base64::encode_string(&first.signature);
    use SignatureFileProblem as P;
    let cases: Vec<(String, usize, P)> = vec![
        (String::new(), 1, P::Empty),
        (good.trim_end().to_owned(), 4, P::MissingNewline),
        ("sealroot-signatures 1".into(), 1, P::MissingNewline),
        (
            "\n".into(),
            1,
            P::BadHeader {
                found: String::new(),
            },
        ),
        (
            "ostree-signatures 1\n".into(),
            1,
            P::BadHeader {
                found: "ostree-signatures 1".into(),
            },
        ),
        (
            format!("sealroot-signatures 2\ncommit {commit}\n"),
            1,
            P::UnsupportedVersion {
                version: "2".into(),
            },
        ),
        ("sealroot-signatures 1\n".into(), 2, P::MissingCommit),
        (
            format!(
                "sealroot-signatures 1\ncommit {}\n",
                commit.to_hex().to_uppercase()
            ),
            2,
            P::BadCommitLine {
                found: format!("commit {}", &commit.to_hex().to_uppercase()[..33]) + "…",
            },
        ),
        (
            format!("sealroot-signatures 1\ncommit {}\n", &commit.to_hex()[1..]),
            2,
            P::BadCommitLine {
                found: format!("commit {}", &commit.to_hex()[1..34]) + "…",
            },
        ),
        (
            format!("sealroot-signatures 1\ncommit  {commit}\n"),
            2,
            P::BadCommitLine {
                found: format!("commit  {}", &commit.to_hex()[..32]) + "…",
            },
        ),
        (
            format!("{head}\n"),
            3,
            P::UnknownKind {
                kind: String::new(),
            },
        ),
        (
            format!("{head}rsa {key_b64} {sig_b64}\n"),
            3,
            P::UnknownKind { kind: "rsa".into() },
        ),
        (
            format!("{head}ed25519 {key_b64}\n"),
            3,
            P::MalformedSignatureLine,
        ),
        (
            format!("{head}ed25519 {key_b64} {sig_b64} x\n"),
            3,
            P::MalformedSignatureLine,
        ),
        (
            format!("{head}ed25519 {key_b64} {sig_b64} \n"),
            3,
            P::MalformedSignatureLine,
        ),
        (
            format!("{head}ed25519  {key_b64} {sig_b64}\n"),
            3,
            P::MalformedSignatureLine,
        ),
        (
            format!("{head}ed25519 {key_b64}x {sig_b64}\n"),
            3,
            P::BadKey(KeyParseError::Base64),
        ),
        (
            format!("{head}ed25519 {sig_b64} {sig_b64}\n"),
            3,
            P::BadKey(KeyParseError::PublicKeyLength { got: 64 }),
        ),
        (
            format!("{head}ed25519 {key_b64} {}\n", &sig_b64[1..]),
            3,
            P::SignatureBase64,
        ),
        (
            format!("{head}ed25519 {key_b64} {key_b64}\n"),
            3,
            P::SignatureLength { got: 32 },
        ),
        (
            format!("{head}{}{}", line(&first), line(&first)),
            4,
            P::DuplicateKey { key: first.key },
        ),
        (
            format!("{head}{}{}", line(&second), line(&first)),
            4,
            P::OutOfOrder {
                key: first.key,
                previous: second.key,
            },
        ),
        (
            format!("{head}{}", line(&first).replace('\n', "\r\n")),
            3,
            P::UnexpectedByte {
                byte: b'\r',
                column: 142,
            },
        ),
        (
            format!("{head}{}\n", line(&first)),
            4,
            P::UnknownKind {
                kind: String::new(),
            },
        ),
        (
            format!("sealroot-signatures 1\ncommit {commit}\tx\n"),
            2,
            P::UnexpectedByte {
                byte: b'\t',
                column: 72,
            },
        ),
        (
            "sealroot-signatures 1 é\n".to_owned(),
            1,
            P::UnexpectedByte {
                byte: 0xc3,
                column: 23,
            },
        ),
    ];
    for (text, line, problem) in cases {
        let error = SignatureFile::parse(text.as_bytes(), "commits/x.sig").unwrap_err();
        assert_eq!(
            error,
            SignatureFileError::Line {
                file: "commits/x.sig".into(),
                line,
                problem
            },
            "{text:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("signature file commits/x.sig, line {line}: ")),
            "{error}"
        );
    }

    let big = vec![b'a'; (1 << 20) + 1];
    assert_eq!(
        SignatureFile::parse(&big, "big").unwrap_err(),
        SignatureFileError::TooLarge {
            file: "big".into(),
            size: (1 << 20) + 1
        }
    );
}

#[test]
fn signature_file_error_messages_read_well() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"sealroot-signatures 7\n",
            "signature file s, line 1: signature file version \"7\" is not supported (this \
             sealroot reads version 1)",
        ),
        (
            b"sealroot-signatures 1",
            "signature file s, line 1: the last line does not end with a newline: the file \
             may be truncated",
        ),
        (
            b"hello\n",
            "signature file s, line 1: not a sealroot signature file: expected \
             `sealroot-signatures 1`, found \"hello\"",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            SignatureFile::parse(text, "s").unwrap_err().to_string(),
            *message
        );
    }
}

const INTERESTING: &[u8] = b"\n \r\t=+/0aAzZ9#edsc1\xff\x00";

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..=rng.index(4) {
        let len = bytes.len();
        match rng.index(8) {
            0 if len > 0 => {
                let i = rng.index(len);
                bytes[i] ^= 1 << rng.index(8);
            }
            1 if len > 0 => {
                let i = rng.index(len);
                bytes[i] = INTERESTING[rng.index(INTERESTING.len())];
            }
            2 => {
                let i = rng.index(len + 1);
                bytes.insert(i, INTERESTING[rng.index(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let i = rng.index(len);
                bytes.remove(i);
            }
            4 if len > 0 => {
                let i = rng.index(len + 1);
                bytes.truncate(i);
            }
            5 if len > 0 => {
                // Duplicate or move a whole range (e.g. a line).
                let a = rng.index(len);
                let b = a + rng.index(len - a) + 1;
                let piece = bytes[a..b].to_vec();
                let at = rng.index(len + 1);
                bytes.splice(at..at, piece);
            }
            6 if !other.is_empty() => {
                // Splice in a piece of another valid file.
                let a = rng.index(other.len());
                let b = a + rng.index(other.len() - a) + 1;
                let at = rng.index(len + 1);
                bytes.splice(at..at, other[a..b].iter().copied());
            }
            _ => {
                // Swap two lines.
                let text = bytes.clone();
                let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
                let n = lines.len();
                lines.swap(rng.index(n), rng.index(n));
                *bytes = lines.join(&b'\n');
            }
        }
    }
}

#[test]
fn mutated_signature_files_never_panic_and_accepted_ones_are_canonical() {
    let commit_a = commit("a");
    let commit_b = commit("b");
    let keys: Vec<SecretKey> = (1..=4).map(key).collect();
    let a = signed(commit_a, &keys.iter().collect::<Vec<_>>()).encode();
    let b = signed(commit_b, &[&keys[1], &keys[3]]).encode();
    let mut rng = Rng::new(0x5ea1_2007);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut bytes = if rng.index(2) == 0 {
            a.clone()
        } else {
            b.clone()
        };
        let other = if rng.index(2) == 0 { &a } else { &b };
        mutate(&mut rng, &mut bytes, other);
        if let Ok(file) = SignatureFile::parse(&bytes, "mutant") {
            accepted += 1;
            assert_eq!(
                file.encode(),
                bytes,
                "accepted but not canonical: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        // Key-file parsers see the same bytes.
        let _ = parse_public_keys(&bytes, "mutant");
        let _ = parse_secret_keys(&bytes, "mutant");
    }
    // Some mutations (line swaps that keep the order, splices of whole lines) stay valid.
    eprintln!("{accepted} of 20000 mutants accepted");
    assert!(accepted > 0);
}

#[test]
fn random_valid_signature_files_round_trip() {
    let mut rng = Rng::new(42);
    let keys: Vec<SecretKey> = (1..=12).map(key).collect();
    for i in 0..200 {
        let commit = commit(&format!("commit {i}"));
        let mut file = SignatureFile::new(commit);
        for _ in 0..rng.index(keys.len() + 1) {
            file.sign(&keys[rng.index(keys.len())]).unwrap();
        }
        let encoded = file.encode();
        let parsed = SignatureFile::parse(&encoded, "random").unwrap();
        assert_eq!(parsed, file);
        assert_eq!(parsed.encode(), encoded);
    }
}

// ---------------------------------------------------------------------------------------
// Verification policy

#[test]
fn a_signature_by_a_trusted_key_verifies() {
    let commit = commit("good");
    let file = signed(commit, &[&key(1)]);
    let reparsed = SignatureFile::parse(&file.encode(), "good.sig").unwrap();
    let verified = verify(&keyring(&[&key(1)]), &commit, &reparsed).unwrap();
    assert_eq!(verified.commit, commit);
    assert_eq!(verified.keys, vec![key(1).public_key()]);
    assert!(verified.revoked.is_empty() && verified.untrusted.is_empty());
}

#[test]
fn empty_keyring_is_refused() {
    let commit = commit("c");
    let file = signed(commit, &[&key(1)]);
    let error = verify(&Keyring::new(), &commit, &file).unwrap_err();
    assert_eq!(error, VerifyError::EmptyKeyring { commit });
    assert!(error.to_string().contains("no trusted keys"), "{error}");

    // Every trusted key revoked is as good as none.
    let mut keyring = keyring(&[&key(1)]);
    keyring.add_revoked(key(1).public_key());
    assert!(keyring.is_empty());
    assert_eq!(
        verify(&keyring, &commit, &file).unwrap_err(),
        VerifyError::EmptyKeyring { commit }
    );
}

#[test]
fn unsigned_commit_is_refused() {
    let commit = commit("c");
    let error = verify(&keyring(&[&key(1)]), &commit, &SignatureFile::new(commit)).unwrap_err();
    assert_eq!(error, VerifyError::NoSignatures { commit });
    assert_eq!(
        error.to_string(),
        format!("commit {commit} is not signed: its signature file holds no signature")
    );
}

#[test]
fn one_byte_change_in_the_commit_id_is_caught() {
    let commit = commit("release");
    let mut changed = *commit.as_sha256().unwrap();
    changed.0[17] ^= 0x01;
    let changed = AnyDigest::from(changed);
    let keyring = keyring(&[&key(1)]);
    let file = signed(commit, &[&key(1)]);

    // The file read for the changed commit names the real one.
    assert_eq!(
        verify(&keyring, &changed, &file).unwrap_err(),
        VerifyError::WrongCommit {
            expected: Box::new(changed),
            found: Box::new(commit)
        }
    );

    // The commit line of the file edited to match: the signature no longer verifies.
    let text = String::from_utf8(file.encode())
        .unwrap()
        .replace(&commit.to_hex(), &changed.to_hex());
    let tampered = SignatureFile::parse(text.as_bytes(), "tampered.sig").unwrap();
    let error = verify(&keyring, &changed, &tampered).unwrap_err();
    assert_eq!(
        error,
        VerifyError::BadSignature {
            commit: changed,
            key: key(1).public_key()
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "commit {changed}: signature by key {} (trusted) does not verify: the commit or \
             the signature was altered",
            key(1).public_key()
        )
    );
}

#[test]
fn a_signature_moved_onto_another_commit_is_caught() {
    let old = commit("old release");
    let new = commit("new release");
    let keyring = keyring(&[&key(1)]);
    let old_file = signed(old, &[&key(1)]);

    // The whole file copied beside the new commit.
    let error = verify(&keyring, &new, &old_file).unwrap_err();
    assert_eq!(
        error,
        VerifyError::WrongCommit {
            expected: Box::new(new),
            found: Box::new(old)
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "commit {new}: the signature file is for commit {old}: signatures from another \
             commit do not sign this one"
        )
    );

    // Only the signature line moved into a file for the new commit.
    let mut moved = SignatureFile::new(new);
    moved.add(old_file.signatures()[0]).unwrap();
    assert_eq!(
        verify(&keyring, &new, &moved).unwrap_err(),
        VerifyError::BadSignature {
            commit: new,
            key: key(1).public_key()
        }
    );
}

#[test]
fn signatures_by_unknown_keys_are_not_enough() {
    let commit = commit("c");
    let file = signed(commit, &[&key(2), &key(3)]);
    let error = verify(&keyring(&[&key(1)]), &commit, &file).unwrap_err();
    let mut unknown = vec![key(2).public_key(), key(3).public_key()];
    unknown.sort();
    assert_eq!(
        error,
        VerifyError::UntrustedSignatures {
            commit,
            keys: unknown.clone(),
            revoked: vec![]
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "commit {commit} is not signed by any trusted key: signed only by unknown keys {}, {}",
            unknown[0], unknown[1]
        )
    );
}

#[test]
fn signatures_by_revoked_keys_are_ignored() {
    let commit = commit("c");
    let mut keyring = keyring(&[&key(1), &key(2)]);
    keyring.add_revoked(key(1).public_key());

    let file = signed(commit, &[&key(1)]);
    let error = verify(&keyring, &commit, &file).unwrap_err();
    assert_eq!(
        error,
        VerifyError::UntrustedSignatures {
            commit,
            keys: vec![],
            revoked: vec![key(1).public_key()]
        }
    );
    assert!(
        error.to_string().ends_with(&format!(
            "signed only by revoked keys {}",
            key(1).public_key()
        )),
        "{error}"
    );

    // A revoked key's signature is not even checked: a broken one is not an error.
    let mut broken = sign(&key(1), &commit);
    broken.signature[10] ^= 0x80;
    let mut file = signed(commit, &[&key(2)]);
    file.add(broken).unwrap();
    let verified = verify(&keyring, &commit, &file).unwrap();
    assert_eq!(verified.keys, vec![key(2).public_key()]);
    assert_eq!(verified.revoked, vec![key(1).public_key()]);

    // Unknown and revoked together.
    let file = signed(commit, &[&key(1), &key(9)]);
    let message = verify(&keyring, &commit, &file).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "signed only by unknown keys {} and by revoked keys {}",
            key(9).public_key(),
            key(1).public_key()
        )),
        "{message}"
    );
}

#[test]
fn a_bad_signature_by_a_trusted_key_is_an_error_even_if_another_verifies() {
    let commit = commit("c");
    let keyring = keyring(&[&key(1), &key(2)]);
    let mut file = signed(commit, &[&key(1), &key(2)]);
    let mut bad = sign(&key(2), &commit);
    bad.signature[63] ^= 0x01;
    file.add(bad).unwrap();
    assert_eq!(
        verify(&keyring, &commit, &file).unwrap_err(),
        VerifyError::BadSignature {
            commit,
            key: key(2).public_key()
        }
    );

    // Every bit of the signature matters.
    for bit in (0..512).step_by(37) {
        let mut file = signed(commit, &[&key(1)]);
        let mut bad = sign(&key(1), &commit);
        bad.signature[bit / 8] ^= 1 << (bit % 8);
        file.add(bad).unwrap();
        assert!(
            matches!(
                verify(&keyring, &commit, &file),
                Err(VerifyError::BadSignature { .. })
            ),
            "bit {bit}"
        );
    }

    // A valid signature by another key under a trusted key's name.
    let mut file = SignatureFile::new(commit);
    file.add(Signature {
        key: key(1).public_key(),
        ..sign(&key(3), &commit)
    })
    .unwrap();
    assert!(matches!(
        verify(&keyring, &commit, &file),
        Err(VerifyError::BadSignature { .. })
    ));
}

#[test]
fn key_rotation() {
    let commit = commit("c");
    let (old, new) = (key(1), key(2));
    // Published during the rotation: signed by both keys.
    let file = signed(commit, &[&old, &new]);

    // A device that already has only the new key.
    let verified = verify(&keyring(&[&new]), &commit, &file).unwrap();
    assert_eq!(verified.keys, vec![new.public_key()]);
    assert_eq!(verified.untrusted, vec![old.public_key()]);

    // A device that still has only the old key.
    let verified = verify(&keyring(&[&old]), &commit, &file).unwrap();
    assert_eq!(verified.keys, vec![old.public_key()]);

    // A device with both, and other keys.
    let verified = verify(&keyring(&[&key(7), &new, &old]), &commit, &file).unwrap();
    let mut both = vec![old.public_key(), new.public_key()];
    both.sort();
    assert_eq!(verified.keys, both);

    // After the rotation: signed by the new key only, the old key revoked.
    let file = signed(commit, &[&new]);
    let mut keyring = keyring(&[&old, &new, &key(7)]);
    keyring.add_revoked(old.public_key());
    assert_eq!(
        verify(&keyring, &commit, &file).unwrap().keys,
        vec![new.public_key()]
    );
    // A commit signed only by the old key is now refused.
    let file = signed(commit, &[&old]);
    assert!(matches!(
        verify(&keyring, &commit, &file),
        Err(VerifyError::UntrustedSignatures { .. })
    ));
}

#[test]
fn keyring_from_files_verifies_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret.ed25519");
    let secret = SecretKey::generate().unwrap();
    fs::write(&secret_file, format!("{}\n", secret.to_base64())).unwrap();
    fs::write(
        dir.path().join("trusted.ed25519"),
        format!("# release\n{}\n", secret.public_key()),
    )
    .unwrap();

    let commit = commit("end to end");
    let signer = &parse_secret_keys(&fs::read(&secret_file).unwrap(), "secret.ed25519").unwrap()[0];
    let sig_path = dir.path().join("c.sig");
    fs::write(&sig_path, signed(commit, &[signer]).encode()).unwrap();

    let keyring = Keyring::load(&dir.path().join("trusted.ed25519")).unwrap();
    let file = SignatureFile::parse(&fs::read(&sig_path).unwrap(), "c.sig").unwrap();
    assert_eq!(
        verify(&keyring, &commit, &file).unwrap().keys,
        vec![secret.public_key()]
    );
}
