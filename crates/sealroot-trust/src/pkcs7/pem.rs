//! PEM (RFC 7468) blocks, found the way OpenSSL's `PEM_read_bio_*` finds them: explanatory text
//! around the blocks is skipped, and the first block with a wanted label is taken.

use base64ct::{Base64, Encoding as _};

/// One PEM block.
#[derive(Debug)]
pub(crate) struct Block {
    /// The label between `-----BEGIN ` and `-----`, e.g. `PRIVATE KEY`.
    pub label: String,
    /// Whether RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`) precede the body:
    /// OpenSSL writes them for encrypted "traditional" keys.
    pub has_headers: bool,
    /// The decoded body; `None` if it is not valid base64.
    pub der: Option<Vec<u8>>,
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// The first block whose label satisfies `wanted`, if any.
pub(crate) fn find(text: &[u8], wanted: impl Fn(&str) -> bool) -> Option<Block> {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(DASHES))
        else {
            continue;
        };
        if !wanted(label) {
            continue;
        }
        let end = format!("{END}{label}{DASHES}");
        let mut body = String::new();
        let mut has_headers = false;
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                has_headers = true;
            } else {
                body.push_str(line);
            }
        }
        let der = if closed {
            Base64::decode_vec(&body).ok()
        } else {
            None
        };
        return Some(Block {
            label: label.to_owned(),
            has_headers,
            der,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wanted_block_among_others() {
        let text = b"Certificate:\n  junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        let block = find(text, |l| l == "CERTIFICATE").unwrap();
        assert_eq!(block.label, "CERTIFICATE");
        assert_eq!(block.der.unwrap(), [0, 1, 2, 3]);
        assert!(find(text, |l| l == "PRIVATE KEY").is_none());
    }

    #[test]
    fn unterminated_or_bad_base64_has_no_body() {
        let block = find(b"-----BEGIN X-----\nAAEC\n", |_| true).unwrap();
        assert!(block.der.is_none());
        let block = find(b"-----BEGIN X-----\n!!!!\n-----END X-----\n", |_| true).unwrap();
        assert!(block.der.is_none());
    }
}
