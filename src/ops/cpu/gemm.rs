//! A safe face on faer's matrix multiply: row-major matrices given by a
//! slice and row/column strides. faer's kernels use AVX-512 where the CPU
//! has it (the `gemm` crate, which burn's flex uses, stops at AVX2 on stable
//! Rust): 15-25 % off a generator forward and a training step on such a
//! machine, and Inception at 1.5x (BENCHMARKS.md). With `CYCLEGAN_SIMD=avx2`
//! on such a machine the products go straight to faer's own x86 back end
//! (`private-gemm-x86`) with its AVX2 kernels ([`super::simd`]).

/// A read-only matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A contiguous row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: cols, cs: 1 }
    }

    /// The transpose of a contiguous row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self { data, rs: 1, cs: cols }
    }

    fn span(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 { 0 } else { (rows - 1) * self.rs + (cols - 1) * self.cs + 1 }
    }
}

/// Whether a multiply may use all cores (false inside an already parallel loop).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    All,
    One,
}

/// `c = a * b` (or `c += a * b` with `accumulate`), `a` m x k, `b` k x n,
/// `c` contiguous row-major m x n.
pub fn matmul(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], accumulate: bool, threads: Threads) {
    assert!(a.data.len() >= a.span(m, k), "lhs too short");
    assert!(b.data.len() >= b.span(k, n), "rhs too short");
    assert!(c.len() >= m * n, "output too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let par = match threads {
        Threads::All => faer::Par::rayon(0),
        Threads::One => faer::Par::Seq,
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    let (a, b, c) = unsafe {
        (
            faer::MatRef::from_raw_parts(a.data.as_ptr(), m, k, a.rs as isize, a.cs as isize),
            faer::MatRef::from_raw_parts(b.data.as_ptr(), k, n, b.rs as isize, b.cs as isize),
            faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, n as isize, 1),
        )
    };
    #[cfg(target_arch = "x86_64")]
    if super::simd::capped() {
        // SAFETY: as above; capped means held to AVX2 on a CPU with AVX-512.
        unsafe { avx2(m, n, k, a, b, c, accumulate, par.degree()) };
        return;
    }
    let accum = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
    faer::linalg::matmul::matmul(c, accum, a, b, 1.0f32, par);
}

/// What faer does for a large f32 product on an AVX2 machine (faer picks
/// AVX-512 by its own CPU detection, with no override), for any size.
///
/// # Safety
/// The views must stay inside their slices for `m x k`, `k x n` and `m x n`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2(m: usize, n: usize, k: usize, a: faer::MatRef<f32>, b: faer::MatRef<f32>, c: faer::MatMut<f32>, accumulate: bool, threads: usize) {
    use private_gemm_x86 as pg;
    // faer's own rule: one thread below 4096 multiply-adds of f32s.
    let threads = if m * n * k >= 4096 * 4 { threads } else { 1 };
    let alpha = 1.0f32;
    // SAFETY: the caller keeps the views in bounds; the pointers and strides
    // are faer's, as faer passes them for the same call.
    unsafe {
        pg::gemm(
            pg::DType::F32,
            pg::IType::U64,
            pg::InstrSet::Avx256,
            m,
            n,
            k,
            c.as_ptr_mut() as *mut (),
            c.row_stride(),
            c.col_stride(),
            std::ptr::null(),
            std::ptr::null(),
            pg::DstKind::Full,
            if accumulate { pg::Accum::Add } else { pg::Accum::Replace },
            a.as_ptr() as *const (),
            a.row_stride(),
            a.col_stride(),
            false,
            std::ptr::null(),
            0,
            b.as_ptr() as *const (),
            b.row_stride(),
            b.col_stride(),
            false,
            &raw const alpha as *const (),
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_with_transposes_and_accumulation() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32).sin()).collect(); // n x k, used transposed
        let mut c = vec![1.0f32; m * n];
        matmul(m, n, k, Mat::rows(&a, k), Mat::transposed(&bt, k), &mut c, true, Threads::All);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5, "({i},{j}) {} vs {want}", c[i * n + j]);
            }
        }
    }

    /// The kernels `CYCLEGAN_SIMD=avx2` switches to, on every layout the
    /// convolutions use, against a naive product.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_match_naive() {
        if !std::arch::is_x86_feature_detected!("avx2") || !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        for (m, n, k) in [(3, 5, 2), (37, 61, 29), (128, 300, 96)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            for (accumulate, transposed) in [(false, false), (true, true)] {
                let (am, bm) = if transposed {
                    // a stored k x m and b stored n x k, both read transposed
                    let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                    (at, bt)
                } else {
                    (a.clone(), b.clone())
                };
                let (av, bv) = if transposed { (Mat::transposed(&am, m), Mat::transposed(&bm, k)) } else { (Mat::rows(&am, k), Mat::rows(&bm, n)) };
                let mut c = vec![0.5f32; m * n];
                // SAFETY: the views are the slices' own shapes.
                let (fa, fb, fc) = unsafe {
                    (
                        faer::MatRef::from_raw_parts(av.data.as_ptr(), m, k, av.rs as isize, av.cs as isize),
                        faer::MatRef::from_raw_parts(bv.data.as_ptr(), k, n, bv.rs as isize, bv.cs as isize),
                        faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, n as isize, 1),
                    )
                };
                unsafe { avx2(m, n, k, fa, fb, fc, accumulate, 2) };
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
                        let want = dot + if accumulate { 0.5 } else { 0.0 };
                        let got = c[i * n + j] as f64;
                        assert!((got - want).abs() < 1e-4, "{m}x{n}x{k} ({i},{j}): {got} vs {want}");
                    }
                }
            }
        }
    }
}
