//! The tests' one deterministic random generator.

/// SplitMix64: tiny, fast, and good enough to pick shapes of trees and mutations. Seeded, so
/// a failing test names its seed and reproduces; not for anything that must be unpredictable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (every seed, 0 included, gives a different stream).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EA1_2007_F0CA_CC1A)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A `usize` in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// A `usize` in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.index(hi - lo + 1)
    }

    /// `len` random bytes (eight from each draw, so that megabytes come quickly).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
        out
    }

    /// `len` bytes without NUL (and without `/` when `no_slash`): mostly printable ASCII,
    /// sometimes any byte.
    pub fn text(&mut self, len: usize, no_slash: bool) -> Vec<u8> {
        (0..len)
            .map(|_| loop {
                let b = if self.one_in(4) {
                    self.next_u64() as u8
                } else {
                    b' ' + self.below(95) as u8
                };
                if b != 0 && !(no_slash && b == b'/') {
                    break b;
                }
            })
            .collect()
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }
}
