"""Golden fixtures for `cyclegan eval` (tests/eval.rs), from the reference packages:
pytorch-fid 0.3.0 (its own InceptionV3 and FIDInception* classes, and
`calculate_frechet_distance`), torch-fidelity 0.4.0 (`kid_features_to_metric`) and
scikit-image (`structural_similarity`).

    ~/.venvs/torchref/bin/pip install torch torchvision pytorch-fid torch-fidelity scikit-image
    ~/.venvs/torchref/bin/python scripts/make_eval_fixtures.py

Nothing is downloaded: the Inception's weights follow a formula that tests/eval.rs
computes too (`formula_value` below), so only its outputs are committed.
"""
import json, os, sys

import numpy as np
import torch
import torchvision.transforms as TF
from PIL import Image
from safetensors.numpy import save_file
from skimage.metrics import structural_similarity

import pytorch_fid.inception as pfi
from pytorch_fid.fid_score import calculate_frechet_distance
from torch_fidelity.metric_kid import kid_features_to_metric

FX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def formula_value(key, n):
    """n values in [-1, 1): splitmix64 of (FNV-1a-64(key) + i), top 53 bits."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(key)) + np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return 2.0 * u - 1.0


def formula_tensor(key, shape):
    n = int(np.prod(shape))
    v = formula_value(key, n)
    if key.endswith("conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        v = v * np.sqrt(6.0 / fan_in)
    elif key.endswith("bn.weight"):
        v = 1.0 + 0.2 * v
    elif key.endswith("bn.running_var"):
        v = 1.0 + 0.25 * (v + 1.0)
    elif key.endswith(("bn.bias", "bn.running_mean")):
        v = 0.2 * v
    else:  # fc, counters
        v = np.zeros(n)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def formula_inception():
    """pytorch-fid's fid_inception_v3(), built from its own classes, with formula weights."""
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    sd = {k: (formula_tensor(k, tuple(v.shape)) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    return net


def inception_features():
    pfi.fid_inception_v3 = formula_inception  # InceptionV3 builds it through this
    model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    # an RGBA image with transparent and half-transparent pixels: pytorch-fid drops alpha
    rgba = np.zeros((21, 33, 4), np.uint8)
    yy, xx = np.mgrid[0:21, 0:33]
    rgba[..., 0] = xx * 7; rgba[..., 1] = yy * 11; rgba[..., 2] = 200; rgba[..., 3] = (xx * 8) % 256
    Image.fromarray(rgba, "RGBA").save(os.path.join(FX, "eval_rgba.png"))
    names = ["img_odd.png", "img_square.png", "eval_rgba.png"]
    feats = []
    with torch.no_grad():
        for n in names:  # one at a time: the images differ in size (pytorch-fid resizes inside the model)
            x = TF.ToTensor()(Image.open(os.path.join(FX, n)).convert("RGB")).unsqueeze(0)
            feats.append(model(x)[0].squeeze(-1).squeeze(-1)[0].numpy())
    f = np.stack(feats).astype(np.float32)
    print("features: mean %.4f std %.4f" % (f.mean(), f.std()), file=sys.stderr)
    save_file({"features": f}, os.path.join(FX, "eval_inception.safetensors"), metadata={"images": ",".join(names)})


def feature_sets():
    rng = np.random.RandomState(7)
    cases = {"full": (16, 300, 250, 10, 100), "deficient": (256, 60, 50, 5, 40)}
    tensors, expected = {}, {}
    for name, (dims, na, nb, subsets, size) in cases.items():
        # non-negative, correlated, shifted between the sets, at pool3's scale (FID in the tens)
        mix = rng.rand(dims, dims)
        a = (np.abs(rng.randn(na, dims)) @ mix * (2.0 / dims)).astype(np.float32)
        b = (np.abs(rng.randn(nb, dims) + 0.6) @ mix * (2.0 / dims)).astype(np.float32)
        tensors[f"{name}.a"], tensors[f"{name}.b"] = a, b
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        fid = calculate_frechet_distance(a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False))
        kid_args = dict(kid_subsets=subsets, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                        kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False)
        kid = kid_features_to_metric(torch.from_numpy(a64), torch.from_numpy(b64), kid_subset_size=size, **kid_args)
        # torch-fidelity refuses subsets larger than a set; ours caps them: the same as asking for the smaller size
        capped = kid_features_to_metric(torch.from_numpy(a64), torch.from_numpy(b64), kid_subset_size=min(na, nb), **kid_args)
        expected[name] = {
            "dims": dims, "kid_subsets": subsets, "kid_subset_size": size, "fid": float(fid),
            "kid": kid["kernel_inception_distance_mean"], "kid_std": kid["kernel_inception_distance_std"],
            "kid_capped": capped["kernel_inception_distance_mean"], "kid_capped_std": capped["kernel_inception_distance_std"],
        }
    save_file(tensors, os.path.join(FX, "eval_sets.safetensors"))
    return expected


def paired():
    out = {}
    for a, b in [("img_square.png", "train_a0.png"), ("train_a0.png", "train_b0.png")]:
        x = np.asarray(Image.open(os.path.join(FX, a)).convert("RGB"))
        y = np.asarray(Image.open(os.path.join(FX, b)).convert("RGB"))
        mse = np.mean((x.astype(np.float64) - y) ** 2)
        out[f"{a} {b}"] = {
            "l1": float(np.mean(np.abs(x.astype(np.float64) - y))),
            "psnr": float(10 * np.log10(255.0**2 / mse)),
            "ssim": float(structural_similarity(x, y, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=255)),
        }
    return out


if __name__ == "__main__":
    inception_features()
    expected = {"sets": feature_sets(), "paired": paired(),
                "versions": {"torch": torch.__version__, "pytorch_fid": "0.3.0", "torch_fidelity": "0.4.0"}}
    with open(os.path.join(FX, "eval_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))
