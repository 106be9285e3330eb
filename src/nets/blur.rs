//! Anti-aliased resampling, as the CUT code builds its generators and
//! discriminators (Zhang, "Making Convolutional Networks Shift-Invariant
//! Again", ICML 2019; the official `Downsample` and `Upsample`):
//!
//! - [`BlurDown`]: reflection pad by 1, then the 3x3 binomial filter
//!   `[1, 2, 1]^T [1, 2, 1] / 16` on every channel with stride 2; it follows a
//!   stride-1 convolution where the CycleGAN networks have a stride-2 one;
//! - [`BlurUp`]: replication pad by 1, a stride-2 transposed convolution with
//!   `[1, 3, 3, 1]^T [1, 3, 3, 1] / 16`, cropped to twice the input; it comes
//!   before a 3x3 convolution where CycleGAN has a transposed one.
//!
//! The filters are fixed: the official code keeps them as `filt` buffers
//! (one copy per channel, `[C, 1, k, k]`) in its checkpoints, so they are
//! written and checked under that key, never trained.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use super::named::{NamedTensors, Slot};
use super::key;
use crate::ops;

/// The binomial filter of `taps` taps, normalised to sum to one, as a 2-D kernel.
fn binomial(taps: &[f32]) -> Vec<f32> {
    let sum: f32 = taps.iter().sum();
    taps.iter().flat_map(|a| taps.iter().map(move |b| a * b / (sum * sum))).collect()
}

const DOWN_TAPS: [f32; 3] = [1.0, 2.0, 1.0];
const UP_TAPS: [f32; 4] = [1.0, 3.0, 3.0, 1.0];
/// The upsampling filter is scaled by stride^2 (each output gets a quarter of the taps).
const UP_GAIN: f32 = 4.0;

/// The official `filt` buffer: the kernel repeated for every channel.
fn filt_buffer(kernel: &[f32], k: usize, channels: usize) -> TensorData {
    TensorData::new(kernel.repeat(channels), [channels, 1, k, k])
}

/// Blur, then keep every second pixel.
#[derive(Module, Debug)]
pub struct BlurDown {
    pub channels: usize,
}

impl BlurDown {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ops::blur_down(x, &binomial(&DOWN_TAPS))
    }

    /// The official `filt` buffer, `[C, 1, 3, 3]`.
    pub fn filter(&self) -> TensorData {
        filt_buffer(&binomial(&DOWN_TAPS), 3, self.channels)
    }
}

impl NamedTensors for BlurDown {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "filt"), Slot::Fixed(self.filter()));
    }
}

/// Twice the size, interpolated with the blur.
#[derive(Module, Debug)]
pub struct BlurUp {
    pub channels: usize,
}

impl BlurUp {
    fn kernel() -> Vec<f32> {
        binomial(&UP_TAPS).into_iter().map(|v| v * UP_GAIN).collect()
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ops::blur_up(x, &Self::kernel())
    }

    /// The official `filt` buffer, `[C, 1, 4, 4]`.
    pub fn filter(&self) -> TensorData {
        filt_buffer(&Self::kernel(), 4, self.channels)
    }
}

impl NamedTensors for BlurUp {
    fn visit_named(&mut self, prefix: &str, f: &mut dyn FnMut(String, Slot<'_>)) {
        f(key(prefix, "filt"), Slot::Fixed(self.filter()));
    }
}
