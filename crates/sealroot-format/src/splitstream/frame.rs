//! Uncompressed zstd frames: the form sealroot writes a split stream's compressed sections in
//! (see the parent module), and the only one it reads.

use super::{ParseError, Section};

/// The zstd frame magic, `0xFD2FB528` little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The frame header descriptor's single-segment flag (no window descriptor follows).
const ZSTD_SINGLE_SEGMENT: u8 = 0x20;
/// The largest block zstd allows: 128 KiB.
const ZSTD_BLOCK_MAX: usize = 128 << 10;

/// `content` as an uncompressed zstd frame (the parent module says which); `content` is at most
/// [`super::FRAME_CONTENT_MAX`] bytes.
pub(super) fn frame(content: &[u8]) -> Vec<u8> {
    let n = content.len() as u64;
    let mut out = Vec::with_capacity(content.len() + 16 + 3 * (content.len() / ZSTD_BLOCK_MAX));
    out.extend_from_slice(&ZSTD_MAGIC);
    // Frame_Content_Size_flag in the top two bits: 0 → 1 byte (single segment only), 1 → 2
    // bytes holding size − 256, 2 → 4 bytes, 3 → 8 bytes.
    if n < 256 {
        out.push(ZSTD_SINGLE_SEGMENT);
        out.push(n as u8);
    } else if n < 256 + 65536 {
        out.push(ZSTD_SINGLE_SEGMENT | 1 << 6);
        out.extend_from_slice(&((n - 256) as u16).to_le_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(ZSTD_SINGLE_SEGMENT | 2 << 6);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(ZSTD_SINGLE_SEGMENT | 3 << 6);
        out.extend_from_slice(&n.to_le_bytes());
    }
    let mut blocks = content.chunks(ZSTD_BLOCK_MAX).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&block_header(true, 0));
    }
    while let Some(block) = blocks.next() {
        out.extend_from_slice(&block_header(blocks.peek().is_none(), block.len()));
        out.extend_from_slice(block);
    }
    out
}

/// A raw block's 3-byte header: bit 0 last, bits 1–2 type (0 raw), bits 3–23 size.
fn block_header(last: bool, size: usize) -> [u8; 3] {
    let v = u32::from(last) | (size as u32) << 3;
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// The content of a frame [`frame`] wrote: single segment, no dictionary, no checksum, raw
/// blocks only. Other encodings of the same content are caught by [`super::parse`]'s canonical check.
pub(super) fn unframe(section: Section, bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    let bad = |reason: &str| ParseError::Frame {
        section,
        reason: reason.to_owned(),
    };
    let rest = bytes
        .strip_prefix(&ZSTD_MAGIC)
        .ok_or_else(|| bad("not a zstd frame"))?;
    let (&descriptor, rest) = rest
        .split_first()
        .ok_or_else(|| bad("truncated frame header"))?;
    if descriptor & ZSTD_SINGLE_SEGMENT == 0 || descriptor & 0x1f != 0 {
        return Err(bad(
            "a frame header sealroot does not write (window, dictionary or checksum)",
        ));
    }
    let fcs_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let fcs = rest
        .get(..fcs_len)
        .ok_or_else(|| bad("truncated frame header"))?;
    let mut le = [0u8; 8];
    le[..fcs_len].copy_from_slice(fcs);
    let declared = u64::from_le_bytes(le) + if fcs_len == 2 { 256 } else { 0 };
    let mut rest = &rest[fcs_len..];
    let mut out = Vec::new();
    loop {
        let Some(h) = rest.get(..3) else {
            return Err(bad("truncated block header"));
        };
        let v = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        let (last, kind, size) = (v & 1 == 1, (v >> 1) & 3, (v >> 3) as usize);
        if kind != 0 {
            return Err(bad(
                "a compressed block (composefs-rs compresses; sealroot reads only its references)",
            ));
        }
        if size > ZSTD_BLOCK_MAX {
            return Err(bad("a block over 128 KiB"));
        }
        let block = rest
            .get(3..3 + size)
            .ok_or_else(|| bad("truncated block"))?;
        out.extend_from_slice(block);
        rest = &rest[3 + size..];
        if out.len() as u64 > declared {
            return Err(bad("more content than the frame header says"));
        }
        if last {
            break;
        }
    }
    if out.len() as u64 != declared {
        return Err(bad("less content than the frame header says"));
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the frame"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_choose_the_shortest_size_field_and_split_blocks() {
        for n in [0usize, 1, 255, 256, 65791, 65792, 200_000, 300_000] {
            let content: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let f = frame(&content);
            let fcs_len = [1usize, 2, 4, 8][usize::from(f[4] >> 6)];
            let expect = if n < 256 {
                1
            } else if n < 65792 {
                2
            } else {
                4
            };
            assert_eq!(fcs_len, expect, "{n}");
            let blocks = n.div_ceil(ZSTD_BLOCK_MAX).max(1);
            assert_eq!(f.len(), 5 + fcs_len + 3 * blocks + n, "{n}");
            assert_eq!(unframe(Section::Stream, &f).unwrap(), content, "{n}");
        }
    }

    #[test]
    fn unframe_refuses_other_frames() {
        let good = frame(b"abc");
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        cases.push((b"nope".to_vec(), "not a zstd frame"));
        let mut checksum = good.clone();
        checksum[4] |= 4;
        cases.push((checksum, "frame header"));
        let mut compressed = good.clone();
        compressed[6] |= 4;
        cases.push((compressed, "compressed"));
        let mut trailing = good.clone();
        trailing.push(0);
        cases.push((trailing, "after the frame"));
        cases.push((good[..good.len() - 1].to_vec(), "truncated block"));
        let mut short = good.clone();
        short[5] = 4;
        cases.push((short, "less content"));
        let mut long = good.clone();
        long[5] = 2;
        cases.push((long, "more content"));
        for (bytes, want) in cases {
            let e = unframe(Section::Stream, &bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}
