//! Small deterministic pseudo-random generators.
//!
//! Each workload uses the generator of the program it re-creates, so the
//! random streams (and hence the allocation patterns) have the same shape as
//! in mimalloc-bench. None of them needs to be of statistical quality.

/// SplitMix64 as a *hash step*: mstress's `pick()` (Sebastiano Vigna's
/// finaliser applied to the previous output, not the usual Weyl sequence).
#[derive(Clone, Debug)]
pub struct SplitMixHash(pub u64);

impl SplitMixHash {
    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        self.0 = x;
        x
    }

    /// mstress's `chance(perc)`: true with probability (perc + 1) / 100.
    #[inline]
    pub fn chance(&mut self, perc: u64) -> bool {
        self.next() % 100 <= perc
    }
}

/// Wolfram Gloger's `lran2` (a shuffled linear congruential generator),
/// used by larson. Yields values in `0..714025`.
#[derive(Clone)]
pub struct Lran2 {
    x: i64,
    y: i64,
    v: [i64; 97],
}

impl Lran2 {
    const MAX: i64 = 714_025;
    const IA: i64 = 1366;
    const IC: i64 = 150_889;

    pub fn new(seed: i64) -> Self {
        let mut x = ((Self::IC - seed) % Self::MAX).abs();
        let mut v = [0i64; 97];
        for slot in v.iter_mut() {
            x = (Self::IA * x + Self::IC) % Self::MAX;
            *slot = x;
        }
        let x = (Self::IA * x + Self::IC) % Self::MAX;
        Lran2 { x, y: x, v }
    }

    #[inline]
    pub fn next(&mut self) -> i64 {
        let j = (self.y % 97) as usize;
        self.y = self.v[j];
        self.x = (Self::IA * self.x + Self::IC) % Self::MAX;
        self.v[j] = self.x;
        self.y
    }
}

/// The xorshift variant of alloc-test (after Arvid Gerstmann): a 64-bit
/// xorshift state whose output is multiplied before taking the high half.
#[derive(Clone, Debug)]
pub struct XorShiftMul(pub u64);

impl XorShiftMul {
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        let ret = self.0.wrapping_mul(0xd989_bcac_c137_dcd5);
        self.0 ^= self.0 >> 11;
        self.0 ^= self.0 << 31;
        self.0 ^= self.0 >> 18;
        (ret >> 32) as u32
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        (hi << 32) + self.next_u32() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lran2_is_deterministic_and_in_range() {
        let mut a = Lran2::new(4141);
        let mut b = Lran2::new(4141);
        for _ in 0..10_000 {
            let x = a.next();
            assert_eq!(x, b.next());
            assert!((0..Lran2::MAX).contains(&x));
        }
    }

    #[test]
    fn splitmix_chance_is_roughly_right() {
        let mut r = SplitMixHash(43);
        let hits = (0..100_000).filter(|_| r.chance(50)).count();
        assert!((49_000..53_000).contains(&hits), "{hits}");
    }
}
