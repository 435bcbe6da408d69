//! A small gzip writer (RFC 1951 deflate in one block of fixed Huffman codes, RFC 1952
//! framing), so the profiler depends on no compression crate that could allocate through
//! the allocator it profiles.
//!
//! Matching is greedy LZ77 over a 32 KiB window with a single hash head per 3-byte prefix
//! (no chains): profiles are mostly repeated varints and names, which this catches. All
//! memory is [`MapVec`]s.

use super::mapvec::MapVec;

/// CRC-32 (IEEE) table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

const WINDOW: usize = 32 * 1024;
const HASH_BITS: u32 = 15;

struct Bits<'a> {
    out: &'a mut MapVec<u8>,
    acc: u64,
    n: u32,
    ok: bool,
}

impl Bits<'_> {
    /// Writes the low `n` bits of `v`, least significant first.
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= (v as u64) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.ok &= self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Writes a Huffman code of `n` bits (codes go most significant bit first).
    fn code(&mut self, code: u32, n: u32) {
        self.put(code.reverse_bits() >> (32 - n), n);
    }

    fn flush(&mut self) {
        if self.n > 0 {
            self.ok &= self.out.push(self.acc as u8);
        }
        self.acc = 0;
        self.n = 0;
    }

    /// The fixed literal/length code of symbol `sym` (RFC 1951 3.2.6).
    fn literal(&mut self, sym: u32) {
        match sym {
            0..=143 => self.code(0x30 + sym, 8),
            144..=255 => self.code(0x190 + sym - 144, 9),
            256..=279 => self.code(sym - 256, 7),
            _ => self.code(0xc0 + sym - 280, 8),
        }
    }

    fn matched(&mut self, len: usize, dist: usize) {
        let li = LEN_BASE.partition_point(|&b| b as usize <= len) - 1;
        self.literal(257 + li as u32);
        self.put((len - LEN_BASE[li] as usize) as u32, LEN_EXTRA[li] as u32);
        let di = DIST_BASE.partition_point(|&b| b as usize <= dist) - 1;
        self.code(di as u32, 5);
        self.put(
            (dist - DIST_BASE[di] as usize) as u32,
            DIST_EXTRA[di] as u32,
        );
    }
}

fn hash3(d: &[u8]) -> usize {
    let v = u32::from(d[0]) | u32::from(d[1]) << 8 | u32::from(d[2]) << 16;
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// `data` as a gzip member. None if out of memory.
pub fn compress(data: &[u8]) -> Option<MapVec<u8>> {
    let mut out = MapVec::new();
    // Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    // SAFETY: zero is a valid u32 (0: no position yet; positions are stored + 1).
    let mut head = unsafe { MapVec::<u32>::zeroed(1 << HASH_BITS) }?;
    let mut w = Bits {
        out: &mut out,
        acc: 0,
        n: 0,
        ok: true,
    };
    w.put(1, 1); // BFINAL
    w.put(1, 2); // BTYPE = 01, fixed Huffman codes
    let mut i = 0;
    while i < data.len() {
        let mut best = 0;
        let mut dist = 0;
        if i + 3 <= data.len() {
            let h = hash3(&data[i..]);
            let cand = head[h] as usize;
            head[h] = i as u32 + 1;
            if cand != 0 && i - (cand - 1) <= WINDOW {
                let c = cand - 1;
                let max = (data.len() - i).min(258);
                let mut l = 0;
                while l < max && data[c + l] == data[i + l] {
                    l += 1;
                }
                if l >= 3 {
                    best = l;
                    dist = i - c;
                }
            }
        }
        if best >= 3 {
            w.matched(best, dist);
            // Index the positions inside the match too (better matches later).
            for j in i + 1..(i + best).min(data.len().saturating_sub(2)) {
                head[hash3(&data[j..])] = j as u32 + 1;
            }
            i += best;
        } else {
            w.literal(data[i] as u32);
            i += 1;
        }
    }
    w.literal(256);
    w.flush();
    let ok = w.ok;
    ok.then_some(())?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc32(data).to_le_bytes());
    trailer[4..].copy_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&trailer).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn crc_of_known_strings() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    /// gzip's own `gzip -d` (an independent inflater) gets the input back.
    #[test]
    fn round_trips_through_gunzip() {
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), b"a".to_vec(), b"abcabcabcabcabc".to_vec()];
        let mut x: u32 = 1;
        let mut v = Vec::new();
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Runs, repeats at all distances and noise.
            v.push(if i % 7 == 0 {
                (x >> 24) as u8
            } else {
                (i % 251) as u8
            });
        }
        inputs.push(v);
        for input in inputs {
            let z = compress(&input).unwrap();
            let mut child = std::process::Command::new("gzip")
                .arg("-dc")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("gzip");
            let mut stdin = child.stdin.take().unwrap();
            let data = z.to_vec();
            let t = std::thread::spawn(move || {
                use std::io::Write;
                stdin.write_all(&data).unwrap();
            });
            let mut back = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut back).unwrap();
            t.join().unwrap();
            assert!(child.wait().unwrap().success());
            assert_eq!(back, input);
        }
    }
}
