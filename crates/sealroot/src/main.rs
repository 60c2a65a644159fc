//! The `sealroot` command line.
//!
//! One binary, several tools: `sealroot mkcomposefs|composefs-info|mount.composefs ...`, or
//! the same tools called by those names (a symlink or hard link named `mkcomposefs`, say), so
//! that scripts written for the C composefs tools keep working.
#![forbid(unsafe_code)]

mod args;
mod cmd;
mod info;
mod mkcomposefs;
mod mountcfs;
mod progress;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

type Tool = fn(&str, &[OsString]) -> anyhow::Result<()>;

fn tool(name: &str) -> Option<Tool> {
    match name {
        "mkcomposefs" => Some(mkcomposefs::run),
        "composefs-info" => Some(info::run),
        "mount.composefs" => Some(mountcfs::run),
        _ => None,
    }
}

const USAGE: &str = "usage: sealroot COMMAND [ARGS...]\n\
\n\
The composefs tools (each also works when sealroot is called by that name):\n  \
mkcomposefs       build a composefs image from a directory or a dumpfile\n  \
composefs-info    list, dump and inspect composefs images\n  \
mount.composefs   mount a composefs image\n\
\n\
The repository (--repo PATH, default $SEALROOT_REPO or /sysroot/composefs; --json):\n  \
init              create a repository\n  \
status            its configuration (fs-verity support) and contents\n  \
commit            store a directory or tar archive as a commit (tree objects, image) under a ref\n  \
log, show, diff   the history of a ref, a commit, the paths two commits differ in\n  \
derive            re-create a commit's image from its tree objects alone\n  \
mount             mount the image of a ref (--require-signature KEYS)\n  \
refs, images, objects   list what the repository holds\n  \
ls, cat           look inside an image without mounting it\n  \
fsck              check every object, image and ref (--repair)\n  \
gc                remove what no ref reaches (--dry-run)\n\
\n\
Trust:\n  \
key               generate an ed25519 key pair (ostree's format), print public keys\n  \
sign, verify      sign a commit; check its signatures and re-create its image\n  \
fsverity          sign (PKCS#7, as fsverity-utils) and enable kernel fs-verity\n";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let base = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (name, f) = match tool(&base) {
        Some(f) => (base, f),
        None => {
            let sub = args.get(1).map(|s| s.to_string_lossy().into_owned());
            match sub.as_deref() {
                Some("-h" | "--help" | "help") | None => {
                    print!("{USAGE}");
                    return if sub.is_some() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    };
                }
                Some("--version" | "version") => {
                    println!("sealroot {}", env!("CARGO_PKG_VERSION"));
                    return ExitCode::SUCCESS;
                }
                // A repository command, perhaps after the global options (`--repo PATH`).
                Some(_) if cmd::command_name(&args).is_some() => {
                    let s = cmd::command_name(&args).unwrap_or_default();
                    return match cmd::run(&args) {
                        Ok(code) => code,
                        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("sealroot {s}: {}", message(&e));
                            ExitCode::FAILURE
                        }
                    };
                }
                Some(s) => match tool(s) {
                    Some(f) => {
                        args.remove(0);
                        (s.to_owned(), f)
                    }
                    None => {
                        eprintln!("sealroot: unknown command '{s}'\n{USAGE}");
                        return ExitCode::from(2);
                    }
                },
            }
        }
    };
    match f(&name, &args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): stop quietly, as a C tool killed by
        // SIGPIPE would.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by `: ` as anyhow's `{:#}` joins them, but each text once:
/// the library's errors name their cause in their own message (`opening PATH: CAUSE`) and
/// keep it as their source too, which `{:#}` would print a second time.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug)]
        struct Opening(std::io::Error);
        impl std::fmt::Display for Opening {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "opening /r/tmp: {}", self.0)
            }
        }
        impl std::error::Error for Opening {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("a symlink stands there");
        let e = anyhow::Error::new(Opening(io)).context("gc failed");
        assert_eq!(
            message(&e),
            "gc failed: opening /r/tmp: a symlink stands there"
        );
        let plain = anyhow::anyhow!("no such ref").context("cannot resolve x");
        assert_eq!(message(&plain), "cannot resolve x: no such ref");
    }
}
