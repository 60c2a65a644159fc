//! A small GNU-getopt-style argument scanner for the C-compatible commands, whose option
//! syntax (`--opt=value`, `--opt value`, options after operands, `--` ends options) scripts
//! already rely on.

use anyhow::{bail, Result};
use std::ffi::OsString;

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A flag.
    None,
    /// A required value.
    Required,
}

/// One option the command accepts: long name (or single-letter short name) and its arity.
pub struct Spec {
    pub name: &'static str,
    pub arg: Arg,
}

/// The scanned command line: options in order with their values, then operands.
pub struct Parsed {
    pub options: Vec<(&'static str, Option<OsString>)>,
    pub operands: Vec<OsString>,
}

impl Parsed {
    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| *n == name)
    }

    /// The last value of option `name`.
    pub fn value(&self, name: &str) -> Option<&OsString> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_ref())
    }
}

/// Scans `args` (without the program name) against `specs`. Long options are `--name`; specs
/// whose name is one letter are short options (`-o VALUE`, `-oVALUE`).
pub fn scan(args: &[OsString], specs: &[Spec]) -> Result<Parsed> {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            operands.push(arg.clone());
            continue;
        };
        if s == "--" {
            operands.extend(it.cloned());
            break;
        }
        if let Some(long) = s.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (long, None),
            };
            let Some(spec) = specs.iter().find(|sp| sp.name.len() > 1 && sp.name == name) else {
                bail!("unrecognized option '--{name}'");
            };
            let value = match (spec.arg, inline) {
                (Arg::None, Some(_)) => bail!("option '--{name}' doesn't allow an argument"),
                (Arg::None, None) => None,
                (Arg::Required, Some(v)) => Some(v),
                (Arg::Required, None) => match it.next() {
                    Some(v) => Some(v.clone()),
                    None => bail!("option '--{name}' requires an argument"),
                },
            };
            options.push((spec.name, value));
        } else if s.len() > 1 && s.starts_with('-') {
            let letters = &s[1..];
            for (i, c) in letters.char_indices() {
                let Some(spec) = specs
                    .iter()
                    .find(|sp| sp.name.len() == 1 && sp.name.starts_with(c))
                else {
                    bail!("invalid option -- '{c}'");
                };
                if spec.arg == Arg::Required {
                    let rest = &letters[i + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        match it.next() {
                            Some(v) => v.clone(),
                            None => bail!("option requires an argument -- '{c}'"),
                        }
                    } else {
                        OsString::from(rest)
                    };
                    options.push((spec.name, Some(value)));
                    break;
                }
                options.push((spec.name, None));
            }
        } else {
            operands.push(arg.clone());
        }
    }
    Ok(Parsed { options, operands })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn long_short_and_permuted() {
        let specs = [
            Spec {
                name: "digest-store",
                arg: Arg::Required,
            },
            Spec {
                name: "print-digest",
                arg: Arg::None,
            },
            Spec {
                name: "o",
                arg: Arg::Required,
            },
        ];
        let p = scan(
            &os(&[
                "src",
                "--digest-store=/x",
                "img",
                "--print-digest",
                "-o",
                "a=b",
            ]),
            &specs,
        )
        .unwrap();
        assert_eq!(p.operands, os(&["src", "img"]));
        assert_eq!(p.value("digest-store").unwrap(), "/x");
        assert!(p.flag("print-digest"));
        assert_eq!(p.value("o").unwrap(), "a=b");
        let p = scan(
            &os(&["--digest-store", "/y", "-oro", "--", "--print-digest"]),
            &specs,
        )
        .unwrap();
        assert_eq!(p.value("digest-store").unwrap(), "/y");
        assert_eq!(p.value("o").unwrap(), "ro");
        assert_eq!(p.operands, os(&["--print-digest"]));
        assert!(scan(&os(&["--nope"]), &specs).is_err());
        assert!(scan(&os(&["--print-digest=1"]), &specs).is_err());
        assert!(scan(&os(&["--digest-store"]), &specs).is_err());
    }
}
