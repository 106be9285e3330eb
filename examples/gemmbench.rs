use std::time::Instant;
fn main() {
    for &(m, k, n) in &[(256usize, 2304usize, 4096usize), (4096, 2304, 256), (256, 256, 256), (64, 147, 65536), (3, 3136, 65536)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let mut ts = vec![];
        for _ in 0..6 {
            let t = Instant::now();
            unsafe {
                gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
            }
            ts.push(t.elapsed().as_secs_f64());
        }
        ts.sort_by(f64::total_cmp);
        println!("gemm m={m} k={k} n={n}: {:.2} ms {:.1} GFLOP/s", ts[3]*1e3, 2.0*(m*k*n) as f64/ts[3]/1e9);
    }
}
