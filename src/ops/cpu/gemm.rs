//! A safe face on faer's matrix multiply: row-major matrices given by a
//! slice and row/column strides. faer's kernels use AVX-512 where the CPU
//! has it (the `gemm` crate, which burn's flex uses, stops at AVX2 on stable
//! Rust): 15-25 % off a generator forward and a training step on such a
//! machine, and Inception at 1.5x (BENCHMARKS.md).

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
    let accum = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
    faer::linalg::matmul::matmul(c, accum, a, b, 1.0f32, par);
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
}
