//! PEM blocks found the way OpenSSL's `PEM_read_bio_*` finds them: text and other blocks around
//! them are skipped, and the first block with a wanted label is taken. `pem-rfc7468` decodes
//! the block; finding it is ours because that crate reads a document that is exactly one block
//! (text may precede it, nothing may follow), while key files often hold more (`openssl ecparam
//! -genkey` writes `EC PARAMETERS` first, `openssl x509 -text` writes the text first, a
//! combined file holds a key and a certificate).

use zeroize::Zeroizing;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// One PEM block.
#[derive(Debug)]
pub(crate) struct Block<'a> {
    /// The label between `-----BEGIN ` and `-----`, e.g. `PRIVATE KEY`.
    pub label: &'a str,
    /// The decoded body (wiped when dropped: it may be a private key), or why `pem-rfc7468`
    /// refused the block (bad base64, RFC 1421 headers, no END line...).
    pub der: Result<Zeroizing<Vec<u8>>, pem_rfc7468::Error>,
}

/// The label of a `-----BEGIN LABEL-----` line (surrounding whitespace trimmed).
fn begin_label(line: &[u8]) -> Option<&str> {
    let label = line.strip_prefix(BEGIN)?.strip_suffix(DASHES)?;
    std::str::from_utf8(label).ok()
}

/// Whether `line` (trimmed) is `-----END LABEL-----`.
fn is_end(line: &[u8], label: &str) -> bool {
    line.strip_prefix(END)
        .and_then(|rest| rest.strip_suffix(DASHES))
        .is_some_and(|rest| rest == label.as_bytes())
}

/// The first block whose label satisfies `wanted`, if any. A block without an END line runs
/// to the end of `text` (and `pem-rfc7468` then says what is missing).
pub(crate) fn find(text: &[u8], wanted: impl Fn(&str) -> bool) -> Option<Block<'_>> {
    let mut open: Option<(&str, usize)> = None;
    let mut line_start = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let start = line_start;
        line_start += line.len();
        let content_start = start + (line.len() - line.trim_ascii_start().len());
        let trimmed = line.trim_ascii();
        match open {
            None => {
                open = begin_label(trimmed)
                    .filter(|label| wanted(label))
                    .map(|label| (label, content_start));
            }
            Some((label, begin)) if is_end(trimmed, label) => {
                return Some(decode(label, &text[begin..content_start + trimmed.len()]));
            }
            Some(_) => {}
        }
    }
    open.map(|(label, begin)| decode(label, &text[begin..]))
}

fn decode<'a>(label: &'a str, block: &[u8]) -> Block<'a> {
    Block {
        label,
        der: pem_rfc7468::decode_vec(block).map(|(_, der)| Zeroizing::new(der)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wanted_block_among_others() {
        let text = b"Certificate:\n  junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n  -----BEGIN CERTIFICATE-----\r\nAAECAw==\r\n-----END CERTIFICATE-----  \r\ntrailing text\n";
        let block = find(text, |l| l == "CERTIFICATE").unwrap();
        assert_eq!(block.label, "CERTIFICATE");
        assert_eq!(block.der.unwrap().as_slice(), [0, 1, 2, 3]);
        assert!(find(text, |l| l == "PRIVATE KEY").is_none());
    }

    #[test]
    fn unterminated_bad_base64_and_headers_are_errors() {
        let block = find(b"-----BEGIN X-----\nAAEC\n", |_| true).unwrap();
        assert!(block.der.is_err());
        let block = find(b"-----BEGIN X-----\n!!!!\n-----END X-----\n", |_| true).unwrap();
        assert!(block.der.is_err());
        let block = find(
            b"-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END X-----\n",
            |_| true,
        )
        .unwrap();
        assert_eq!(block.der.unwrap_err(), pem_rfc7468::Error::HeaderDisallowed);
    }
}
