//! The names `cyclegan download` and `--model NAME` know: the official
//! pretrained generators and datasets, where each lives on the official host,
//! and the size and SHA-256 of the datasets where they are published.
//!
//! Names and paths are those of the official scripts (junyanz/pytorch-CycleGAN-and-pix2pix
//! `scripts/download_cyclegan_model.sh` and `datasets/download_cyclegan_dataset.sh`,
//! taesungp/contrastive-unpaired-translation's README for CUT).

/// The official host; `--mirror` / `CYCLEGAN_MIRROR` replace it and keep the paths.
/// Models over http as the official script fetches them (they carry no
/// checksum; what arrives is read by the restricted pickle reader and its
/// SHA-256 shown), datasets over https, which that host also answers.
pub const MODEL_HOST: &str = "http://efrosgans.eecs.berkeley.edu";
pub const DATASET_HOST: &str = "https://efrosgans.eecs.berkeley.edu";

/// The archive all CUT and FastCUT generators come in.
pub const CUT_ARCHIVE: &str = "/CUT/pretrained_models.tar";

/// Which code trained a pretrained generator (all are resnet_9blocks, ngf 64,
/// instance norm, no dropout; CUT's are anti-aliased).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    CycleGan,
    Cut,
    FastCut,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::CycleGan => "CycleGAN",
            Self::Cut => "CUT",
            Self::FastCut => "FastCUT",
        }
    }
}

/// A pretrained generator.
#[derive(Clone, Copy, Debug)]
pub struct ModelEntry {
    pub name: &'static str,
    pub kind: ModelKind,
    /// What it translates from and to.
    pub from: &'static str,
    pub to: &'static str,
}

impl ModelEntry {
    /// Its path on the host: the `.pth` itself, or for CUT the archive that holds it.
    pub fn path(&self) -> String {
        match self.kind {
            ModelKind::CycleGan => format!("/cyclegan/pretrained_models/{}.pth", self.name),
            ModelKind::Cut | ModelKind::FastCut => CUT_ARCHIVE.to_string(),
        }
    }

    /// For CUT: how the archive member's path ends.
    pub fn member_suffix(&self) -> String {
        format!("{}_pretrained/latest_net_G.pth", self.name)
    }
}

const fn cyclegan(name: &'static str, from: &'static str, to: &'static str) -> ModelEntry {
    ModelEntry { name, kind: ModelKind::CycleGan, from, to }
}

const fn cut(name: &'static str, kind: ModelKind, from: &'static str, to: &'static str) -> ModelEntry {
    ModelEntry { name, kind, from, to }
}

pub const MODELS: &[ModelEntry] = &[
    cyclegan("apple2orange", "apple", "orange"),
    cyclegan("orange2apple", "orange", "apple"),
    cyclegan("summer2winter_yosemite", "summer Yosemite", "winter Yosemite"),
    cyclegan("winter2summer_yosemite", "winter Yosemite", "summer Yosemite"),
    cyclegan("horse2zebra", "horse", "zebra"),
    cyclegan("zebra2horse", "zebra", "horse"),
    cyclegan("monet2photo", "Monet painting", "photo"),
    cyclegan("style_monet", "photo", "Monet painting"),
    cyclegan("style_cezanne", "photo", "Cezanne painting"),
    cyclegan("style_ukiyoe", "photo", "Ukiyo-e print"),
    cyclegan("style_vangogh", "photo", "Van Gogh painting"),
    cyclegan("sat2map", "satellite photo", "map"),
    cyclegan("map2sat", "map", "satellite photo"),
    cyclegan("cityscapes_photo2label", "street photo", "label map"),
    cyclegan("cityscapes_label2photo", "label map", "street photo"),
    cyclegan("facades_photo2label", "facade photo", "label map"),
    cyclegan("facades_label2photo", "label map", "facade photo"),
    cyclegan("iphone2dslr_flower", "iPhone flower photo", "DSLR photo (shallow depth of field)"),
    cut("horse2zebra_cut", ModelKind::Cut, "horse", "zebra"),
    cut("horse2zebra_fastcut", ModelKind::FastCut, "horse", "zebra"),
    cut("cat2dog_cut", ModelKind::Cut, "cat", "dog"),
    cut("cat2dog_fastcut", ModelKind::FastCut, "cat", "dog"),
    cut("cityscapes_cut", ModelKind::Cut, "label map", "street photo"),
    cut("cityscapes_fastcut", ModelKind::FastCut, "label map", "street photo"),
];

/// A dataset zip: `trainA`, `trainB`, `testA`, `testB` under a folder of its name.
#[derive(Clone, Copy, Debug)]
pub struct DatasetEntry {
    pub name: &'static str,
    /// Its two domains.
    pub about: &'static str,
    /// Bytes and SHA-256 of the zip, where published.
    pub published: Option<(u64, &'static str)>,
}

impl DatasetEntry {
    pub fn path(&self) -> String {
        format!("/cyclegan/datasets/{}.zip", self.name)
    }
}

const fn dataset(name: &'static str, about: &'static str, published: Option<(u64, &'static str)>) -> DatasetEntry {
    DatasetEntry { name, about, published }
}

/// Sizes and SHA-256 as TensorFlow Datasets publishes them for its `cycle_gan`
/// builder (tensorflow/datasets, `tensorflow_datasets/url_checksums/cycle_gan.txt`),
/// for the same zips under their older address.
pub const DATASETS: &[DatasetEntry] = &[
    dataset(
        "apple2orange",
        "apples (A) and oranges (B), from ImageNet",
        Some((78_456_409, "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8")),
    ),
    dataset(
        "summer2winter_yosemite",
        "Yosemite in summer (A) and winter (B), from Flickr",
        Some((132_640_856, "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9")),
    ),
    dataset(
        "horse2zebra",
        "horses (A) and zebras (B), from ImageNet",
        Some((116_867_962, "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1")),
    ),
    dataset(
        "monet2photo",
        "Monet paintings (A) and photos (B)",
        Some((305_231_073, "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04")),
    ),
    dataset(
        "cezanne2photo",
        "Cezanne paintings (A) and photos (B)",
        Some((279_885_071, "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff")),
    ),
    dataset(
        "ukiyoe2photo",
        "Ukiyo-e prints (A) and photos (B)",
        Some((292_946_532, "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08")),
    ),
    dataset(
        "vangogh2photo",
        "Van Gogh paintings (A) and photos (B)",
        Some((306_590_349, "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff")),
    ),
    dataset(
        "maps",
        "satellite photos (A) and Google maps (B) of New York",
        Some((1_476_754_427, "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e")),
    ),
    dataset(
        "facades",
        "building facade photos and their label maps (CMP Facades)",
        Some((35_135_868, "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0")),
    ),
    dataset(
        "iphone2dslr_flower",
        "flower photos from iPhones (A) and DSLRs (B), from Flickr",
        Some((339_964_458, "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113")),
    ),
    dataset("ae_photos", "photos to try the style models on (test images only)", None),
    dataset("mini", "a few images, to check a setup end to end", None),
];

/// Names the official dataset script knows that are not served: why, and where to go.
pub const NOT_REDISTRIBUTED: &[(&str, &str)] = &[(
    "cityscapes",
    "Cityscapes is not redistributed: register at https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip \
     and leftImg8bit_trainvaltest.zip, and combine them with the official datasets/prepare_cityscapes_dataset.py",
)];

pub fn model(name: &str) -> Option<&'static ModelEntry> {
    MODELS.iter().find(|m| m.name == name)
}

pub fn dataset_entry(name: &str) -> Option<&'static DatasetEntry> {
    DATASETS.iter().find(|d| d.name == name)
}
