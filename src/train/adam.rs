//! Adam, written out so that it matches PyTorch's `torch.optim.Adam` step for
//! step (betas `(beta1, 0.999)`, eps 1e-8, bias correction as PyTorch applies
//! it) and so that its moments are saved under the official parameter names,
//! which is what makes a resumed run continue exactly.

use std::collections::HashMap;

use burn::module::Param;
use burn::tensor::{Gradients, Tensor};

use crate::checkpoint::{Mismatch, StateDict};
use crate::ops::{self, AdamCoefficients};
use crate::nets::{NamedTensors, Slot};

pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

/// First and second moment of one parameter, flattened (the update is elementwise).
struct Moments {
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

pub struct Adam {
    beta1: f64,
    /// Steps taken (PyTorch counts per parameter; every parameter here gets a
    /// gradient at every step, so one counter is the same thing).
    steps: u64,
    moments: HashMap<String, Moments>,
}

impl Adam {
    pub fn new(beta1: f64) -> Self {
        Self { beta1, steps: 0, moments: HashMap::new() }
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One step at learning rate `lr` on every trainable tensor of `nets`,
    /// named `<name>.<official key>`.
    /// Each gradient is taken out of `grads` as it is used, so that the CPU
    /// path may read its buffer without a copy.
    pub fn step(&mut self, lr: f64, nets: &mut [(&str, &mut dyn NamedTensors)], grads: &mut Gradients) {
        self.steps += 1;
        let t = self.steps as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2_sqrt = (1.0 - BETA2.powi(t)).sqrt();
        let step_size = lr / bias1;
        for (name, net) in nets.iter_mut() {
            net.visit_named(name, &mut |key, slot| match slot {
                Slot::Weight(p) => self.update(key, p, grads, step_size, bias2_sqrt),
                Slot::Matrix(p) => self.update(key, p, grads, step_size, bias2_sqrt),
                Slot::Vector(p, _) => self.update(key, p, grads, step_size, bias2_sqrt),
                Slot::Running(_) | Slot::Counter | Slot::Fixed(_) => {}
            });
        }
    }

    fn update<const D: usize>(
        &mut self,
        key: String,
        p: &mut Param<Tensor<D>>,
        grads: &mut Gradients,
        step_size: f64,
        bias2_sqrt: f64,
    ) {
        let Some(grad) = p.val().grad_remove(grads) else { return };
        let shape = grad.shape();
        let n = shape.num_elements();
        let g = grad.reshape([n]);
        let m = self.moments.entry(key).or_insert_with(|| Moments {
            exp_avg: Tensor::zeros([n], &g.device()),
            exp_avg_sq: Tensor::zeros([n], &g.device()),
        });
        // The scalars in f32, as burn's element-wise ops take them.
        let c = AdamCoefficients {
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: BETA2 as f32,
            one_minus_beta2: (1.0 - BETA2) as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: EPS as f32,
            step_size: step_size as f32,
        };
        // Taken out of the map for the step so that the CPU path may update
        // their buffers in place (nothing else holds them).
        let zeros = || Tensor::<1>::empty([0], &g.device());
        let (avg, avg_sq) = (std::mem::replace(&mut m.exp_avg, zeros()), std::mem::replace(&mut m.exp_avg_sq, zeros()));
        // The parameter taken out of `p` rather than cloned, for the same reason.
        let placeholder = Param::initialized(p.id, Tensor::empty([0; D], &g.device()));
        *p = std::mem::replace(p, placeholder).map(|old| {
            let require_grad = old.is_require_grad();
            let [param, avg, avg_sq] = ops::adam_step(old.inner().reshape([n]), g, avg, avg_sq, c);
            (m.exp_avg, m.exp_avg_sq) = (avg, avg_sq);
            let fresh = Tensor::from_inner(param.reshape(shape));
            if require_grad { fresh.require_grad() } else { fresh }
        });
    }

    /// The moments as tensors named `<param>.exp_avg` / `<param>.exp_avg_sq`.
    pub fn state(&self) -> StateDict {
        let mut dict = StateDict::default();
        for (key, m) in &self.moments {
            dict.insert(format!("{key}.exp_avg"), m.exp_avg.to_data());
            dict.insert(format!("{key}.exp_avg_sq"), m.exp_avg_sq.to_data());
        }
        dict
    }

    /// Restore moments saved by [`Adam::state`] and the step count.
    pub fn restore(beta1: f64, steps: u64, mut dict: StateDict, device: &burn::tensor::Device) -> Result<Self, Mismatch> {
        let mut moments = HashMap::new();
        let keys: Vec<String> = dict.keys().filter_map(|k| k.strip_suffix(".exp_avg").map(str::to_string)).collect();
        let mut missing = Vec::new();
        for key in keys {
            let avg = dict.remove(&format!("{key}.exp_avg")).expect("listed");
            match dict.remove(&format!("{key}.exp_avg_sq")) {
                Some(sq) => {
                    moments.insert(key, Moments { exp_avg: Tensor::from_data(avg, device), exp_avg_sq: Tensor::from_data(sq, device) });
                }
                None => missing.push(format!("{key}.exp_avg_sq")),
            }
        }
        let unexpected: Vec<String> = dict.keys().cloned().collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(Mismatch { missing, unexpected, wrong: Vec::new() });
        }
        Ok(Self { beta1, steps, moments })
    }
}
