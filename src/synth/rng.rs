//! A small deterministic random generator for synthetic traffic and randomised tests: the same
//! seed always gives the same capture, so a failing case can be replayed.

/// SplitMix64: tiny, fast and deterministic for a given seed; statistical quality is ample for
/// picking sizes and interleavings.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `0..n` as an index (`n` of 0 counts as 1).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n.max(1) as u64) as usize
    }

    pub fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p as u64
    }
}

