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

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::checkpoint::StateDict;
use crate::ops;

/// Width and height of the network's input.
pub const INPUT_SIZE: usize = 299;
/// Length of a feature vector (pool3).
pub const FEATURES: usize = 2048;
/// Batch norm's epsilon in the TensorFlow graph the weights come from.
const BN_EPS: f64 = 1e-3;

/// `BasicConv2d`: convolution without bias, batch norm, ReLU; the norm folded in.
struct ConvBn {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: [usize; 2],
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.linear(x))
    }

    /// The convolution with the norm folded in, before the ReLU.
    fn linear(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, kw] = self.weight.dims();
        if kh == kw && self.padding[0] == self.padding[1] {
            // square kernels through the project's CPU kernels
            ops::conv2d(x, self.weight.clone(), Some(self.bias.clone()), self.stride, self.padding[0])
        } else {
            // Inception's rectangular kernels all have stride 1
            ops::conv2d_rect(x, self.weight.clone(), self.bias.clone(), self.padding)
        }
    }
}

fn max_pool(x: Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
    ops::max_pool3x3(x, stride, padding)
}

/// 3x3, stride 1, padding 1, the padding left out of each average (TensorFlow's way).
fn avg_pool(x: Tensor<4>) -> Tensor<4> {
    ops::avg_pool3x3_same(x)
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
    fn conv(&mut self, name: &str, c_in: usize, c_out: usize, kernel: [usize; 2], stride: usize, padding: [usize; 2]) -> ConvBn {
        let mut take = |key: &str, shape: &[usize]| -> Vec<f32> {
            (self.source)(&format!("{name}.{key}"), shape).unwrap_or_else(|why| {
                self.problems.push(why);
                vec![0.0; shape.iter().product()]
            })
        };
        let w_shape = [c_out, c_in, kernel[0], kernel[1]];
        let mut w = take("conv.weight", &w_shape);
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
        ConvBn {
            weight: Tensor::from_data(TensorData::new(w, w_shape), self.device),
            bias: Tensor::from_data(TensorData::new(bias, [c_out]), self.device),
            stride,
            padding,
        }
    }

    /// A 1x1 convolution.
    fn pointwise(&mut self, name: &str, c_in: usize, c_out: usize) -> ConvBn {
        self.conv(name, c_in, c_out, [1, 1], 1, [0, 0])
    }

    /// The 1x1 convolutions that open a block's branches.
    fn pointwise_group(&mut self, prefix: &str, c_in: usize, parts: &[(&str, usize)]) -> Heads {
        Heads(parts.iter().map(|(name, c_out)| self.pointwise(&format!("{prefix}.{name}"), c_in, *c_out)).collect())
    }
}

/// The 1x1 convolutions that open a block's branches, all reading the
/// block's input. (Stacking them into one GEMM and splitting the output was
/// measured slower on flex: the split views cost more copies than it saved.)
struct Heads(Vec<ConvBn>);

impl Heads {
    /// Each head's output before its ReLU.
    fn forward(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        self.0.iter().map(|c| c.linear(x.clone())).collect()
    }
}

/// `branch_pool` after its 1x1 convolution: the 3x3 average pool. Both are
/// linear and the pool's weights sum to one, so the pool is taken after the
/// convolution, on its 4 to 7 times fewer channels.
fn pooled(conv_out: Tensor<4>) -> Tensor<4> {
    relu(avg_pool(conv_out))
}

/// torchvision's InceptionA with the FID average pool (Mixed_5b/c/d).
struct BlockA {
    /// branch1x1, branch5x5_1, branch3x3dbl_1, branch_pool
    heads: Heads,
    b5x5: ConvBn,
    b3x3dbl: [ConvBn; 2],
}

impl BlockA {
    fn load(w: &mut Weights, p: &str, c_in: usize, pool_features: usize) -> Self {
        Self {
            heads: w.pointwise_group(p, c_in, &[("branch1x1", 64), ("branch5x5_1", 48), ("branch3x3dbl_1", 64), ("branch_pool", pool_features)]),
            b5x5: w.conv(&format!("{p}.branch5x5_2"), 48, 64, [5, 5], 1, [2, 2]),
            b3x3dbl: [
                w.conv(&format!("{p}.branch3x3dbl_2"), 64, 96, [3, 3], 1, [1, 1]),
                w.conv(&format!("{p}.branch3x3dbl_3"), 96, 96, [3, 3], 1, [1, 1]),
            ],
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b1, b5, b3, pool]: [Tensor<4>; 4] = self.heads.forward(x).try_into().expect("four heads");
        let b5 = self.b5x5.forward(relu(b5));
        let b3 = chain(&self.b3x3dbl, relu(b3));
        Tensor::cat(vec![relu(b1), b5, b3, pooled(pool)], 1)
    }
}

/// torchvision's InceptionB (Mixed_6a): the grid shrinks from 35 to 17.
struct BlockB {
    b3x3: ConvBn,
    b3x3dbl: [ConvBn; 3],
}

impl BlockB {
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

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.b3x3.forward(x.clone());
        let dbl = chain(&self.b3x3dbl, x.clone());
        Tensor::cat(vec![b3, dbl, max_pool(x, 2, 0)], 1)
    }
}

/// torchvision's InceptionC with the FID average pool (Mixed_6b..e): factorised 7x7.
struct BlockC {
    /// branch1x1, branch7x7_1, branch7x7dbl_1, branch_pool
    heads: Heads,
    b7x7: [ConvBn; 2],
    b7x7dbl: [ConvBn; 4],
}

impl BlockC {
    fn load(w: &mut Weights, p: &str, c_in: usize, c7: usize) -> Self {
        let heads = w.pointwise_group(p, c_in, &[("branch1x1", 192), ("branch7x7_1", c7), ("branch7x7dbl_1", c7), ("branch_pool", 192)]);
        let (row, col) = (([1, 7], [0, 3]), ([7, 1], [3, 0]));
        let mut conv = |name: &str, i, o, (k, pad): ([usize; 2], [usize; 2])| w.conv(&format!("{p}.{name}"), i, o, k, 1, pad);
        let b7x7 = [conv("branch7x7_2", c7, c7, row), conv("branch7x7_3", c7, 192, col)];
        let b7x7dbl = [
            conv("branch7x7dbl_2", c7, c7, col),
            conv("branch7x7dbl_3", c7, c7, row),
            conv("branch7x7dbl_4", c7, c7, col),
            conv("branch7x7dbl_5", c7, 192, row),
        ];
        Self { heads, b7x7, b7x7dbl }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b1, b7, dbl, pool]: [Tensor<4>; 4] = self.heads.forward(x).try_into().expect("four heads");
        let b7 = chain(&self.b7x7, relu(b7));
        let dbl = chain(&self.b7x7dbl, relu(dbl));
        Tensor::cat(vec![relu(b1), b7, dbl, pooled(pool)], 1)
    }
}

/// torchvision's InceptionD (Mixed_7a): the grid shrinks from 17 to 8.
struct BlockD {
    /// branch3x3_1, branch7x7x3_1
    heads: Heads,
    b3x3: ConvBn,
    b7x7x3: [ConvBn; 3],
}

impl BlockD {
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

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b3, b7]: [Tensor<4>; 2] = self.heads.forward(x.clone()).try_into().expect("two heads");
        let b3 = self.b3x3.forward(relu(b3));
        let b7 = chain(&self.b7x7x3, relu(b7));
        Tensor::cat(vec![b3, b7, max_pool(x, 2, 0)], 1)
    }
}

/// The pool of an InceptionE block: FID's Mixed_7b averages (padding left
/// out), Mixed_7c takes the maximum (so its 1x1 convolution runs after it).
enum EPool {
    Average,
    Max(ConvBn),
}

/// torchvision's InceptionE with FID's pools (Mixed_7b, Mixed_7c).
struct BlockE {
    /// branch1x1, branch3x3_1, branch3x3dbl_1, and branch_pool where it comes first
    heads: Heads,
    b3x3_2: [ConvBn; 2],
    b3x3dbl_2: ConvBn,
    b3x3dbl_3: [ConvBn; 2],
    pool: EPool,
}

impl BlockE {
    fn load(w: &mut Weights, p: &str, c_in: usize, average: bool) -> Self {
        let mut heads = vec![("branch1x1", 320), ("branch3x3_1", 384), ("branch3x3dbl_1", 448)];
        if average {
            heads.push(("branch_pool", 192));
        }
        let heads = w.pointwise_group(p, c_in, &heads);
        let pool = if average { EPool::Average } else { EPool::Max(w.pointwise(&format!("{p}.branch_pool"), c_in, 192)) };
        let mut conv = |name: &str, i, o, k: [usize; 2], pad: [usize; 2]| w.conv(&format!("{p}.{name}"), i, o, k, 1, pad);
        Self {
            heads,
            b3x3_2: [conv("branch3x3_2a", 384, 384, [1, 3], [0, 1]), conv("branch3x3_2b", 384, 384, [3, 1], [1, 0])],
            b3x3dbl_2: conv("branch3x3dbl_2", 448, 384, [3, 3], [1, 1]),
            b3x3dbl_3: [conv("branch3x3dbl_3a", 384, 384, [1, 3], [0, 1]), conv("branch3x3dbl_3b", 384, 384, [3, 1], [1, 0])],
            pool,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut heads = self.heads.forward(x.clone()).into_iter();
        let (b1, b3, dbl) = (heads.next().expect("1x1"), heads.next().expect("3x3"), heads.next().expect("3x3dbl"));
        let split = |pair: &[ConvBn; 2], h: Tensor<4>| Tensor::cat(vec![pair[0].forward(h.clone()), pair[1].forward(h)], 1);
        let b3 = split(&self.b3x3_2, relu(b3));
        let dbl = split(&self.b3x3dbl_3, self.b3x3dbl_2.forward(relu(dbl)));
        let pool = match &self.pool {
            EPool::Average => pooled(heads.next().expect("pool head")),
            EPool::Max(conv) => conv.forward(max_pool(x, 1, 1)),
        };
        Tensor::cat(vec![relu(b1), b3, dbl, pool], 1)
    }
}

fn chain(layers: &[ConvBn], x: Tensor<4>) -> Tensor<4> {
    layers.iter().fold(x, |h, l| l.forward(h))
}

/// pytorch-fid's `InceptionV3(output_blocks=[3])` from the resized, normalised input on.
pub struct Inception {
    stem: [ConvBn; 5],
    mixed_5: [BlockA; 3],
    mixed_6a: BlockB,
    mixed_6: [BlockC; 4],
    mixed_7a: BlockD,
    mixed_7: [BlockE; 2],
    device: Device,
}

impl Inception {
    /// Build from pytorch-fid's state dict. Every layer's tensors must be
    /// there with their shapes; `fc.*` (the classifier, unused) and batch
    /// norm's counters may be.
    pub fn from_state_dict(mut dict: StateDict, device: &Device) -> Result<Self, String> {
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
            problems.push(format!("unexpected keys: {}", abbreviate(&unexpected)));
        }
        match net {
            Ok(net) if problems.is_empty() => Ok(net),
            _ => Err(format!("is not pytorch-fid's Inception v3: {}", abbreviate(&problems))),
        }
    }

    /// Build with each tensor from `source(key, shape)` (pytorch-fid's keys:
    /// `Mixed_5b.branch1x1.conv.weight`, `...bn.running_var`, ...). Tests
    /// use it to make networks whose weights follow a formula.
    pub fn build(source: &mut Source, device: &Device) -> Result<Self, Vec<String>> {
        let mut w = Weights { source, device, problems: Vec::new() };
        let net = Self {
            stem: [
                w.conv("Conv2d_1a_3x3", 3, 32, [3, 3], 2, [0, 0]),
                w.conv("Conv2d_2a_3x3", 32, 32, [3, 3], 1, [0, 0]),
                w.conv("Conv2d_2b_3x3", 32, 64, [3, 3], 1, [1, 1]),
                w.pointwise("Conv2d_3b_1x1", 64, 80),
                w.conv("Conv2d_4a_3x3", 80, 192, [3, 3], 1, [0, 0]),
            ],
            mixed_5: [
                BlockA::load(&mut w, "Mixed_5b", 192, 32),
                BlockA::load(&mut w, "Mixed_5c", 256, 64),
                BlockA::load(&mut w, "Mixed_5d", 288, 64),
            ],
            mixed_6a: BlockB::load(&mut w, "Mixed_6a", 288),
            mixed_6: [
                BlockC::load(&mut w, "Mixed_6b", 768, 128),
                BlockC::load(&mut w, "Mixed_6c", 768, 160),
                BlockC::load(&mut w, "Mixed_6d", 768, 160),
                BlockC::load(&mut w, "Mixed_6e", 768, 192),
            ],
            mixed_7a: BlockD::load(&mut w, "Mixed_7a", 768),
            mixed_7: [BlockE::load(&mut w, "Mixed_7b", 1280, true), BlockE::load(&mut w, "Mixed_7c", 2048, false)],
            device: device.clone(),
        };
        if w.problems.is_empty() { Ok(net) } else { Err(w.problems) }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pool3 features `[N, 2048]` of images `[N, 3, 299, 299]` in `[-1, 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = chain(&self.stem[..3], x);
        let x = max_pool(x, 2, 0);
        let x = chain(&self.stem[3..], x);
        let x = max_pool(x, 2, 0);
        let x = self.mixed_5.iter().fold(x, |h, b| b.forward(h));
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6.iter().fold(x, |h, b| b.forward(h));
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7.iter().fold(x, |h, b| b.forward(h));
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }
}

fn abbreviate(items: &[String]) -> String {
    const SHOWN: usize = 4;
    if items.len() <= SHOWN {
        items.join("; ")
    } else {
        format!("{}; ... ({} more)", items[..SHOWN].join("; "), items.len() - SHOWN)
    }
}
