//! Which vector instructions the CPU kernels use: the best this CPU has,
//! or at most AVX2 when `CYCLEGAN_SIMD=avx2` is set, so that both paths of
//! one binary can be run and tested against the reference on one AVX-512
//! machine (issue 16). The switch reaches every matrix product of the
//! convolutions (faer's AVX-512 or AVX2 micro-kernels, [`super::gemm`]) and
//! the bf16 products ([`super::bf16`], AVX-512 only), the Winograd
//! transforms (sixteen lanes on AVX-512, eight on AVX2) and the 7x7 direct
//! convolution's chunks; our other hot loops are AVX2 code on both. burn's own element-wise ops pick their kernels
//! themselves and are not switched.

use std::sync::OnceLock;

/// The environment variable that caps the instruction set.
pub const VAR: &str = "CYCLEGAN_SIMD";

/// Instruction sets the kernels are written for, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Neither AVX2 nor AVX-512 (or not x86-64): portable code.
    Baseline,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F.
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "AVX2",
            Level::Avx512 => "AVX-512",
        }
    }
}

/// What the CPU offers.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The cap `CYCLEGAN_SIMD` asks for: `None` when unset or empty; an error
/// naming the variable for a value other than `avx2` or `avx512`.
pub fn requested() -> Result<Option<Level>, String> {
    match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "avx2" => Ok(Some(Level::Avx2)),
            "avx512" => Ok(Some(Level::Avx512)),
            _ => Err(format!("{VAR}={v}: expected avx2 or avx512")),
        },
        Err(e) => Err(format!("{VAR}: {e}")),
    }
}

/// The level the kernels run at: what the CPU has, capped by
/// `CYCLEGAN_SIMD` (an unreadable value is refused by the command line
/// before any kernel runs; here it caps nothing). Read once.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let have = detected();
        match requested() {
            Ok(Some(cap)) => have.min(cap),
            _ => have,
        }
    })
}

/// Whether our AVX2 kernels may run: the CPU has AVX2 and FMA.
pub fn avx2() -> bool {
    level() >= Level::Avx2
}

/// Whether `CYCLEGAN_SIMD` holds the kernels below what the CPU has.
pub fn capped() -> bool {
    level() < detected()
}

/// Whether the CPU has AVX512_BF16's `vdpbf16ps`.
pub fn bf16_detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the kernels may use `vdpbf16ps`: the CPU has it and the level
/// is not capped below AVX-512.
pub fn bf16_dot() -> bool {
    level() >= Level::Avx512 && bf16_detected()
}
