use cyclegan::ops::cpu::{Nchw, conv::{self, Geometry}, pad, norm};
use std::time::Instant;

fn t<F: FnMut()>(name: &str, fl: f64, mut f: F) {
    f();
    let mut ts = vec![];
    for _ in 0..5 { let s = Instant::now(); f(); ts.push(s.elapsed().as_secs_f64()); }
    ts.sort_by(f64::total_cmp);
    println!("{name:44} {:8.2} ms {:6.0} GF/s", ts[2]*1e3, fl/ts[2]/1e9);
}
fn vals(n: usize) -> Vec<f32> { (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect() }

fn main() {
    for &(c, s) in &[(256usize, 64usize), (256, 32)] {
        let xs = Nchw::new(1, c, s + 2, s + 2);
        let x = vals(xs.len()); let w = vals(c * c * 9);
        let g = Geometry::new(3, 1, 0);
        let fl = 2.0 * (c * c * 9 * s * s) as f64;
        let (y, ys) = conv::forward(&x, xs, &w, c, None, g);
        t(&format!("wino fwd {c}@{s}"), fl, || { let _ = conv::forward(&x, xs, &w, c, None, g); });
        t(&format!("bwd input {c}@{s}"), fl, || { let _ = conv::backward_input(&y, ys, &w, xs, g); });
        t(&format!("bwd weight {c}@{s}"), fl, || { let _ = conv::backward_weight(&x, xs, &y, ys, g); });
    }
    for &(ci, co, s) in &[(3usize, 64usize, 256usize), (64, 3, 256), (3, 64, 128), (64, 3, 128)] {
        let xs = Nchw::new(1, ci, s + 6, s + 6);
        let x = vals(xs.len()); let w = vals(co * ci * 49);
        let g = Geometry::new(7, 1, 0);
        let fl = 2.0 * (ci * co * 49 * s * s) as f64;
        let (y, ys) = conv::forward(&x, xs, &w, co, None, g);
        t(&format!("direct 7x7 {ci}->{co} @{s} fwd"), fl, || { let _ = conv::forward(&x, xs, &w, co, None, g); });
        t(&format!("direct 7x7 {ci}->{co} @{s} bwd in"), fl, || { let _ = conv::backward_input(&y, ys, &w, xs, g); });
        t(&format!("direct 7x7 {ci}->{co} @{s} bwd w"), fl, || { let _ = conv::backward_weight(&x, xs, &y, ys, g); });
    }
    let xs = Nchw::new(1, 64, 256, 256); let x = vals(xs.len()); let w = vals(128*64*9);
    let g = Geometry::new(3, 2, 1);
    let fl = 2.0*(64*128*9*128*128) as f64;
    let (y, ys) = conv::forward(&x, xs, &w, 128, None, g);
    t("gemm s2 64->128 @256 fwd", fl, || { let _ = conv::forward(&x, xs, &w, 128, None, g); });
    t("gemm s2 bwd in", fl, || { let _ = conv::backward_input(&y, ys, &w, xs, g); });
    t("gemm s2 bwd w", fl, || { let _ = conv::backward_weight(&x, xs, &y, ys, g); });
    let xs = Nchw::new(1, 256, 64, 64); let x = vals(xs.len());
    t("pad 1 256@64", 0.0, || { let _ = pad::forward(&x, xs, [1,1,1,1]); });
    t("norm 256@64", 0.0, || { let _ = norm::forward(&x, 4096, 1e-5); });
    let (yn, r) = norm::forward(&x, 4096, 1e-5);
    t("norm bwd 256@64", 0.0, || { let _ = norm::backward(&x, &yn, &r, 4096); });
}
