//! The training methods `--model` picks, and the option defaults each one's
//! official code sets (CycleGAN: junyanz/pytorch-CycleGAN-and-pix2pix; CUT
//! and FastCUT: taesungp/contrastive-unpaired-translation, whose
//! `cut_model.py` sets the mode defaults and whose base options differ in
//! init and epochs).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::nets::InitType;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// CycleGAN (Zhu et al. 2017): two generators and two discriminators, cycle-consistency and identity losses.
    #[default]
    #[value(name = "cyclegan")]
    CycleGan,
    /// CUT (Park et al. 2020): one generator, a patchwise contrastive (PatchNCE) loss between input and
    /// translation, and the same loss on B as an identity term.
    Cut,
    /// FastCUT: CUT without the identity term, ten times the PatchNCE weight, flip equivariance; about
    /// twice as fast and half the memory of CUT.
    Fastcut,
}

/// How a method's official code loads its data, where the methods differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPolicy {
    /// The last batch of an epoch is dropped when incomplete (CUT's loader's `drop_last`).
    pub drop_last_incomplete_batch: bool,
    /// Once the learning rate decays (CUT's "fine-tuning" phase) images are
    /// loaded at --crop-size: resizing before cropping stops.
    pub crop_size_loads_once_decaying: bool,
}

/// What a method changes in the defaults of the options they share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defaults {
    pub n_epochs: usize,
    pub n_epochs_decay: usize,
    pub init_type: InitType,
    /// CUT and FastCUT only.
    pub lambda_nce: f64,
    pub nce_idt: bool,
    pub flip_equivariance: bool,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::CycleGan => "cyclegan",
            Self::Cut => "cut",
            Self::Fastcut => "fastcut",
        }
    }

    /// CUT or FastCUT: one generator and the contrastive loss.
    pub fn is_cut(self) -> bool {
        matches!(self, Self::Cut | Self::Fastcut)
    }

    pub fn data_policy(self) -> DataPolicy {
        let cut = self.is_cut();
        DataPolicy { drop_last_incomplete_batch: cut, crop_size_loads_once_decaying: cut }
    }

    pub fn defaults(self) -> Defaults {
        match self {
            Self::CycleGan => Defaults {
                n_epochs: 100,
                n_epochs_decay: 100,
                init_type: InitType::Normal,
                lambda_nce: 0.0,
                nce_idt: false,
                flip_equivariance: false,
            },
            // The CUT code's base options: xavier init, 200 + 200 epochs.
            Self::Cut => Defaults {
                n_epochs: 200,
                n_epochs_decay: 200,
                init_type: InitType::Xavier,
                lambda_nce: 1.0,
                nce_idt: true,
                flip_equivariance: false,
            },
            Self::Fastcut => Defaults {
                n_epochs: 150,
                n_epochs_decay: 50,
                init_type: InitType::Xavier,
                lambda_nce: 10.0,
                nce_idt: false,
                flip_equivariance: true,
            },
        }
    }
}
