#!/usr/bin/env python3
"""Make the golden fixtures in tests/fixtures/ with the PyTorch reference.

CI never runs this; the fixtures it writes are committed. To remake them
(set up the reference first, see ../shared/reference/README.md):

    ~/.venvs/torchref/bin/python scripts/make_fixtures.py

Variants the reference script does not construct itself (affine instance
norm, dropout in the ResNet blocks, the PixelGAN) are built here with the
official code's layout, starting from the reference's classes.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_reference(ref_dir):
    sys.path.insert(0, ref_dir)
    import cyclegan_ref
    return cyclegan_ref


class PixelDiscriminator(nn.Module):
    """The official 1x1 PixelGAN (models/networks.py), keys net.{0,2,3,5}."""

    def __init__(self, ref, in_c, ndf, norm_kind):
        super().__init__()
        bias = norm_kind == "instance"
        self.net = nn.Sequential(
            nn.Conv2d(in_c, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), ref.norm(norm_kind, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias))

    def forward(self, x):
        return self.net(x)


def make_affine(net, gen):
    """Give every instance norm a learned scale and shift (keeping conv biases,
    as the official code does for any InstanceNorm2d partial)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                affine = nn.InstanceNorm2d(child.num_features, affine=True, track_running_stats=False)
                with torch.no_grad():
                    affine.weight.copy_(1 + 0.2 * torch.randn(child.num_features, generator=gen))
                    affine.bias.copy_(0.2 * torch.randn(child.num_features, generator=gen))
                setattr(parent, name, affine)
    return net


def add_dropout(net):
    """Official ResnetBlock with use_dropout: nn.Dropout(0.5) at index 4 of conv_block."""
    for m in net.modules():
        if hasattr(m, "conv_block"):
            layers = list(m.conv_block)
            m.conv_block = nn.Sequential(*(layers[:4] + [nn.Dropout(0.5)] + layers[4:]))
    return net


def randomize_batch_norm(net, gen, in_c, size):
    """Non-trivial batch-norm parameters and running statistics."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn(m.num_features, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(2, in_c, size[0], size[1], generator=gen) * 2 - 1)


def build(ref, case, gen):
    kind, arch = case["net"], case["arch"]
    norm = case.get("norm", "instance")
    base_norm = "instance" if norm == "instance_affine" else norm
    in_c, out_c = case.get("input_nc", 3), case.get("output_nc", 3)
    if kind == "generator":
        if arch.startswith("resnet"):
            net = ref.ResnetGenerator(in_c, out_c, case["ngf"], 9 if arch == "resnet_9blocks" else 6, base_norm)
        else:
            net = ref.UnetGenerator(in_c, out_c, 8 if arch == "unet_256" else 7, case["ngf"], base_norm)
        if case.get("dropout"):
            add_dropout(net)
    else:
        if arch == "pixel":
            net = PixelDiscriminator(ref, in_c, case["ndf"], base_norm)
        else:
            net = ref.NLayerDiscriminator(in_c, case["ndf"], case.get("n_layers", 3), base_norm)
    ref.init_normal(net)
    if norm == "instance_affine":
        make_affine(net, gen)
    if norm == "batch":
        randomize_batch_norm(net, gen, in_c, case["size"])
    return net


def make_case(ref, out_dir, case):
    """One network, one input, the output (eval mode; plus train mode for
    batch norm), and for cases marked `grads` the gradients of a fixed
    probe loss with respect to the input and every parameter."""
    gen = torch.Generator().manual_seed(case["seed"])
    torch.manual_seed(case["seed"])
    net = build(ref, case, gen)
    in_c = case.get("input_nc", 3)
    h, w = case["size"]
    x = torch.rand(case.get("batch", 1), in_c, h, w, generator=gen) * 2 - 1
    tensors = {f"w.{k}": v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    net.eval()
    with torch.no_grad():
        tensors["output"] = net(x).contiguous()
    tensors["input"] = x.contiguous()
    if case.get("norm") == "batch":
        net.train()
        with torch.no_grad():
            tensors["output_train"] = net(x).contiguous()
        for k, v in net.state_dict().items():
            if "running" in k:
                tensors[f"after_train.{k}"] = v.detach().clone().contiguous()
    if case.get("grads"):
        net.train()  # instance norm and no dropout: same function as eval
        xg = x.clone().requires_grad_(True)
        y = net(xg)
        probe = torch.rand(y.shape, generator=gen) * 2 - 1
        (y * probe).sum().backward()
        tensors["probe"] = probe
        tensors["grad.input"] = xg.grad.contiguous()
        for k, p in net.named_parameters():
            tensors[f"grad.{k}"] = p.grad.contiguous()
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in case.items()}
    path = os.path.join(out_dir, f"{case['name']}.safetensors")
    save_file(tensors, path, metadata=meta)
    return path


NET_CASES = [
    # generators, the official default norm
    dict(name="g_resnet9", net="generator", arch="resnet_9blocks", ngf=8, size=[32, 32], batch=2, seed=1),
    dict(name="g_resnet6_grads", net="generator", arch="resnet_6blocks", ngf=4, size=[20, 28], seed=2, grads=True),
    dict(name="g_unet128", net="generator", arch="unet_128", ngf=2, size=[128, 128], seed=3),
    dict(name="g_unet256_gray", net="generator", arch="unet_256", ngf=2, size=[256, 256], seed=4, input_nc=1, output_nc=1),
    dict(name="g_unet128_grads", net="generator", arch="unet_128", ngf=2, size=[128, 128], seed=5, grads=True,
         input_nc=1, output_nc=1),
    # generator variants
    dict(name="g_resnet6_batch", net="generator", arch="resnet_6blocks", ngf=4, norm="batch", size=[24, 24], batch=2, seed=6),
    dict(name="g_resnet6_none", net="generator", arch="resnet_6blocks", ngf=4, norm="none", size=[24, 24], seed=7),
    dict(name="g_resnet6_affine", net="generator", arch="resnet_6blocks", ngf=4, norm="instance_affine", size=[24, 24], seed=8),
    dict(name="g_resnet6_dropout", net="generator", arch="resnet_6blocks", ngf=4, dropout=True, size=[24, 24], seed=9),
    dict(name="g_resnet6_rgba_to_gray", net="generator", arch="resnet_6blocks", ngf=4, input_nc=4, output_nc=1, size=[16, 24], seed=10),
    dict(name="g_unet128_batch", net="generator", arch="unet_128", ngf=2, norm="batch", size=[128, 128], batch=2, seed=11,
         input_nc=1, output_nc=1),
    dict(name="g_unet128_affine", net="generator", arch="unet_128", ngf=2, norm="instance_affine", size=[128, 128], seed=12),
    dict(name="g_unet128_none", net="generator", arch="unet_128", ngf=2, norm="none", size=[128, 128], seed=13),
    # discriminators
    dict(name="d_basic", net="discriminator", arch="basic", ndf=8, size=[64, 64], batch=2, seed=20, grads=True),
    dict(name="d_nlayers2", net="discriminator", arch="n_layers", n_layers=2, ndf=8, size=[32, 48], seed=21),
    dict(name="d_nlayers4_batch", net="discriminator", arch="n_layers", n_layers=4, ndf=4, norm="batch", size=[64, 64], batch=2, seed=22),
    dict(name="d_basic_none", net="discriminator", arch="basic", ndf=8, norm="none", size=[64, 64], seed=23),
    dict(name="d_basic_affine", net="discriminator", arch="basic", ndf=8, norm="instance_affine", size=[64, 64], seed=24),
    dict(name="d_pixel", net="discriminator", arch="pixel", ndf=8, size=[16, 16], seed=25),
    dict(name="d_pixel_batch", net="discriminator", arch="pixel", ndf=8, norm="batch", size=[16, 16], batch=2, seed=26),
    dict(name="d_basic_gray", net="discriminator", arch="basic", ndf=8, input_nc=1, size=[64, 64], seed=27),
]


def make_gp_case(ref, out_dir):
    """WGAN-GP's penalty as the official cal_gradient_penalty computes it
    (double backward through the discriminator), and its weight gradient."""
    gen = torch.Generator().manual_seed(30)
    torch.manual_seed(30)
    d = ref.init_normal(ref.NLayerDiscriminator(3, 4, 3, "instance"))
    real = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    fake = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    alpha = torch.rand(2, generator=gen)
    tensors = {f"w.{k}": v.detach().clone().contiguous() for k, v in d.state_dict().items()}
    with torch.enable_grad():
        a = alpha.view(2, 1, 1, 1)
        x = (a * real + (1 - a) * fake).requires_grad_(True)
        out = d(x)
        g = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True)[0].view(2, -1)
        gp = (((g + 1e-16).norm(2, dim=1) - 1.0) ** 2).mean() * 10.0
        gp.backward()
    tensors.update(real=real, fake=fake, alpha=alpha, penalty=gp.detach().reshape(1))
    for k, p in d.named_parameters():
        # a bias before instance norm cannot change grad_x D: no gradient at all
        tensors[f"grad.{k}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).contiguous()
    path = os.path.join(out_dir, "gp_basic.safetensors")
    save_file(tensors, path, metadata={"net": "discriminator", "arch": "basic", "ndf": "4"})
    return path


def run_ref(ref_script, *args):
    py = sys.executable
    out = subprocess.run([py, ref_script, *args], check=True, capture_output=True, text=True)
    return out.stdout


def make_pth_cases(ref, ref_script, out_dir):
    """A .pth generator from the reference's make-g, its legacy-format and
    'found in the wild' twins, a hostile pickle, and the reference's own
    translations of a square and a non-square odd-sized image."""
    from PIL import Image

    pth = os.path.join(out_dir, "g_resnet9.pth")
    run_ref(ref_script, "make-g", "--arch", "resnet_9blocks", "--ngf", "8", "--seed", "3", "--out", pth)
    sd = torch.load(pth, map_location="cpu")

    # Legacy (pre-1.6) container with the quirks of old and multi-GPU checkpoints:
    # DataParallel's module. prefix, InstanceNorm running stats, blocks under another name.
    wild = {}
    for k, v in sd.items():
        k2 = k.replace(".conv_block.", ".block.")
        wild["module." + k2] = v
    for i in (2, 5, 8):
        wild[f"module.model.{i}.running_mean"] = torch.zeros(sd[f"model.{i - 1}.weight"].shape[0])
        wild[f"module.model.{i}.running_var"] = torch.ones(sd[f"model.{i - 1}.weight"].shape[0])
        wild[f"module.model.{i}.num_batches_tracked"] = torch.tensor(0)
    torch.save(wild, os.path.join(out_dir, "g_resnet9_wild_legacy.pth"), _use_new_zipfile_serialization=False)

    # A pickle that would run a shell command under torch.load(weights_only=False).
    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/cyclegan_pwned",))

    torch.save({"model.1.weight": sd["model.1.weight"], "payload": Hostile()}, os.path.join(out_dir, "hostile.pth"))

    # Images: an emoji as is (square) and an odd-sized non-square crop of another.
    data = os.path.join(ROOT, "..", "shared", "data", "emoji64")
    square = os.path.join(out_dir, "img_square.png")
    odd = os.path.join(out_dir, "img_odd.png")
    Image.open(os.path.join(data, "testA", "1f353.png")).convert("RGB").save(square)
    Image.open(os.path.join(data, "testA", "1f974.png")).convert("RGB").crop((5, 9, 50, 46)).save(odd)
    for src in (square, odd):
        dst = src.replace("img_", "ref_g_resnet9_")
        run_ref(ref_script, "translate", "--checkpoint", pth, "--arch", "resnet_9blocks", "--ngf", "8",
                "--input", src, "--output", dst)


def reference_losses(ref, init, files_a, files_b, mode, dtype):
    """The reference's three steps, in float32 or float64 (same float32 init)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.enable_grad():
            cast = {k: v.to(dtype) for k, v in init.items()}
            la = [ref.load_png(p).to(dtype) for p in files_a]
            lb = [ref.load_png(p).to(dtype) for p in files_b]
            rows, _ = ref.train_steps(cast, la, lb, 3, "resnet_6blocks", 4, 8, mode)
    finally:
        torch.set_default_dtype(default)
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def worst_relative(rows, truth):
    return max(abs(r[k] - t[k]) / abs(t[k]) for r, t in zip(rows, truth) for k in r)


# A fixture is kept only if the float32 reference agrees with its own float64
# run to this: Adam's first steps turn rounding noise in near-zero gradients
# into full +-lr moves, so for some initialisations float32 training differs
# from exact arithmetic by 1e-3 within three steps, and a comparison at 1e-4
# would test rounding, not the implementation.
WELL_CONDITIONED = 2e-5


def make_train_cases(ref, ref_script, out_dir):
    """Initial weights for all four networks and the reference's losses of
    the first three official optimisation steps, for lsgan and vanilla."""
    from PIL import Image
    from safetensors.torch import load_file

    data = os.path.join(ROOT, "..", "shared", "data", "emoji64")
    a = ["1f0cf.png", "1f194.png"]
    b = sorted(os.listdir(os.path.join(data, "trainB")))[:2]
    files_a, files_b = [], []
    for i, name in enumerate(a):
        p = os.path.join(out_dir, f"train_a{i}.png")
        Image.open(os.path.join(data, "trainA", name)).convert("RGB").save(p)
        files_a.append(p)
    for i, name in enumerate(b):
        p = os.path.join(out_dir, f"train_b{i}.png")
        Image.open(os.path.join(data, "trainB", name)).convert("RGB").save(p)
        files_b.append(p)
    init_path = os.path.join(out_dir, "train_init.safetensors")
    for seed in range(20):
        run_ref(ref_script, "make-init", "--arch", "resnet_6blocks", "--ngf", "4", "--ndf", "8",
                "--seed", str(seed), "--out", init_path)
        init = load_file(init_path)
        deviations = {}
        for mode in ("lsgan", "vanilla"):
            f32 = reference_losses(ref, init, files_a, files_b, mode, torch.float32)
            f64 = reference_losses(ref, init, files_a, files_b, mode, torch.float64)
            deviations[mode] = worst_relative(f32, f64)
        print(f"init seed {seed}: float32 vs float64 reference over 3 steps: {deviations}")
        if max(deviations.values()) < WELL_CONDITIONED:
            break
    else:
        sys.exit("no well-conditioned initialisation found")
    for mode in ("lsgan", "vanilla"):
        out = run_ref(ref_script, "train", "--init", init_path, "--a", *files_a, "--b", *files_b, "--steps", "3",
                      "--arch", "resnet_6blocks", "--ngf", "4", "--ndf", "8", "--gan-mode", mode)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        for r in rows:
            r.pop("seconds", None)
        with open(os.path.join(out_dir, f"train_losses_{mode}.json"), "w") as f:
            json.dump({"init_seed": seed, "float32_vs_float64": deviations[mode], "steps": rows}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--only", choices=["nets", "pth", "train", "gp"], help="make one group only")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ref = load_reference(os.path.abspath(a.ref))
    ref_script = os.path.join(os.path.abspath(a.ref), "cyclegan_ref.py")
    torch.set_num_threads(1)  # deterministic reductions
    if a.only in (None, "nets"):
        for case in NET_CASES:
            print(make_case(ref, a.out, case))
    if a.only in (None, "pth"):
        make_pth_cases(ref, ref_script, a.out)
    if a.only in (None, "gp"):
        print(make_gp_case(ref, a.out))
    if a.only in (None, "train"):
        make_train_cases(ref, ref_script, a.out)
    for name in sorted(os.listdir(a.out)):
        size = os.path.getsize(os.path.join(a.out, name))
        if size > 1_000_000:
            sys.exit(f"{name} is {size} bytes: fixtures must stay under 1 MB")


if __name__ == "__main__":
    main()
