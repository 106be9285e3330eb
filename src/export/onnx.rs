//! A generator as an ONNX graph of standard operators (Conv, ConvTranspose,
//! Pad, InstanceNormalization, BatchNormalization, Relu, LeakyRelu, Tanh,
//! Add, Concat, Slice), written through the ONNX protobuf schema
//! (`onnx-protobuf`). The graph follows each network's forward pass layer
//! for layer; dropout is left out (inference). Weights are initializers
//! under their official keys (`model.1.weight`, ...).

use std::collections::HashMap;

use burn::module::{Param, ParamId};
use burn::tensor::{Tensor, TensorData};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

use crate::nets::{
    BlurDown, BlurUp, Conv2d, ConvTranspose2d, Generator, NamedTensors, Norm, NormKind, ResnetGenerator, Slot, UnetBlock,
    UnetGenerator, UnetLevel, UpConv,
};

/// The IR version written: ONNX 1.13's, which every runtime of the last years reads.
const IR_VERSION: i64 = 8;
/// PyTorch's (and the project's) norm epsilon and LeakyReLU slope.
const NORM_EPS: f32 = 1e-5;
const LEAKY_SLOPE: f32 = 0.2;

/// The size of the graph's input and output: `H` and `W` free, or fixed.
#[derive(Clone, Copy, Debug)]
pub enum Spatial {
    Dynamic,
    Fixed { height: usize, width: usize },
}

/// Build the model: `input` `[N, C, H, W]` to `output`, with `metadata` as its metadata_props.
pub fn model(net: &Generator, input_nc: usize, output_nc: usize, spatial: Spatial, opset: i64, metadata: &[(String, String)]) -> Vec<u8> {
    let mut g = Graph::new(net);
    let out = match net {
        Generator::Resnet(r) => g.resnet(r, INPUT),
        Generator::Unet(u) => g.unet(u, 0, INPUT.to_string()),
    };
    // the last node's output is renamed to the graph's output
    if let Some(last) = g.nodes.last_mut() {
        for o in last.output.iter_mut().filter(|o| **o == out) {
            *o = OUTPUT.to_string();
        }
    }
    let graph = GraphProto {
        name: "generator".into(),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(INPUT, input_nc, spatial)],
        output: vec![value_info(OUTPUT, output_nc, spatial)],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset, ..Default::default() }],
        producer_name: "cyclegan".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph).into(),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: k.clone(), value: v.clone(), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    model.write_to_bytes().expect("an in-memory model serializes")
}

pub const INPUT: &str = "input";
pub const OUTPUT: &str = "output";

fn value_info(name: &str, channels: usize, spatial: Spatial) -> ValueInfoProto {
    let dim = |d: Result<i64, &str>| Dimension {
        value: Some(match d {
            Ok(v) => dimension::Value::DimValue(v),
            Err(p) => dimension::Value::DimParam(p.to_string()),
        }),
        ..Default::default()
    };
    let (h, w) = match spatial {
        Spatial::Dynamic => (Err("H"), Err("W")),
        Spatial::Fixed { height, width } => (Ok(height as i64), Ok(width as i64)),
    };
    let shape = TensorShapeProto { dim: vec![dim(Err("N")), dim(Ok(channels as i64)), dim(h), dim(w)], ..Default::default() };
    let tensor = type_proto::Tensor { elem_type: DataType::FLOAT as i32, shape: Some(shape).into(), ..Default::default() };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }).into(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INTS.into(), ints: v.to_vec(), ..Default::default() }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INT.into(), i: v, ..Default::default() }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::FLOAT.into(), f: v, ..Default::default() }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::STRING.into(), s: v.as_bytes().to_vec(), ..Default::default() }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights")
}

/// The nodes and initializers, growing as the network is walked.
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Official keys of the network's parameters.
    keys: HashMap<ParamId, String>,
    count: usize,
}

impl Graph {
    fn new(net: &Generator) -> Self {
        let mut keys = HashMap::new();
        net.clone().visit_named("", &mut |key, slot| match slot {
            Slot::Weight(p) => drop(keys.insert(p.id, key)),
            Slot::Vector(p, _) => drop(keys.insert(p.id, key)),
            _ => {}
        });
        Self { nodes: Vec::new(), initializers: Vec::new(), keys, count: 0 }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            name: out.clone(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    fn constant(&mut self, name: String, dims: &[usize], data: &[f32]) -> String {
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::FLOAT as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn constant_i64(&mut self, what: &str, data: &[i64]) -> String {
        let name = self.fresh(what);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: DataType::INT64 as i32,
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// A parameter as an initializer under its official key.
    fn param<const D: usize>(&mut self, p: &Param<Tensor<D>>) -> String {
        let name = self.keys.get(&p.id).cloned().unwrap_or_else(|| self.fresh("param"));
        let t = p.val();
        let dims = t.dims();
        self.constant(name, &dims, &values(t))
    }

    fn conv(&mut self, x: &str, c: &Conv2d) -> String {
        let w = self.param(&c.weight);
        let [_, _, kh, kw] = c.weight.dims();
        let (p, s) = (c.padding as i64, c.stride as i64);
        let attrs = vec![ints("kernel_shape", &[kh as i64, kw as i64]), ints("strides", &[s, s]), ints("pads", &[p, p, p, p])];
        match &c.bias {
            Some(b) => {
                let b = self.param(b);
                self.node("Conv", &[x, &w, &b], attrs)
            }
            None => self.node("Conv", &[x, &w], attrs),
        }
    }

    fn conv_transpose(&mut self, x: &str, c: &ConvTranspose2d) -> String {
        let w = self.param(&c.weight);
        let [_, _, kh, kw] = c.weight.dims();
        let (p, s, op) = (c.padding as i64, c.stride as i64, c.output_padding as i64);
        let attrs = vec![
            ints("kernel_shape", &[kh as i64, kw as i64]),
            ints("strides", &[s, s]),
            ints("pads", &[p, p, p, p]),
            ints("output_padding", &[op, op]),
        ];
        match &c.bias {
            Some(b) => {
                let b = self.param(b);
                self.node("ConvTranspose", &[x, &w, &b], attrs)
            }
            None => self.node("ConvTranspose", &[x, &w], attrs),
        }
    }

    fn norm(&mut self, x: &str, n: &Norm, channels: usize) -> String {
        match n.kind {
            NormKind::None => x.to_string(),
            NormKind::Instance => {
                let scale = self.fresh("norm_scale");
                let scale = self.constant(scale, &[channels], &vec![1.0; channels]);
                let bias = self.fresh("norm_bias");
                let bias = self.constant(bias, &[channels], &vec![0.0; channels]);
                self.node("InstanceNormalization", &[x, &scale, &bias], vec![float("epsilon", NORM_EPS)])
            }
            NormKind::InstanceAffine => {
                let affine = n.affine.as_ref().expect("affine instance norm has a scale and shift");
                let (scale, bias) = (self.param(&affine.weight), self.param(&affine.bias));
                self.node("InstanceNormalization", &[x, &scale, &bias], vec![float("epsilon", NORM_EPS)])
            }
            NormKind::Batch => {
                let affine = n.affine.as_ref().expect("batch norm has a scale and shift");
                let running = n.running.as_ref().expect("batch norm has running statistics");
                let (scale, bias) = (self.param(&affine.weight), self.param(&affine.bias));
                let stem = scale.strip_suffix(".weight").unwrap_or(&scale).to_string();
                let mean = self.constant(format!("{stem}.running_mean"), &[channels], &values(running.mean.value_sync()));
                let var = self.constant(format!("{stem}.running_var"), &[channels], &values(running.var.value_sync()));
                self.node("BatchNormalization", &[x, &scale, &bias, &mean, &var], vec![float("epsilon", NORM_EPS)])
            }
        }
    }

    /// `[top, bottom, left, right]` padding of the last two axes.
    fn pad(&mut self, x: &str, [t, b, l, r]: [usize; 4], mode: &str) -> String {
        let pads = self.constant_i64("pads", &[0, 0, t as i64, l as i64, 0, 0, b as i64, r as i64]);
        self.node("Pad", &[x, &pads], vec![string("mode", mode)])
    }

    fn unary(&mut self, op: &str, x: &str) -> String {
        self.node(op, &[x], vec![])
    }

    fn leaky_relu(&mut self, x: &str) -> String {
        self.node("LeakyRelu", &[x], vec![float("alpha", LEAKY_SLOPE)])
    }

    /// A fixed filter `[C, 1, k, k]` on every channel alone (a depthwise convolution).
    fn depthwise(&mut self, op: &str, x: &str, data: TensorData, stride: i64, pad: i64) -> String {
        let dims = data.shape().to_vec();
        let name = self.fresh("blur_filter");
        let w = self.constant(name, &dims, &data.convert::<f32>().try_into_vec::<f32>().expect("f32 filter"));
        let attrs = vec![
            ints("kernel_shape", &[dims[2] as i64, dims[3] as i64]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad, pad, pad, pad]),
            int("group", dims[0] as i64),
        ];
        self.node(op, &[x, &w], attrs)
    }

    fn blur_down(&mut self, x: &str, blur: &BlurDown) -> String {
        let padded = self.pad(x, [1; 4], "reflect");
        self.depthwise("Conv", &padded, blur.filter(), 2, 0)
    }

    fn blur_up(&mut self, x: &str, blur: &BlurUp) -> String {
        let padded = self.pad(x, [1; 4], "edge");
        let up = self.depthwise("ConvTranspose", &padded, blur.filter(), 2, 2);
        // 2H + 2 to 2H: one pixel off each side
        let (starts, ends, axes) = (self.constant_i64("starts", &[1, 1]), self.constant_i64("ends", &[-1, -1]), self.constant_i64("axes", &[2, 3]));
        self.node("Slice", &[&up, &starts, &ends, &axes], vec![])
    }

    fn resnet(&mut self, r: &ResnetGenerator, x: &str) -> String {
        let stem_c = r.stem.weight.dims()[0];
        let x = self.pad(x, [3; 4], "reflect");
        let x = self.conv(&x, &r.stem);
        let x = self.norm(&x, &r.stem_norm, stem_c);
        let mut x = self.unary("Relu", &x);
        for stage in &r.down {
            let c = stage.conv.weight.dims()[0];
            x = self.conv(&x, &stage.conv);
            x = self.norm(&x, &stage.norm, c);
            x = self.unary("Relu", &x);
            if let Some(blur) = &stage.blur {
                x = self.blur_down(&x, blur);
            }
        }
        for block in &r.blocks {
            let c = block.conv1.weight.dims()[0];
            let y = self.pad(&x, [1; 4], "reflect");
            let y = self.conv(&y, &block.conv1);
            let y = self.norm(&y, &block.norm1, c);
            let y = self.unary("Relu", &y);
            let y = self.pad(&y, [1; 4], "reflect");
            let y = self.conv(&y, &block.conv2);
            let y = self.norm(&y, &block.norm2, c);
            x = self.node("Add", &[&x, &y], vec![]);
        }
        for stage in &r.up {
            if let Some(blur) = &stage.blur {
                x = self.blur_up(&x, blur);
            }
            let c = match &stage.conv {
                UpConv::Transposed(conv) => {
                    x = self.conv_transpose(&x, conv);
                    conv.weight.dims()[1]
                }
                UpConv::AfterBlur(conv) => {
                    x = self.conv(&x, conv);
                    conv.weight.dims()[0]
                }
            };
            x = self.norm(&x, &stage.norm, c);
            x = self.unary("Relu", &x);
        }
        let x = self.pad(&x, [3; 4], "reflect");
        let x = self.conv(&x, &r.head);
        self.unary("Tanh", &x)
    }

    /// Level `i` of the U-Net and the levels inside it, as its forward pass runs them.
    fn unet(&mut self, u: &UnetGenerator, i: usize, x: String) -> String {
        let b: &UnetBlock = &u.blocks[i];
        // the official in-place LeakyReLU: the skip carries leaky_relu(x)
        let x = if b.level == UnetLevel::Outermost { x } else { self.leaky_relu(&x) };
        let mut y = self.conv(&x, &b.down);
        if let Some(norm) = &b.down_norm {
            y = self.norm(&y, norm, b.down.weight.dims()[0]);
        }
        if b.level != UnetLevel::Innermost {
            y = self.unet(u, i + 1, y);
        }
        let y = self.unary("Relu", &y);
        let y = self.conv_transpose(&y, &b.up);
        match &b.up_norm {
            None => self.unary("Tanh", &y),
            Some(norm) => {
                let y = self.norm(&y, norm, b.up.weight.dims()[1]);
                self.node("Concat", &[&x, &y], vec![int("axis", 1)])
            }
        }
    }
}
