//! The machine's arithmetic peak per core, for `cyclegan bench --cases
//! peak-f32-avx2,peak-f32-avx512,peak-bf16`: how many multiply-adds one core
//! retires when nothing else limits it, so that each benchmark case's
//! achieved fraction of it can be stated (issue 16).
//!
//! Twelve independent accumulators (more than an FMA unit's latency times
//! its issue width on current x86 cores) run a fixed number of fused
//! multiply-adds on registers only: no memory traffic, one thread.

/// Which instruction is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Peak {
    /// `vfmadd` on 8 f32 lanes (AVX2 + FMA).
    F32Avx2,
    /// `vfmadd` on 16 f32 lanes (AVX-512F).
    F32Avx512,
    /// `vdpbf16ps`: 32 bf16 products summed pairwise into 16 f32 lanes (AVX512_BF16).
    Bf16,
}

/// Accumulators kept in flight.
const CHAINS: usize = 12;

impl Peak {
    pub const ALL: [Peak; 3] = [Peak::F32Avx2, Peak::F32Avx512, Peak::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Peak::F32Avx2 => "peak-f32-avx2",
            Peak::F32Avx512 => "peak-f32-avx512",
            Peak::Bf16 => "peak-bf16",
        }
    }

    /// Whether this CPU has the instruction; `None` if so, else what it lacks.
    pub fn missing(self) -> Option<&'static str> {
        #[cfg(target_arch = "x86_64")]
        {
            let has = match self {
                Peak::F32Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                Peak::F32Avx512 => is_x86_feature_detected!("avx512f"),
                Peak::Bf16 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
            };
            if has {
                return None;
            }
        }
        Some(match self {
            Peak::F32Avx2 => "AVX2 and FMA",
            Peak::F32Avx512 => "AVX-512F",
            Peak::Bf16 => "AVX512_BF16",
        })
    }

    /// Floating-point operations (a multiply-add is two) of `iterations` rounds.
    pub fn flops(self, iterations: u64) -> f64 {
        let per_instruction = match self {
            Peak::F32Avx2 => 8 * 2,
            Peak::F32Avx512 => 16 * 2,
            Peak::Bf16 => 32 * 2,
        };
        (iterations * CHAINS as u64 * per_instruction) as f64
    }

    /// Run `iterations` rounds of [`CHAINS`] instructions; the result keeps
    /// the compiler from dropping the work. Panics if the CPU lacks the instruction.
    pub fn run(self, iterations: u64) -> f32 {
        assert!(self.missing().is_none(), "{} needs {}", self.name(), self.missing().unwrap_or(""));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features each kernel is compiled for were detected above.
        unsafe {
            match self {
                Peak::F32Avx2 => x86::fma256(iterations),
                Peak::F32Avx512 => x86::fma512(iterations),
                Peak::Bf16 => x86::dpbf16(iterations),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no x86 instructions here")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iterations: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0f32; 8];
        let sum = acc.iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iterations: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let sum = acc.iter().fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16(iterations: u64) -> f32 {
        // bf16 1.0 and 1/1024 in every half of every lane.
        let a: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi16(0x3f80)) };
        let b: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi16(0x3a80)) };
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm512_dpbf16_ps(*x, a, b);
            }
        }
        let sum = acc.iter().fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x));
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels compute what they claim (so the count of operations is the
    /// count of work done): each bf16 round adds 2 * (1 * 1/1024) per lane.
    #[test]
    fn kernels_compute_their_sums() {
        if Peak::Bf16.missing().is_none() {
            let got = Peak::Bf16.run(1024) as f64;
            let want = (CHAINS * 16) as f64 * 1024.0 * 2.0 / 1024.0;
            assert!((got - want).abs() < 1e-3 * want, "bf16: {got} vs {want}");
        }
        for p in [Peak::F32Avx2, Peak::F32Avx512] {
            if p.missing().is_none() {
                // x <- 0.999999 x + 1e-7 from 1.0 stays within (0.9, 1]: lanes times chains.
                let lanes = if p == Peak::F32Avx2 { 8.0 } else { 16.0 };
                let got = p.run(1000) as f64;
                assert!(got > 0.9 * lanes * CHAINS as f64 && got <= lanes * CHAINS as f64 + 1e-3, "{p:?}: {got}");
            }
        }
        assert_eq!(Peak::F32Avx512.flops(10), 10.0 * 12.0 * 32.0);
    }
}
