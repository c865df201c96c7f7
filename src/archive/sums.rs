//! Per-block checksums of a copy: a CRC-32 of every [`SUM_BLOCK`] bytes, kept in a sidecar
//! file `<seq>.sums` next to copy `<seq>`, so that recall can check each block before a
//! reader sees it instead of learning at the end, from the whole-file digests, that it handed
//! out bytes that are not the file's.
//!
//! The sidecar is computed in the same pass as the copy whenever the copy's data goes through
//! user space (always with a digest; without one only where the kernel cannot copy) and is
//! written before the copy is renamed into place.
//! Its format, all integers little-endian:
//!
//! ```text
//! magic "VSBSUMS\n" | version u32 (1) | flags u32 (0) | block size u64 | copy size u64 |
//! count u64 | count x CRC-32 u32 | CRC-32 u32 of every byte before it
//! ```
//!
//! `count` is `ceil(copy size / block size)`; the last block may be short. CRC-32 is the
//! IEEE one (as zlib's `crc32` and the manifest's line CRC).

use std::ops::Range;

use super::copy::copy_name;

/// Bytes covered by one CRC in the sidecar a copy writes: 1 MiB, independent of the copy's
/// own block size.
pub const SUM_BLOCK: u64 = 1 << 20;
/// Smallest block size a sidecar may declare (bounds the CRCs per byte of copy).
pub const MIN_SUM_BLOCK: u64 = 4 << 10;
/// Largest block size a sidecar may declare.
pub const MAX_SUM_BLOCK: u64 = 64 << 20;
/// Suffix of a copy's sidecar: `<seq>.sums`.
pub const SUMS_SUFFIX: &str = ".sums";
/// Suffix of a sidecar still being written: `<seq>.sums.partial`; a crash can leave one.
pub const SUMS_PARTIAL_SUFFIX: &str = ".sums.partial";

const MAGIC: [u8; 8] = *b"VSBSUMS\n";
const VERSION: u32 = 1;
/// Magic, version, flags, block size, copy size, count.
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8;
/// The CRC of the whole sidecar.
const TRAILER_LEN: usize = 4;

/// The per-block CRCs of one copy, as read from its sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSums {
    /// Bytes per block (the last block may be shorter).
    pub block_size: u64,
    /// Size of the copy the sums describe.
    pub size: u64,
    /// CRC-32 of each block, in order: `ceil(size / block_size)` of them.
    pub crcs: Vec<u32>,
}

impl BlockSums {
    /// The byte range of block `index` in the copy, or `None` past the last block.
    pub fn range(&self, index: usize) -> Option<Range<u64>> {
        if index >= self.crcs.len() {
            return None;
        }
        let start = index as u64 * self.block_size;
        Some(start..(start + self.block_size).min(self.size))
    }

    /// True when `data` is exactly block `index` of the copy: its length is the block's and
    /// its CRC-32 the recorded one. False for an index past the last block.
    pub fn check(&self, index: usize, data: &[u8]) -> bool {
        match self.range(index) {
            Some(r) => {
                data.len() as u64 == r.end - r.start && crc32fast::hash(data) == self.crcs[index]
            }
            None => false,
        }
    }

    /// The sidecar's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 4 * self.crcs.len() + TRAILER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.crcs.len() as u64).to_le_bytes());
        for crc in &self.crcs {
            out.extend_from_slice(&crc.to_le_bytes());
        }
        let whole = crc32fast::hash(&out);
        out.extend_from_slice(&whole.to_le_bytes());
        out
    }
}

/// What a sidecar's header says, checked against the size of the copy it sits beside.
pub(crate) struct Header {
    /// Bytes per block.
    pub block_size: u64,
    /// Number of CRCs.
    pub count: u64,
    /// The sidecar's whole length these imply.
    pub file_len: u64,
}

/// Length of the header, the part [`parse_header`] needs before anything is allocated.
pub(crate) const fn header_len() -> usize {
    HEADER_LEN
}

/// Checks a sidecar's header against the copy's size and the sidecar's length, so that
/// nothing is allocated for a header that does not describe this copy.
pub(crate) fn parse_header(
    head: &[u8],
    copy_size: u64,
    sidecar_len: u64,
) -> Result<Header, String> {
    if head.len() < HEADER_LEN {
        return Err(format!(
            "{sidecar_len} bytes long, shorter than the {HEADER_LEN}-byte header"
        ));
    }
    if head[..8] != MAGIC {
        return Err(format!("bad magic {:02x?}", &head[..8]));
    }
    let version = u32_at(head, 8);
    if version != VERSION {
        return Err(format!("version {version}, this build reads {VERSION}"));
    }
    let block_size = u64_at(head, 16);
    if !(MIN_SUM_BLOCK..=MAX_SUM_BLOCK).contains(&block_size) {
        return Err(format!(
            "block size {block_size} outside {MIN_SUM_BLOCK}..={MAX_SUM_BLOCK}"
        ));
    }
    let size = u64_at(head, 24);
    if size != copy_size {
        return Err(format!(
            "describes {size} bytes but the copy has {copy_size}"
        ));
    }
    let count = u64_at(head, 32);
    let want = copy_size.div_ceil(block_size);
    if count != want {
        return Err(format!(
            "{count} block sums for {copy_size} bytes in blocks of {block_size} (want {want})"
        ));
    }
    // count <= copy size / 4 KiB + 1: the length fits in a u64 and the CRCs are bounded by
    // the copy itself.
    let file_len = HEADER_LEN as u64 + 4 * count + TRAILER_LEN as u64;
    if sidecar_len != file_len {
        return Err(format!(
            "{sidecar_len} bytes long, {count} block sums need {file_len}"
        ));
    }
    Ok(Header {
        block_size,
        count,
        file_len,
    })
}

/// Decodes a whole sidecar whose header [`parse_header`] accepted as `header`.
pub(crate) fn decode(bytes: &[u8], header: &Header, size: u64) -> Result<BlockSums, String> {
    if bytes.len() as u64 != header.file_len {
        return Err(format!(
            "read {} bytes, expected {}",
            bytes.len(),
            header.file_len
        ));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let stored = u32_at(trailer, 0);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(format!(
            "sidecar CRC mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    let crcs = body[HEADER_LEN..]
        .chunks_exact(4)
        .map(|c| u32_at(c, 0))
        .collect::<Vec<u32>>();
    debug_assert_eq!(crcs.len() as u64, header.count);
    Ok(BlockSums {
        block_size: header.block_size,
        size,
        crcs,
    })
}

/// The sidecar's file name for copy `seq`.
pub fn sums_name(seq: u64) -> String {
    format!("{}{SUMS_SUFFIX}", copy_name(seq))
}

/// For a sidecar's file name (`<digits>.sums` or `<digits>.sums.partial`): the name of its
/// copy and whether it is a partial one.
pub(crate) fn sidecar_of_name(name: &str) -> Option<(&str, bool)> {
    let (copy, partial) = match name.strip_suffix(SUMS_PARTIAL_SUFFIX) {
        Some(copy) => (copy, true),
        None => (name.strip_suffix(SUMS_SUFFIX)?, false),
    };
    (!copy.is_empty() && copy.bytes().all(|b| b.is_ascii_digit())).then_some((copy, partial))
}

/// Computes the CRC of every `block_size` bytes of a stream fed in pieces of any size.
pub(crate) struct Summer {
    block_size: u64,
    hasher: crc32fast::Hasher,
    in_block: u64,
    size: u64,
    crcs: Vec<u32>,
}

impl Summer {
    /// A summer for blocks of `block_size` (> 0) bytes.
    pub fn new(block_size: u64) -> Summer {
        Summer {
            block_size,
            hasher: crc32fast::Hasher::new(),
            in_block: 0,
            size: 0,
            crcs: Vec::new(),
        }
    }

    /// Adds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            // At most block_size - in_block, which is < block_size: fits in usize when it is
            // compared with a slice length.
            let room = (self.block_size - self.in_block).min(data.len() as u64) as usize;
            self.hasher.update(&data[..room]);
            self.in_block += room as u64;
            data = &data[room..];
            if self.in_block == self.block_size {
                let done = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new());
                self.crcs.push(done.finalize());
                self.in_block = 0;
            }
        }
    }

    /// The sums of everything fed (a short last block included).
    pub fn finish(mut self) -> BlockSums {
        if self.in_block > 0 {
            self.crcs.push(self.hasher.finalize());
        }
        BlockSums {
            block_size: self.block_size,
            size: self.size,
            crcs: self.crcs,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn summer_gives_the_same_sums_however_the_stream_is_cut() {
        let block = MIN_SUM_BLOCK;
        let bytes = data(3 * block as usize + 100);
        let want: Vec<u32> = bytes.chunks(block as usize).map(crc32fast::hash).collect();
        for piece in [1usize, 999, block as usize, block as usize + 1, bytes.len()] {
            let mut s = Summer::new(block);
            for chunk in bytes.chunks(piece) {
                s.update(chunk);
            }
            let sums = s.finish();
            assert_eq!(sums.crcs, want, "fed in pieces of {piece}");
            assert_eq!(sums.size, bytes.len() as u64);
        }
    }

    #[test]
    fn encoded_sums_decode_to_the_same_and_check_each_block() {
        let block = MIN_SUM_BLOCK;
        for len in [0usize, 1, block as usize, 2 * block as usize + 5] {
            let bytes = data(len);
            let mut s = Summer::new(block);
            s.update(&bytes);
            let sums = s.finish();
            let enc = sums.encode();
            let head = parse_header(&enc, len as u64, enc.len() as u64).unwrap();
            assert_eq!(decode(&enc, &head, len as u64).unwrap(), sums, "len {len}");
            for (i, chunk) in bytes.chunks(block as usize).enumerate() {
                assert!(sums.check(i, chunk), "block {i} of {len} bytes");
                assert!(!sums.check(i, &chunk[1..]), "short block {i} accepted");
            }
            assert!(!sums.check(sums.crcs.len(), &[]), "index past the end");
        }
    }

    #[test]
    fn headers_that_do_not_fit_the_copy_are_refused_before_allocating() {
        let mut s = Summer::new(SUM_BLOCK);
        s.update(&data(10));
        let enc = s.finish().encode();
        let len = enc.len() as u64;
        let with = |at: usize, v: &[u8]| {
            let mut e = enc.clone();
            e[at..at + v.len()].copy_from_slice(v);
            e
        };
        let cases = [
            (with(0, b"X"), 10, len, "bad magic"),
            (with(8, &2u32.to_le_bytes()), 10, len, "version 2"),
            (with(16, &1u64.to_le_bytes()), 10, len, "block size 1"),
            (with(32, &u64::MAX.to_le_bytes()), 10, len, "block sums for"),
            (enc.clone(), 11, len, "describes 10 bytes"),
            (enc.clone(), 10, len + 1, "bytes long"),
        ];
        for (bytes, size, file_len, want) in cases {
            match parse_header(&bytes, size, file_len) {
                Err(e) => assert!(e.contains(want), "{want:?} not in {e:?}"),
                Ok(_) => panic!("accepted a header with {want:?}"),
            }
        }
    }

    #[test]
    fn sidecar_names_are_recognised() {
        assert_eq!(sums_name(12), "000000000012.sums");
        assert_eq!(
            sidecar_of_name("000000000012.sums"),
            Some(("000000000012", false))
        );
        assert_eq!(
            sidecar_of_name("000000000012.sums.partial"),
            Some(("000000000012", true))
        );
        assert_eq!(sidecar_of_name(".sums"), None);
        assert_eq!(sidecar_of_name("x.sums"), None);
        assert_eq!(sidecar_of_name("000000000012.partial"), None);
    }
}
