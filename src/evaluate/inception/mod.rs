//! The Inception v3 of FID, exactly as pytorch-fid builds it (torchvision's
//! Inception3 with the FID blocks: average pools that leave the padding out
//! of the count, a max pool in the last block; batch norm with eps 1e-3),
//! up to the 2048-d pool3 features. The weights are pytorch-fid's file
//! (`pt_inception-2015-12-05-6726825d.pth`, its key names); batch norm is
//! folded into each convolution when they load.
//!
//! Szegedy et al., "Rethinking the Inception Architecture for Computer
//! Vision", CVPR 2016; Heusel et al., "GANs Trained by a Two Time-Scale Update
//! Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).

mod engine;

use burn::tensor::{Device, Tensor, TensorData};

use crate::checkpoint::{StateDict, abbreviate};
use crate::ops::cpu;
use engine::{Burn, ConvShape, Engine, Raw};

/// Width and height of the network's input.
pub const INPUT_SIZE: usize = 299;
/// Length of a feature vector (pool3).
pub const FEATURES: usize = 2048;
/// Batch norm's epsilon in the TensorFlow graph the weights come from.
const BN_EPS: f64 = 1e-3;
/// Images one CPU worker runs through the network together. The whole
/// batch at once streamed every activation through memory (2.2 GB at 50
/// images, the stem's Winograd tiles alone 1.1 GB); and one chunk per core,
/// each on its own thread with the kernels' loops not split, spends no time
/// handing work between threads. On a 2-core Xeon: 10.8 images/s for the
/// whole batch on both cores, 12.4 for chunks of 8 on both, 16.3 for chunks
/// of 2 on one core each, at a fifth of the memory (BENCHMARKS.md).
const CPU_CHUNK: usize = 2;

/// `BasicConv2d`: convolution without bias, batch norm, ReLU; the norm folded in.
struct ConvBn<E: Engine> {
    weights: E::Weights,
    shape: ConvShape,
}

impl<E: Engine> ConvBn<E> {
    fn forward(&self, x: &E::Act) -> E::Act {
        E::conv(&self.weights, &self.shape, x, true)
    }

    /// The convolution with the norm folded in, before the ReLU.
    fn linear(&self, x: &E::Act) -> E::Act {
        E::conv(&self.weights, &self.shape, x, false)
    }
}

/// Where each tensor comes from: its key and shape in, its values out
/// (`Err` says what is wrong with it).
type Source<'s> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>, String> + 's;

/// Builds the layers from a [`Source`], collecting what is wrong, and folds the norms in.
struct Weights<'a, 's> {
    source: &'a mut Source<'s>,
    device: &'a Device,
    problems: Vec<String>,
}

impl Weights<'_, '_> {
    fn conv<E: Engine>(&mut self, name: &str, c_in: usize, c_out: usize, kernel: [usize; 2], stride: usize, padding: [usize; 2]) -> ConvBn<E> {
        let mut take = |key: &str, shape: &[usize]| -> Vec<f32> {
            (self.source)(&format!("{name}.{key}"), shape).unwrap_or_else(|why| {
                self.problems.push(why);
                vec![0.0; shape.iter().product()]
            })
        };
        let shape = ConvShape { dims: [c_out, c_in, kernel[0], kernel[1]], stride, padding };
        let mut w = take("conv.weight", &shape.dims);
        let gamma = take("bn.weight", &[c_out]);
        let beta = take("bn.bias", &[c_out]);
        let mean = take("bn.running_mean", &[c_out]);
        let var = take("bn.running_var", &[c_out]);
        // y = gamma (conv(x) - mean) / sqrt(var + eps) + beta, folded (in f64, as one scale per channel)
        let per_out = w.len() / c_out;
        let mut bias = vec![0f32; c_out];
        for o in 0..c_out {
            let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
            w[o * per_out..(o + 1) * per_out].iter_mut().for_each(|v| *v = (*v as f64 * scale) as f32);
            bias[o] = (beta[o] as f64 - mean[o] as f64 * scale) as f32;
        }
        ConvBn { weights: E::weights(w, bias, &shape, self.device), shape }
    }

    /// A 1x1 convolution.
    fn pointwise<E: Engine>(&mut self, name: &str, c_in: usize, c_out: usize) -> ConvBn<E> {
        self.conv(name, c_in, c_out, [1, 1], 1, [0, 0])
    }

    /// The 1x1 convolutions that open a block's branches.
    fn pointwise_group<E: Engine>(&mut self, prefix: &str, c_in: usize, parts: &[(&str, usize)]) -> Vec<ConvBn<E>> {
        parts.iter().map(|(name, c_out)| self.pointwise(&format!("{prefix}.{name}"), c_in, *c_out)).collect()
    }
}

/// The 1x1 convolutions that open a block's branches, all reading the
/// block's input, each followed by its ReLU. (Stacking them into one GEMM
/// and splitting the output was measured slower: the split copies cost
/// more than they saved.)
fn heads<E: Engine, const N: usize>(heads: &[ConvBn<E>], x: &E::Act) -> [E::Act; N] {
    std::array::from_fn(|i| heads[i].forward(x))
}

/// `branch_pool`: a 3x3 average pool, then its 1x1 convolution. Both are
/// linear and the pool's weights sum to one, so the pool is taken after the
/// convolution, on its 4 to 7 times fewer channels.
fn pooled<E: Engine>(conv: &ConvBn<E>, x: &E::Act) -> E::Act {
    E::relu_avg_pool(&conv.linear(x))
}

fn chain<E: Engine>(layers: &[ConvBn<E>], x: E::Act) -> E::Act {
    layers.iter().fold(x, |h, l| l.forward(&h))
}

/// torchvision's InceptionA with the FID average pool (Mixed_5b/c/d).
struct BlockA<E: Engine> {
    /// branch1x1, branch5x5_1, branch3x3dbl_1
    heads: Vec<ConvBn<E>>,
    pool: ConvBn<E>,
    b5x5: ConvBn<E>,
    b3x3dbl: [ConvBn<E>; 2],
}

impl<E: Engine> BlockA<E> {
    fn load(w: &mut Weights, p: &str, c_in: usize, pool_features: usize) -> Self {
        Self {
            heads: w.pointwise_group(p, c_in, &[("branch1x1", 64), ("branch5x5_1", 48), ("branch3x3dbl_1", 64)]),
            pool: w.pointwise(&format!("{p}.branch_pool"), c_in, pool_features),
            b5x5: w.conv(&format!("{p}.branch5x5_2"), 48, 64, [5, 5], 1, [2, 2]),
            b3x3dbl: [
                w.conv(&format!("{p}.branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1]),
                w.conv(&format!("{p}.branch3x3dbl_3"), 96, 96, [3, 3], 1, [1, 1]),
            ],
        }
    }

    fn forward(&self, x: E::Act) -> E::Act {
        let [b1, b5, b3] = heads(&self.heads, &x);
        let b5 = self.b5x5.forward(&b5);
        let b3 = chain(&self.b3x3dbl, b3);
        E::cat(vec![b1, b5, b3, pooled(&self.pool, &x)])
    }
}

/// torchvision's InceptionB (Mixed_6a): the grid shrinks from 35 to 17.
struct BlockB<E: Engine> {
    b3x3: ConvBn<E>,
    b3x3dbl: [ConvBn<E>; 3],
}

impl<E: Engine> BlockB<E> {
    fn load(w: &mut Weights, p: &str, c_in: usize) -> Self {
        Self {
            b3x3: w.conv(&format!("{p}.branch3x3"), c_in, 384, [3, 3], 2, [0, 0]),
            b3x3dbl: [
                w.pointwise(&format!("{p}.branch3x3dbl_1"), c_in, 64),
                w.conv(&format!("{p}.branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1]),
                w.conv(&format!("{p}.branch3x3dbl_3"), 96, 96, [3, 3], 2, [0, 0]),
            ],
        }
    }

    fn forward(&self, x: E::Act) -> E::Act {
        let b3 = self.b3x3.forward(&x);
        let dbl = chain(&self.b3x3dbl, x.clone());
        E::cat(vec![b3, dbl, E::max_pool(&x, 2, 0)])
    }
}

/// torchvision's InceptionC with the FID average pool (Mixed_6b..e): factorised 7x7.
struct BlockC<E: Engine> {
    /// branch1x1, branch7x7_1, branch7x7dbl_1
    heads: Vec<ConvBn<E>>,
    pool: ConvBn<E>,
    b7x7: [ConvBn<E>; 2],
    b7x7dbl: [ConvBn<E>; 4],
}

impl<E: Engine> BlockC<E> {
    fn load(w: &mut Weights, p: &str, c_in: usize, c7: usize) -> Self {
        let heads = w.pointwise_group(p, c_in, &[("branch1x1", 192), ("branch7x7_1", c7), ("branch7x7dbl_1", c7)]);
        let pool = w.pointwise(&format!("{p}.branch_pool"), c_in, 192);
        let (row, col) = (([1, 7], [0, 3]), ([7, 1], [3, 0]));
        let mut conv = |name: &str, i, o, (k, pad): ([usize; 2], [usize; 2])| w.conv(&format!("{p}.{name}"), i, o, k, 1, pad);
        let b7x7 = [conv("branch7x7_2", c7, c7, row), conv("branch7x7_3", c7, 192, col)];
        let b7x7dbl = [
            conv("branch7x7dbl_2", c7, c7, col),
            conv("branch7x7dbl_3", c7, c7, row),
            conv("branch7x7dbl_4", c7, c7, col),
            conv("branch7x7dbl_5", c7, 192, row),
        ];
        Self { heads, pool, b7x7, b7x7dbl }
    }

    fn forward(&self, x: E::Act) -> E::Act {
        let [b1, b7, dbl] = heads(&self.heads, &x);
        let b7 = chain(&self.b7x7, b7);
        let dbl = chain(&self.b7x7dbl, dbl);
        E::cat(vec![b1, b7, dbl, pooled(&self.pool, &x)])
    }
}

/// torchvision's InceptionD (Mixed_7a): the grid shrinks from 17 to 8.
struct BlockD<E: Engine> {
    /// branch3x3_1, branch7x7x3_1
    heads: Vec<ConvBn<E>>,
    b3x3: ConvBn<E>,
    b7x7x3: [ConvBn<E>; 3],
}

impl<E: Engine> BlockD<E> {
    fn load(w: &mut Weights, p: &str, c_in: usize) -> Self {
        Self {
            heads: w.pointwise_group(p, c_in, &[("branch3x3_1", 192), ("branch7x7x3_1", 192)]),
            b3x3: w.conv(&format!("{p}.branch3x3_2"), 192, 320, [3, 3], 2, [0, 0]),
            b7x7x3: [
                w.conv(&format!("{p}.branch7x7x3_2"), 192, 192, [1, 7], 1, [0, 3]),
                w.conv(&format!("{p}.branch7x7x3_3"), 192, 192, [7, 1], 1, [3, 0]),
                w.conv(&format!("{p}.branch7x7x3_4"), 192, 192, [3, 3], 2, [0, 0]),
            ],
        }
    }

    fn forward(&self, x: E::Act) -> E::Act {
        let [b3, b7] = heads(&self.heads, &x);
        let b3 = self.b3x3.forward(&b3);
        let b7 = chain(&self.b7x7x3, b7);
        E::cat(vec![b3, b7, E::max_pool(&x, 2, 0)])
    }
}

/// The pool of an InceptionE block: FID's Mixed_7b averages (padding left
/// out), Mixed_7c takes the maximum (so its 1x1 convolution runs after it).
enum EPool {
    Average,
    Max,
}

/// torchvision's InceptionE with FID's pools (Mixed_7b, Mixed_7c).
struct BlockE<E: Engine> {
    /// branch1x1, branch3x3_1, branch3x3dbl_1
    heads: Vec<ConvBn<E>>,
    b3x3_2: [ConvBn<E>; 2],
    b3x3dbl_2: ConvBn<E>,
    b3x3dbl_3: [ConvBn<E>; 2],
    pool_kind: EPool,
    pool: ConvBn<E>,
}

impl<E: Engine> BlockE<E> {
    fn load(w: &mut Weights, p: &str, c_in: usize, pool_kind: EPool) -> Self {
        let heads = w.pointwise_group(p, c_in, &[("branch1x1", 320), ("branch3x3_1", 384), ("branch3x3dbl_1", 448)]);
        let pool = w.pointwise(&format!("{p}.branch_pool"), c_in, 192);
        let mut conv = |name: &str, i, o, k: [usize; 2], pad: [usize; 2]| w.conv(&format!("{p}.{name}"), i, o, k, 1, pad);
        Self {
            heads,
            b3x3_2: [conv("branch3x3_2a", 384, 384, [1, 3], [0, 1]), conv("branch3x3_2b", 384, 384, [3, 1], [1, 0])],
            b3x3dbl_2: conv("branch3x3dbl_2", 448, 384, [3, 3], [1, 1]),
            b3x3dbl_3: [conv("branch3x3dbl_3a", 384, 384, [1, 3], [0, 1]), conv("branch3x3dbl_3b", 384, 384, [3, 1], [1, 0])],
            pool_kind,
            pool,
        }
    }

    fn forward(&self, x: E::Act) -> E::Act {
        let [b1, b3, dbl] = heads(&self.heads, &x);
        let split = |pair: &[ConvBn<E>; 2], h: &E::Act| E::cat(vec![pair[0].forward(h), pair[1].forward(h)]);
        let b3 = split(&self.b3x3_2, &b3);
        let dbl = split(&self.b3x3dbl_3, &self.b3x3dbl_2.forward(&dbl));
        let pool = match self.pool_kind {
            EPool::Average => pooled(&self.pool, &x),
            EPool::Max => self.pool.forward(&E::max_pool(&x, 1, 1)),
        };
        E::cat(vec![b1, b3, dbl, pool])
    }
}

/// The layers, on one engine.
struct Network<E: Engine> {
    stem: [ConvBn<E>; 5],
    mixed_5: [BlockA<E>; 3],
    mixed_6a: BlockB<E>,
    mixed_6: [BlockC<E>; 4],
    mixed_7a: BlockD<E>,
    mixed_7: [BlockE<E>; 2],
}

impl<E: Engine> Network<E> {
    fn build(w: &mut Weights) -> Self {
        Self {
            stem: [
                w.conv("Conv2d_1a_3x3", 3, 32, [3, 3], 2, [0, 0]),
                w.conv("Conv2d_2a_3x3", 32, 32, [3, 3], 1, [0, 0]),
                w.conv("Conv2d_2b_3x3", 32, 64, [3, 3], 1, [1, 1]),
                w.pointwise("Conv2d_3b_1x1", 64, 80),
                w.conv("Conv2d_4a_3x3", 80, 192, [3, 3], 1, [0, 0]),
            ],
            mixed_5: [
                BlockA::load(w, "Mixed_5b", 192, 32),
                BlockA::load(w, "Mixed_5c", 256, 64),
                BlockA::load(w, "Mixed_5d", 288, 64),
            ],
            mixed_6a: BlockB::load(w, "Mixed_6a", 288),
            mixed_6: [
                BlockC::load(w, "Mixed_6b", 768, 128),
                BlockC::load(w, "Mixed_6c", 768, 160),
                BlockC::load(w, "Mixed_6d", 768, 160),
                BlockC::load(w, "Mixed_6e", 768, 192),
            ],
            mixed_7a: BlockD::load(w, "Mixed_7a", 768),
            mixed_7: [BlockE::load(w, "Mixed_7b", 1280, EPool::Average), BlockE::load(w, "Mixed_7c", 2048, EPool::Max)],
        }
    }

    /// Pool3 features `[n, 2048]`, row-major.
    fn features(&self, x: E::Act) -> Vec<f32> {
        let x = chain(&self.stem[..3], x);
        let x = E::max_pool(&x, 2, 0);
        let x = chain(&self.stem[3..], x);
        let x = E::max_pool(&x, 2, 0);
        let x = self.mixed_5.iter().fold(x, |h, b| b.forward(h));
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6.iter().fold(x, |h, b| b.forward(h));
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7.iter().fold(x, |h, b| b.forward(h));
        E::plane_means(x)
    }
}

/// The network on the engine its device runs best.
enum Engines {
    Raw(Network<Raw>),
    Burn(Network<Burn>),
}

/// pytorch-fid's `InceptionV3(output_blocks=[3])` from the resized, normalised input on.
/// Why a state dict is not pytorch-fid's Inception: each missing, unexpected or misshapen tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotInception(pub Vec<String>);

impl std::fmt::Display for NotInception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "is not pytorch-fid's Inception v3: {}", abbreviate(&self.0, "; "))
    }
}

impl std::error::Error for NotInception {}

pub struct Inception {
    net: Engines,
    device: Device,
}

impl Inception {
    /// Build from pytorch-fid's state dict. Every layer's tensors must be
    /// there with their shapes; `fc.*` (the classifier, unused) and batch
    /// norm's counters may be.
    pub fn from_state_dict(mut dict: StateDict, device: &Device) -> Result<Self, NotInception> {
        let mut source = |key: &str, shape: &[usize]| match dict.remove(key) {
            None => Err(format!("missing {key} {shape:?}")),
            Some(d) if d.shape().as_ref() != shape => Err(format!("{key}: file {:?}, network {shape:?}", d.shape().as_ref())),
            Some(d) => Ok(d.convert::<f32>().try_into_vec::<f32>().expect("f32 after convert")),
        };
        let net = Self::build(&mut source, device);
        let unexpected: Vec<String> = dict
            .keys()
            .filter(|k| !k.starts_with("fc.") && !k.ends_with(".num_batches_tracked"))
            .cloned()
            .collect();
        let mut problems = net.as_ref().err().cloned().unwrap_or_default();
        if !unexpected.is_empty() {
            problems.push(format!("unexpected keys: {}", abbreviate(&unexpected, ", ")));
        }
        match net {
            Ok(net) if problems.is_empty() => Ok(net),
            _ => Err(NotInception(problems)),
        }
    }

    /// Build with each tensor from `source(key, shape)` (pytorch-fid's keys:
    /// `Mixed_5b.branch1x1.conv.weight`, `...bn.running_var`, ...). Tests
    /// use it to make networks whose weights follow a formula.
    pub fn build(source: &mut Source, device: &Device) -> Result<Self, Vec<String>> {
        Self::build_on(source, device, crate::ops::raw_kernels(device))
    }

    /// [`Self::build`], on the CPU kernels (`raw`) or on burn's ops.
    fn build_on(source: &mut Source, device: &Device, raw: bool) -> Result<Self, Vec<String>> {
        let mut w = Weights { source, device, problems: Vec::new() };
        let net = if raw { Engines::Raw(Network::build(&mut w)) } else { Engines::Burn(Network::build(&mut w)) };
        if w.problems.is_empty() { Ok(Self { net, device: device.clone() }) } else { Err(w.problems) }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pool3 features `[n, 2048]` (row-major) of `n` images `[n, 3, 299, 299]` in `[-1, 1]`.
    pub fn features(&self, images: Vec<f32>, n: usize) -> Vec<f32> {
        let per_image = 3 * INPUT_SIZE * INPUT_SIZE;
        assert_eq!(images.len(), n * per_image, "{n} images of 3 x {INPUT_SIZE} x {INPUT_SIZE}");
        match &self.net {
            Engines::Raw(net) => {
                // Each worker takes an equal share of the images, runs it in
                // chunks on a one-thread pool of its own (so the kernels do
                // not split their loops), and the shares come back in order.
                let workers = rayon::current_num_threads().clamp(1, n.max(1));
                let share = |w: usize| &images[w * n / workers * per_image..(w + 1) * n / workers * per_image];
                let run = |share: &[f32]| -> Vec<f32> {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a thread");
                    pool.install(|| {
                        share
                            .chunks(CPU_CHUNK * per_image)
                            .flat_map(|c| {
                                let shape = cpu::Nchw::new(c.len() / per_image, 3, INPUT_SIZE, INPUT_SIZE);
                                net.features(engine::Planes { values: c.to_vec(), shape })
                            })
                            .collect()
                    })
                };
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..workers).map(|w| scope.spawn(move || run(share(w)))).collect();
                    handles.into_iter().flat_map(|h| h.join().expect("Inception worker")).collect()
                })
            }
            Engines::Burn(net) => {
                net.features(Tensor::from_data(TensorData::new(images, [n, 3, INPUT_SIZE, INPUT_SIZE]), &self.device))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU kernels against burn's ops, on one image with weights from a formula.
    #[test]
    fn raw_engine_matches_burn_ops() {
        let device = Device::flex();
        let source = || {
            move |key: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
                let n: usize = shape.iter().product();
                let seed = key.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                let fan = if shape.len() == 4 { (shape[1] * shape[2] * shape[3]) as f32 } else { 1.0 };
                Ok((0..n)
                    .map(|i| {
                        let u = ((seed.wrapping_add(i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1 << 24) as f32) - 0.5;
                        if key.ends_with("running_var") || key.ends_with("bn.weight") { 1.0 + 0.2 * u } else { u * (12.0 / fan).sqrt() }
                    })
                    .collect())
            }
        };
        let raw = Inception::build_on(&mut source(), &device, true).unwrap();
        let burn = Inception::build_on(&mut source(), &device, false).unwrap();
        let n = 2;
        let images: Vec<f32> = (0..n * 3 * INPUT_SIZE * INPUT_SIZE).map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0).collect();
        let (a, b) = (raw.features(images.clone(), n), burn.features(images, n));
        let num: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        assert!(den > 0.0 && (num / den).sqrt() < 1e-5, "relative L2 {:.2e}", (num / den).sqrt());
    }
}
