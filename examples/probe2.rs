use burn::tensor::{Device, Tensor, Distribution};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use std::time::Instant;

fn main() {
    let d = Device::flex().autodiff();
    for &(c, s, k) in &[(256usize, 34usize, 3usize), (256, 66, 3), (64, 134, 7), (3, 134, 7)] {
        let (ci, co) = if k == 7 && c == 3 { (3, 64) } else if k == 7 { (64, 3) } else { (c, c) };
        let x = Tensor::<4>::random([1, ci, s, s], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
        let w = Tensor::<4>::random([co, ci, k, k], Distribution::Uniform(-0.1, 0.1), &d).require_grad();
        let mut tf = vec![]; let mut tb = vec![];
        for _ in 0..4 {
            let t = Instant::now();
            let y = conv2d(x.clone(), w.clone(), None, ConvOptions::new([1,1],[0,0],[1,1],1));
            let y2 = y.clone().inner(); let _ = y2.into_data();
            tf.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let g = y.sum().backward();
            let gx = x.grad(&g).unwrap(); let gw = w.grad(&g).unwrap();
            let _ = gx.into_data(); let _ = gw.into_data();
            tb.push(t.elapsed().as_secs_f64());
        }
        let o = s - k + 1;
        let fl = 2.0 * (ci * co * k * k * o * o) as f64;
        println!("conv{k}x{k} {ci}->{co} out {o}: fwd {:.1} ms ({:.0} GF/s), bwd {:.1} ms ({:.0} GF/s)", tf[2]*1e3, fl/tf[2]/1e9, tb[2]*1e3, 2.0*fl/tb[2]/1e9);
    }
}
