//! fs-verity built-in signatures against the reference: `fsverity sign` (fsverity-utils) and
//! `openssl`. Keys and certificates are made at test time with the `openssl` CLI; every signature
//! `sign_digest` makes must equal, byte for byte, the one `fsverity sign` writes for the same file.
//!
//! Skips loudly ([`sealroot_testkit::skip`]) when `fsverity` or `openssl` is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sealroot_testkit::Rng;
use sealroot_trust::pkcs7::{
    formatted_digest, parse_signature, sign_digest, verify_signature, Certificate,
    CertificateProblem, KeyProblem, Pkcs7Error, SignatureProblem, SigningKey,
};
use sealroot_verity::{HashAlgorithm, Params};

/// One key with its self-signed certificate, in the formats the tests need.
struct Identity {
    /// What the test output calls it.
    name: &'static str,
    key: PathBuf,
    cert_pem: PathBuf,
    cert_der: PathBuf,
}

/// Keys, certificates and input files, made once for all tests.
struct Fixture {
    dir: tempfile::TempDir,
    identities: Vec<Identity>,
    /// (name, path, contents)
    files: Vec<(&'static str, PathBuf, Vec<u8>)>,
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What is wrong with the key `r` refused, and the whole message.
fn key_problem<T: std::fmt::Debug>(r: Result<T, Pkcs7Error>) -> (KeyProblem, String) {
    let err = r.unwrap_err();
    let msg = err.to_string();
    match err {
        Pkcs7Error::Key { problem, .. } => (problem, msg),
        other => panic!("not a key problem: {other}"),
    }
}

/// What is wrong with the certificate `r` refused, and the whole message.
fn certificate_problem<T: std::fmt::Debug>(
    r: Result<T, Pkcs7Error>,
) -> (CertificateProblem, String) {
    let err = r.unwrap_err();
    let msg = err.to_string();
    match err {
        Pkcs7Error::Certificate { problem, .. } => (problem, msg),
        other => panic!("not a certificate problem: {other}"),
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

fn make_identity(
    dir: &Path,
    name: &'static str,
    key_args: &[&str],
    req_extra: &[&str],
) -> Identity {
    let key = format!("{name}.key");
    let cert_pem = format!("{name}.crt");
    let cert_der = format!("{name}.der");
    // `-out` right after the subcommand: `genrsa` wants the key size last.
    let mut args = vec![key_args[0], "-out", &key];
    args.extend_from_slice(&key_args[1..]);
    openssl(dir, &args);
    let subj = format!("/CN=sealroot test {name}/O=sealroot/C=DE");
    let mut req = vec![
        "req", "-x509", "-new", "-key", &key, "-out", &cert_pem, "-subj", &subj, "-days", "30",
    ];
    req.extend_from_slice(req_extra);
    openssl(dir, &req);
    openssl(
        dir,
        &[
            "x509", "-in", &cert_pem, "-outform", "DER", "-out", &cert_der,
        ],
    );
    Identity {
        name,
        key: dir.join(key),
        cert_pem: dir.join(cert_pem),
        cert_der: dir.join(cert_der),
    }
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            if !have("fsverity", "--version") {
                return None;
            }
            if !have("openssl", "version") {
                return None;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let d = dir.path();
            let identities = vec![
                // PKCS#8, as `openssl genpkey` writes it; a random 20-byte serial.
                make_identity(
                    d,
                    "rsa2048-pkcs8",
                    &[
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                    ],
                    &[],
                ),
                // PKCS#1 ("traditional"), 4096 bits; a serial with the high bit set, which
                // DER encodes with a leading zero byte.
                make_identity(
                    d,
                    "rsa4096-pkcs1",
                    &["genrsa", "-traditional", "4096"],
                    &["-set_serial", "0x80aabbccddeeff"],
                ),
                // PKCS#1 2048, serial 1, a SHA-512 self-signature.
                make_identity(
                    d,
                    "rsa2048-pkcs1",
                    &["genrsa", "-traditional", "2048"],
                    &["-set_serial", "1", "-sha512"],
                ),
            ];
            let mut files = Vec::new();
            for (name, data) in [
                ("empty", Vec::new()),
                ("one-byte", vec![0x5a]),
                ("4096", Rng::new(1).bytes(4096)),
                ("1MiB+1", Rng::new(2).bytes((1 << 20) + 1)),
            ] {
                let path = d.join(format!("file-{name}"));
                std::fs::write(&path, &data).expect("write file");
                files.push((name, path, data));
            }
            Some(Fixture {
                dir,
                identities,
                files,
            })
        })
        .as_ref()
}

/// The fixture, or `None` after [`sealroot_testkit::skip`]ping `test`.
fn fixture_or_skip(test: &str) -> Option<&'static Fixture> {
    let f = fixture();
    if f.is_none() {
        sealroot_testkit::skip(
            test,
            "fsverity (fsverity-utils) or openssl is not installed",
        );
    }
    f
}

/// Runs `fsverity sign` and returns (signature, the digest it printed).
fn fsverity_sign(
    fx: &Fixture,
    id: &Identity,
    file: &Path,
    extra: &[&str],
    out_name: &str,
) -> (Vec<u8>, String) {
    let out_path = fx.dir.path().join(out_name);
    let out = run(Command::new("fsverity")
        .arg("sign")
        .arg(file)
        .arg(&out_path)
        .arg("--key")
        .arg(&id.key)
        .arg("--cert")
        .arg(&id.cert_pem)
        .args(extra));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "Signed file 'PATH' (sha256:HEX)"
    let printed = stdout
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.trim().strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected fsverity output {stdout:?}"))
        .to_owned();
    let sig = std::fs::read(&out_path).expect("read fsverity signature");
    (sig, printed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `openssl smime -verify` accepts `sig` over the formatted digest.
fn openssl_accepts(
    fx: &Fixture,
    id: &Identity,
    algorithm: HashAlgorithm,
    digest: &[u8],
    sig: &[u8],
    tag: &str,
) -> bool {
    let content = fx.dir.path().join(format!("formatted-{tag}"));
    let sig_path = fx.dir.path().join(format!("ours-{tag}.p7s"));
    std::fs::write(&content, formatted_digest(algorithm, digest)).unwrap();
    std::fs::write(&sig_path, sig).unwrap();
    Command::new("openssl")
        .args([
            "smime",
            "-verify",
            "-inform",
            "DER",
            "-binary",
            "-noverify",
            "-nointern",
        ])
        .arg("-in")
        .arg(&sig_path)
        .arg("-content")
        .arg(&content)
        .arg("-certfile")
        .arg(&id.cert_pem)
        .args(["-out", "/dev/null"])
        .output()
        .expect("run openssl smime")
        .status
        .success()
}

/// One comparison: `fsverity sign` with `extra` against `sign_digest` with `params`.
fn compare(
    fx: &Fixture,
    id: &Identity,
    file: &(&str, PathBuf, Vec<u8>),
    params: &Params,
    extra: &[&str],
    tag: &str,
) {
    let (name, path, data) = file;
    let algorithm = params.algorithm();
    let digest = sealroot_verity::digest(params, data);
    let (theirs, printed) = fsverity_sign(fx, id, path, extra, &format!("theirs-{tag}.p7s"));
    assert_eq!(
        printed,
        format!("{algorithm}:{}", hex(digest.as_bytes())),
        "{tag}: fsverity and sealroot-verity disagree on the digest of {name}"
    );

    let key = SigningKey::read_pem_file(&id.key).expect("key");
    for cert_path in [&id.cert_pem, &id.cert_der] {
        let cert = Certificate::read_file(cert_path).expect("certificate");
        let ours = sign_digest(&key, &cert, algorithm, digest.as_bytes()).expect("sign");
        assert!(
            ours == theirs,
            "{tag}: signature differs from fsverity sign's ({}, {} bytes vs {} bytes)\nours   {}\ntheirs {}",
            cert_path.display(),
            ours.len(),
            theirs.len(),
            hex(&ours),
            hex(&theirs)
        );
        verify_signature(&cert, algorithm, digest.as_bytes(), &ours).expect("our verify");
    }
    let info = parse_signature(&theirs).expect("parse fsverity's signature");
    assert_eq!(info.digest_algorithm, algorithm);
    assert!(
        openssl_accepts(fx, id, algorithm, digest.as_bytes(), &theirs, tag),
        "{tag}: openssl smime -verify refuses the signature"
    );
}

#[test]
fn byte_identical_to_fsverity_sign() {
    let Some(fx) = fixture_or_skip("byte_identical_to_fsverity_sign") else {
        return;
    };
    let mut count = 0;
    for id in &fx.identities {
        for file in &fx.files {
            for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
                let params = Params::new(algorithm, 4096, &[]).unwrap();
                let flag = format!("--hash-alg={algorithm}");
                let tag = format!("{}-{}-{algorithm}", id.name, file.0);
                compare(fx, id, file, &params, &[&flag], &tag);
                count += 1;
            }
        }
    }
    assert_eq!(count, 3 * 4 * 2);
}

#[test]
fn byte_identical_with_block_size_and_salt() {
    let Some(fx) = fixture_or_skip("byte_identical_with_block_size_and_salt") else {
        return;
    };
    let salt = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x42];
    let cases: Vec<(Params, Vec<String>, &str)> = vec![
        (
            Params::new(HashAlgorithm::Sha256, 1024, &[]).unwrap(),
            vec!["--block-size=1024".into()],
            "bs1024",
        ),
        (
            Params::new(HashAlgorithm::Sha512, 1024, &[]).unwrap(),
            vec!["--block-size=1024".into(), "--hash-alg=sha512".into()],
            "bs1024-sha512",
        ),
        (
            Params::new(HashAlgorithm::Sha256, 4096, &salt).unwrap(),
            vec![format!("--salt={}", hex(&salt))],
            "salt",
        ),
        (
            Params::new(HashAlgorithm::Sha512, 65536, &salt).unwrap(),
            vec![
                format!("--salt={}", hex(&salt)),
                "--hash-alg=sha512".into(),
                "--block-size=65536".into(),
            ],
            "salt-sha512-bs64k",
        ),
    ];
    let id = &fx.identities[0];
    for (params, extra, name) in &cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        for file in &fx.files[1..] {
            compare(fx, id, file, params, &extra, &format!("{name}-{}", file.0));
        }
    }
}

#[test]
fn openssl_accepts_our_signature_and_refuses_a_changed_digest() {
    let Some(fx) = fixture_or_skip("openssl_accepts_our_signature_and_refuses_a_changed_digest")
    else {
        return;
    };
    let id = &fx.identities[1];
    let key = SigningKey::read_pem_file(&id.key).unwrap();
    let cert = Certificate::read_file(&id.cert_pem).unwrap();
    let digest = sealroot_verity::sha256_digest(b"sealroot");
    let sig = sign_digest(&key, &cert, HashAlgorithm::Sha256, digest.as_bytes()).unwrap();
    assert!(openssl_accepts(
        fx,
        id,
        HashAlgorithm::Sha256,
        digest.as_bytes(),
        &sig,
        "ours-ok"
    ));
    let mut other = *digest.as_bytes();
    other[0] ^= 1;
    assert!(!openssl_accepts(
        fx,
        id,
        HashAlgorithm::Sha256,
        &other,
        &sig,
        "ours-bad"
    ));
}

#[test]
fn wrong_key_for_certificate_is_refused() {
    let Some(fx) = fixture_or_skip("wrong_key_for_certificate_is_refused") else {
        return;
    };
    let key = SigningKey::read_pem_file(&fx.identities[0].key).unwrap();
    let cert = Certificate::read_file(&fx.identities[2].cert_pem).unwrap();
    assert!(!cert.matches(&key));
    let err = sign_digest(&key, &cert, HashAlgorithm::Sha256, &[0; 32]).unwrap_err();
    assert!(matches!(err, Pkcs7Error::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("rsa2048-pkcs8.key") && msg.contains("rsa2048-pkcs1.crt"),
        "{msg}"
    );
    // fsverity sign refuses the pair too.
    let status = Command::new("fsverity")
        .arg("sign")
        .arg(&fx.files[0].1)
        .arg(fx.dir.path().join("mismatch.p7s"))
        .arg("--key")
        .arg(&fx.identities[0].key)
        .arg("--cert")
        .arg(&fx.identities[2].cert_pem)
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
}

#[test]
fn digest_of_the_wrong_length_is_refused() {
    let Some(fx) = fixture_or_skip("digest_of_the_wrong_length_is_refused") else {
        return;
    };
    let id = &fx.identities[0];
    let key = SigningKey::read_pem_file(&id.key).unwrap();
    let cert = Certificate::read_file(&id.cert_pem).unwrap();
    let err = sign_digest(&key, &cert, HashAlgorithm::Sha512, &[0; 32]).unwrap_err();
    assert!(
        matches!(
            err,
            Pkcs7Error::DigestLength {
                actual: 32,
                expected: 64,
                ..
            }
        ),
        "{err}"
    );
    let sig = sign_digest(&key, &cert, HashAlgorithm::Sha256, &[0; 32]).unwrap();
    let err = verify_signature(&cert, HashAlgorithm::Sha256, &[0; 31], &sig).unwrap_err();
    assert!(matches!(err, Pkcs7Error::DigestLength { .. }), "{err}");
}

#[test]
fn verify_refuses_other_digests_certificates_and_algorithms() {
    let Some(fx) = fixture_or_skip("verify_refuses_other_digests_certificates_and_algorithms")
    else {
        return;
    };
    let id = &fx.identities[0];
    let key = SigningKey::read_pem_file(&id.key).unwrap();
    let cert = Certificate::read_file(&id.cert_pem).unwrap();
    let digest = sealroot_verity::sha256_digest(b"a file");
    let sig = sign_digest(&key, &cert, HashAlgorithm::Sha256, digest.as_bytes()).unwrap();
    verify_signature(&cert, HashAlgorithm::Sha256, digest.as_bytes(), &sig).unwrap();

    // Another digest.
    let other = sealroot_verity::sha256_digest(b"another file");
    let err = verify_signature(&cert, HashAlgorithm::Sha256, other.as_bytes(), &sig).unwrap_err();
    assert!(matches!(err, Pkcs7Error::BadSignature { .. }), "{err}");
    // The same bytes announced as another algorithm (the formatted digest differs).
    let mut long = digest.as_bytes().to_vec();
    long.extend_from_slice(digest.as_bytes());
    let err = verify_signature(&cert, HashAlgorithm::Sha512, &long, &sig).unwrap_err();
    assert!(matches!(err, Pkcs7Error::BadSignature { .. }), "{err}");
    // Another certificate.
    let stranger = Certificate::read_file(&fx.identities[2].cert_pem).unwrap();
    let err =
        verify_signature(&stranger, HashAlgorithm::Sha256, digest.as_bytes(), &sig).unwrap_err();
    assert!(matches!(err, Pkcs7Error::SignerMismatch { .. }), "{err}");
    // The last byte of the RSA signature changed.
    let mut changed = sig.clone();
    *changed.last_mut().unwrap() ^= 0x01;
    let err =
        verify_signature(&cert, HashAlgorithm::Sha256, digest.as_bytes(), &changed).unwrap_err();
    assert!(matches!(err, Pkcs7Error::BadSignature { .. }), "{err}");
}

#[test]
fn every_truncation_and_byte_flip_is_refused_without_panic() {
    let Some(fx) = fixture_or_skip("every_truncation_and_byte_flip_is_refused_without_panic")
    else {
        return;
    };
    let id = &fx.identities[0];
    let cert = Certificate::read_file(&id.cert_pem).unwrap();
    let file = &fx.files[1];
    let params = Params::new(HashAlgorithm::Sha256, 4096, &[]).unwrap();
    let digest = sealroot_verity::digest(&params, &file.2);
    let (sig, _) = fsverity_sign(fx, id, &file.1, &[], "mutations.p7s");
    verify_signature(&cert, HashAlgorithm::Sha256, digest.as_bytes(), &sig).unwrap();

    for len in 0..sig.len() {
        let err = parse_signature(&sig[..len]).unwrap_err();
        assert!(
            matches!(err, Pkcs7Error::Malformed(_)),
            "prefix {len}: {err}"
        );
    }
    let mut longer = sig.clone();
    longer.push(0);
    assert!(parse_signature(&longer).is_err());

    let mut refused = 0;
    for pos in 0..sig.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut m = sig.clone();
            m[pos] ^= mask;
            let _ = parse_signature(&m);
            // Every single-byte change must be caught by the full check, whatever the layer.
            let result = verify_signature(&cert, HashAlgorithm::Sha256, digest.as_bytes(), &m);
            assert!(result.is_err(), "byte {pos} ^ {mask:#04x} still verifies");
            refused += 1;
        }
    }
    assert_eq!(refused, sig.len() * 3);
}

#[test]
fn parse_reports_what_fsverity_sign_wrote() {
    let Some(fx) = fixture_or_skip("parse_reports_what_fsverity_sign_wrote") else {
        return;
    };
    let id = &fx.identities[1];
    let cert = Certificate::read_file(&id.cert_der).unwrap();
    let (sig, _) = fsverity_sign(fx, id, &fx.files[0].1, &["--hash-alg=sha512"], "info.p7s");
    let info = parse_signature(&sig).unwrap();
    assert_eq!(info.issuer, cert.issuer_der());
    assert_eq!(info.serial, cert.serial_der());
    // -set_serial 0x80aabbccddeeff: the high bit forces a leading zero.
    assert_eq!(
        info.serial,
        [0x02, 0x08, 0x00, 0x80, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
    );
    assert_eq!(info.digest_algorithm, HashAlgorithm::Sha512);
    assert_eq!(info.signature.len(), 512);
}

#[test]
fn refuses_ec_keys_and_certificates_with_clear_errors() {
    let Some(fx) = fixture_or_skip("refuses_ec_keys_and_certificates_with_clear_errors") else {
        return;
    };
    let d = fx.dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.key",
        ],
    );
    openssl(
        d,
        &[
            "req", "-x509", "-new", "-key", "ec.key", "-out", "ec.crt", "-subj", "/CN=ec", "-days",
            "1",
        ],
    );
    openssl(d, &["ec", "-in", "ec.key", "-out", "ec-traditional.key"]);

    let (problem, msg) = key_problem(SigningKey::read_pem_file(&d.join("ec.key")));
    assert!(matches!(problem, KeyProblem::NotRsa { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "key file {}: not an RSA private key",
            d.join("ec.key").display()
        )),
        "{msg}"
    );
    assert!(msg.contains("EC"), "{msg}");

    let (problem, err) = key_problem(SigningKey::read_pem_file(&d.join("ec-traditional.key")));
    assert!(matches!(problem, KeyProblem::NotRsa { .. }), "{err}");

    let (problem, err) = certificate_problem(Certificate::read_file(&d.join("ec.crt")));
    assert!(
        matches!(problem, CertificateProblem::NotRsa { .. }),
        "{err}"
    );
    assert!(err.starts_with("certificate "), "{err}");

    // fsverity sign does sign with EC keys, but ECDSA is randomized: we refuse to parse the
    // result rather than pretend to understand it.
    let out = d.join("ec.p7s");
    run(Command::new("fsverity")
        .arg("sign")
        .arg(&fx.files[0].1)
        .arg(&out)
        .args(["--key", "ec.key", "--cert", "ec.crt"])
        .current_dir(d));
    let err = parse_signature(&std::fs::read(&out).unwrap()).unwrap_err();
    assert!(
        matches!(
            &err,
            Pkcs7Error::Malformed(SignatureProblem::SignatureAlgorithm(_))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ecdsa-with-SHA256"), "{err}");
}

#[test]
fn refuses_encrypted_missing_and_garbage_keys() {
    let Some(fx) = fixture_or_skip("refuses_encrypted_missing_and_garbage_keys") else {
        return;
    };
    let d = fx.dir.path();
    let plain = &fx.identities[0].key;
    openssl(
        d,
        &[
            "pkey",
            "-in",
            plain.to_str().unwrap(),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "enc.key",
        ],
    );
    let (problem, err) = key_problem(SigningKey::read_pem_file(&d.join("enc.key")));
    assert!(matches!(problem, KeyProblem::Encrypted), "{err}");
    openssl(
        d,
        &[
            "rsa",
            "-in",
            plain.to_str().unwrap(),
            "-traditional",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "enc-traditional.key",
        ],
    );
    let (problem, err) = key_problem(SigningKey::read_pem_file(&d.join("enc-traditional.key")));
    assert!(matches!(problem, KeyProblem::Encrypted), "{err}");

    // A certificate where a key is expected, and the other way round.
    let (problem, err) = key_problem(SigningKey::read_pem_file(&fx.identities[0].cert_pem));
    assert!(matches!(problem, KeyProblem::NoPem), "{err}");
    let (problem, err) = certificate_problem(Certificate::read_file(plain));
    assert!(
        matches!(problem, CertificateProblem::NoCertificate),
        "{err}"
    );
    // A missing file names the file.
    let err = SigningKey::read_pem_file(&d.join("absent.key")).unwrap_err();
    assert!(matches!(&err, Pkcs7Error::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.key"), "{err}");
    // Broken base64 and a corrupt key body.
    let (problem, err) = key_problem(SigningKey::from_pem(
        b"-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n",
    ));
    assert!(matches!(problem, KeyProblem::BadPem { .. }), "{err}");
    let (problem, err) = key_problem(SigningKey::from_pem(
        b"-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
    ));
    assert!(matches!(problem, KeyProblem::Malformed { .. }), "{err}");
    assert!(err.starts_with("key file <memory>: "), "{err}");
}

#[test]
fn certificate_truncations_do_not_panic() {
    let Some(fx) = fixture_or_skip("certificate_truncations_do_not_panic") else {
        return;
    };
    let der = std::fs::read(&fx.identities[0].cert_der).unwrap();
    Certificate::from_der(&der).unwrap();
    for len in 0..der.len() {
        assert!(Certificate::from_der(&der[..len]).is_err(), "prefix {len}");
    }
    for pos in 0..der.len() {
        let mut m = der.clone();
        m[pos] ^= 0xff;
        let _ = Certificate::from_der(&m);
    }
}

/// An issuer `Name` whose multi-valued RDN is out of DER order: `fsverity sign` copies it as it
/// is (and the kernel compares it byte for byte), while the DER encoder would sort it. So the
/// certificate is refused for signing, and the signature `fsverity sign` makes with it is
/// refused as not DER, rather than either being silently re-encoded.
#[test]
fn issuer_out_of_der_order_is_refused_not_re_sorted() {
    let Some(fx) = fixture_or_skip("issuer_out_of_der_order_is_refused_not_re_sorted") else {
        return;
    };
    let d = fx.dir.path();
    let id = &fx.identities[0];
    let key = id.key.to_str().unwrap();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=ab+O=cd",
            "-days",
            "1",
            "-outform",
            "DER",
            "-out",
            "rdn.der",
        ],
    );
    let der = std::fs::read(d.join("rdn.der")).unwrap();
    Certificate::from_der(&der).expect("a DER multi-valued RDN is fine");

    // AttributeTypeAndValue { 2.5.4.3 (CN) or 2.5.4.10 (O), UTF8String }; DER puts CN first.
    let atv = |oid_last: u8, value: &[u8; 2]| {
        let mut out = vec![0x30, 0x09, 0x06, 0x03, 0x55, 0x04, oid_last, 0x0c, 0x02];
        out.extend_from_slice(value);
        out
    };
    let rdn = |first: Vec<u8>, second: Vec<u8>| [vec![0x31, 0x16], first, second].concat();
    let sorted = rdn(atv(3, b"ab"), atv(10, b"cd"));
    let swapped = rdn(atv(10, b"cd"), atv(3, b"ab"));
    let mut unsorted = der.clone();
    let mut replaced = 0;
    while let Some(at) = unsorted.windows(sorted.len()).position(|w| w == sorted) {
        unsorted[at..at + sorted.len()].copy_from_slice(&swapped);
        replaced += 1;
    }
    assert_eq!(replaced, 2, "issuer and subject");
    let (problem, err) = certificate_problem(Certificate::from_der(&unsorted));
    assert!(matches!(problem, CertificateProblem::NonDerIssuer), "{err}");

    let pem =
        pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &unsorted).unwrap();
    std::fs::write(d.join("rdn-unsorted.crt"), pem).unwrap();
    let out = d.join("rdn-unsorted.p7s");
    run(Command::new("fsverity")
        .arg("sign")
        .arg(&fx.files[1].1)
        .arg(&out)
        .arg("--key")
        .arg(&id.key)
        .args(["--cert", "rdn-unsorted.crt"])
        .current_dir(d));
    let theirs = std::fs::read(&out).unwrap();
    assert!(
        theirs.windows(swapped.len()).any(|w| w == swapped),
        "fsverity sign copies the issuer as it is"
    );
    let err = parse_signature(&theirs).unwrap_err();
    assert!(
        matches!(&err, Pkcs7Error::Malformed(SignatureProblem::NotDer)),
        "{err}"
    );
}
