//! numpy's legacy `RandomState` (MT19937), as far as `choice(n, k,
//! replace=False)` needs it, so KID picks the very subsets torch-fidelity
//! picks with the same seed: `permutation(n)[:k]`, the permutation a
//! Fisher-Yates shuffle drawing bounded integers by masked rejection.

const N: usize = 624;
const M: usize = 397;

pub struct RandomState {
    mt: [u32; N],
    pos: usize,
}

impl RandomState {
    /// `np.random.RandomState(seed)` for a seed below 2^32.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { mt, pos: N }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            for i in 0..N {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
            }
            self.pos = 0;
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..=max` (numpy's `random_interval`).
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        assert!(max <= u32::MAX as u64, "sets of more than 2^32 items");
        loop {
            let v = self.next_u32() as u64 & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `choice(n, k, replace=False)`: the first `k` of a random permutation of `0..n`.
    pub fn choice_without_replacement(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut items: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u64) as usize;
            items.swap(i, j);
        }
        items.truncate(k);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_output() {
        // MT19937 seeded with 5489 (the reference implementation's default): first output 3499211612
        let mut r = RandomState::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        assert_eq!(r.next_u32(), 581_869_302);
    }
}
