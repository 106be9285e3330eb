#!/usr/bin/env python3
"""Golden fixtures for CUT and FastCUT (tests/fixtures/cut_*), made by the
official code, taesungp/contrastive-unpaired-translation (BSD licence).

CI never runs this; its outputs are committed. The official code is not
committed either: bring its Python files into a folder of their own, then run

    git -C CUT_CHECKOUT archive HEAD models util options data | tar -x -C ~/cutrepo
    ~/.venvs/torchref/bin/python scripts/make_cut_fixtures.py --cut-repo ~/cutrepo

(the venv of ../shared/reference/README.md; torch, numpy, safetensors, pillow).

What it writes:
- cut_g_{aa,noaa,aa_noup}.safetensors: the official ResnetGenerator
  (resnet_6blocks, ngf 4) with anti-aliased down- and up-sampling, with
  neither (--no_antialias --no_antialias_up), and with only the down side;
  its weights (`w.<official key>`, the `filt` buffers included), an input,
  the output, the NCE features at layers 0,4,8,12,16 (`feat.N`, what
  `netG(x, layers, encode_only=True)` returns), and for `aa` a probe with the
  gradients of sum(output * probe) (`grad.input`, `grad.<key>`).
- cut_latest_net_G.pth, ref_cut_g_odd.png: an anti-aliased generator saved
  as the official code saves it, and its translation of img_odd.png.
- cut_d_aa.safetensors: the anti-aliased basic PatchGAN, the same way.
- cut_netf.safetensors: PatchSampleF (mlp_sample, nc 16) on two images'
  features: its weights (`w.mlp_N...`), the features (`feat.N`), the patch ids
  it drew (`ids.N`) and the projections (`out.N`).
- cut_nce.safetensors: PatchNCELoss on unit vectors of two images' patches,
  per-patch losses and the gradient of their mean with respect to the
  queries, with negatives from the same image (`same.*`) and from the whole
  batch (`all.*`).
- cut_train_init_{cut,fastcut}.safetensors, cut_train_{cut,fastcut}.json: the official
  CUTModel (resnet_6blocks, ngf 4, ndf 8, netF_nc 32, num_patches 256,
  64 px, batch 1, each mode's official defaults otherwise) trained for three
  iterations on tests/fixtures/train_{a,b}{0,1}.png, step i on A[i mod 2]
  and B[i mod 2]. The initial G, D and F (F as created by the official
  data_dependent_initialize) are saved under `G.`, `D.`, `F.`, with the
  input tensors; the JSON has the losses of each step and every random draw
  the step made (the flip of --flip_equivariance and the patch ids of every
  NCE call, in order), so that the Rust test replays them. The draws of
  data_dependent_initialize's extra forward pass change no weights and are
  not needed. The seed is the first whose float32 run agrees with a float64
  run of the same draws to 3e-6 (see tests/fixtures/README.md on Adam's
  first steps).

PyTorch 2.15's CPU instance norm computes a wrong input gradient when the
gradient it is given is channels-last strided, which CUT's netF produces;
`fix_instance_norm_backward` hands it the gradient contiguous (values and
forward unchanged). Without it the official code's CPU training steps
differ from the true gradient (and from CUDA's) from the second step on.
"""
import argparse
import copy
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

class ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward makes the incoming gradient contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()  # a copy: the in-place ReLU after it may overwrite it

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def fix_instance_norm_backward():
    """PyTorch 2.15's CPU InstanceNorm2d backward is wrong when the gradient
    arriving at its output is channels-last strided (about 140 % relative L2
    off, against finite differences and against the same backward given the
    gradient made contiguous). CUT's netF permutes the generator's features
    to (N, H, W, C), so the PatchNCE gradient reaches the residual blocks'
    last instance norms in that layout, and the official training computes
    wrong generator gradients on the CPU (not on CUDA). The forward values
    are unchanged by this fix; only the gradient is given to instance norm
    contiguous, as the math requires."""
    forward = torch.nn.InstanceNorm2d.forward
    torch.nn.InstanceNorm2d.forward = lambda self, x: ContiguousGrad.apply(forward(self, x))


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures")
LAYERS = [0, 4, 8, 12, 16]
NUM_PATCHES = 256  # the official default, used by the training fixtures
# How closely a seed's float32 and float64 official runs must agree for its
# training fixture (a looser bound let rounding decide some first Adam steps).
WELL_CONDITIONED = 3e-6


def unit_scale(net, gen):
    """Weights of unit scale (He for convs and linears, biases 0.1): the
    official init's N(0, 0.02) would leave every activation near zero."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def weights(net, prefix="w."):
    return {prefix + k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def probe_gradients(net, x, gen, t):
    """Record in `t` a random probe and the gradients of sum(net(x) * probe)
    with respect to the input and every parameter; returns net(x)."""
    xg = x.clone().requires_grad_(True)
    y = net(xg)
    probe = torch.randn(y.shape, generator=gen)
    (y * probe).sum().backward()
    t["probe"] = probe
    t["grad.input"] = xg.grad
    for k, p in net.named_parameters():
        t[f"grad.{k}"] = p.grad.clone()
    return y


def generator_fixtures(networks):
    gen = torch.Generator().manual_seed(11)
    for case, no_aa, no_aa_up in [("aa", False, False), ("noaa", True, True), ("aa_noup", False, True)]:
        g = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False, "normal", 0.02, no_aa, no_aa_up, [], None)
        unit_scale(g, gen)
        x = torch.rand(2, 3, 28, 20, generator=gen) * 2 - 1
        t = weights(g)
        t["input"] = x
        with torch.no_grad():
            t["output"] = g(x)
            for layer, f in zip(LAYERS, g(x, list(LAYERS), encode_only=True)):
                t[f"feat.{layer}"] = f.contiguous()
        if case == "aa":
            probe_gradients(g, x, gen, t)
        save_file(t, os.path.join(FIX, f"cut_g_{case}.safetensors"),
                  {"arch": "resnet_6blocks", "ngf": "4", "antialias": str(not no_aa).lower(),
                   "antialias_up": str(not no_aa_up).lower()})


def official_checkpoint_fixture(networks):
    """`latest_net_G.pth` as the official code saves it (torch.save of the
    state dict, filt buffers included), and its translation of img_odd.png
    as `cyclegan translate` makes it: reflect-padded bottom/right to a
    multiple of 4, cropped back, rounded to 8 bits."""
    gen = torch.Generator().manual_seed(15)
    g = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False, "normal", 0.02, False, False, [], None)
    unit_scale(g, gen)
    torch.save(g.state_dict(), os.path.join(FIX, "cut_latest_net_G.pth"))
    x = image("img_odd.png")
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="reflect")
    with torch.no_grad():
        y = g.eval()(padded)[:, :, :h, :w]
    a = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1.0) * 127.5).round().byte().numpy()
    Image.fromarray(a).save(os.path.join(FIX, "ref_cut_g_odd.png"))


def discriminator_fixture(networks):
    gen = torch.Generator().manual_seed(12)
    d = networks.define_D(3, 4, "basic", 3, "instance", "normal", 0.02, False, [], None)
    unit_scale(d, gen)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    t = weights(d)
    t["input"] = x
    t["output"] = probe_gradients(d, x, gen, t).detach()
    save_file(t, os.path.join(FIX, "cut_d_aa.safetensors"), {"arch": "basic", "ndf": "4", "antialias": "true"})


def netf_fixture(networks):
    gen = torch.Generator().manual_seed(13)
    np.random.seed(13)
    g = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False, "normal", 0.02, False, False, [], None)
    unit_scale(g, gen)
    x = torch.rand(2, 3, 28, 20, generator=gen) * 2 - 1
    with torch.no_grad():
        feats = g(x, list(LAYERS), encode_only=True)
    f = networks.PatchSampleF(use_mlp=True, init_type="normal", init_gain=0.02, nc=16)
    f.create_mlp(feats)
    unit_scale(f, gen)
    with torch.no_grad():
        out, ids = f(feats, 64, None)
    t = weights(f)
    for layer, feat, o, i in zip(LAYERS, feats, out, ids):
        t[f"feat.{layer}"] = feat.contiguous()
        t[f"out.{layer}"] = o.contiguous()
        t[f"ids.{layer}"] = i.to(torch.int64)
    save_file(t, os.path.join(FIX, "cut_netf.safetensors"), {"nc": "16", "num_patches": "64"})


def nce_fixture(patchnce):
    gen = torch.Generator().manual_seed(14)
    n_img, n_patch, dim = 2, 12, 16
    q = torch.nn.functional.normalize(torch.randn(n_img * n_patch, dim, generator=gen), dim=1)
    k = torch.nn.functional.normalize(q + 0.7 * torch.randn(n_img * n_patch, dim, generator=gen), dim=1)
    t = {"q": q, "k": k}
    for name, all_negatives in [("same", False), ("all", True)]:
        opt = argparse.Namespace(nce_T=0.07, batch_size=n_img, nce_includes_all_negatives_from_minibatch=all_negatives)
        qg = q.clone().requires_grad_(True)
        loss = patchnce.PatchNCELoss(opt)(qg, k)
        loss.mean().backward()
        t[f"{name}.loss"] = loss.detach()
        t[f"{name}.grad_q"] = qg.grad
    save_file(t, os.path.join(FIX, "cut_nce.safetensors"), {"nce_T": "0.07", "images": str(n_img)})


def image(name):
    a = np.asarray(Image.open(os.path.join(FIX, name)).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(a / 127.5 - 1.0).permute(2, 0, 1)[None].contiguous()


class Draws:
    """np.random.permutation and np.random.random, recorded (or replayed)."""

    def __init__(self, replay=None):
        self.log, self.replay = [], replay
        self.perm, self.rand = np.random.permutation, np.random.random

    def __enter__(self):
        def permutation(n):
            # PatchSampleF keeps the first num_patches of the permutation: only those are recorded
            v = self.replay.pop(0)[1] if self.replay is not None else self.perm(n)[:NUM_PATCHES]
            self.log.append(("perm", [int(i) for i in v]))
            return np.asarray(v)

        def random(*a):
            v = self.replay.pop(0)[1] if self.replay is not None else float(self.rand(*a))
            self.log.append(("rand", v))
            return v

        np.random.permutation, np.random.random = permutation, random
        return self

    def __exit__(self, *exc):
        np.random.permutation, np.random.random = self.perm, self.rand


def train_run(cut_repo, mode, seed, dtype, init=None, replay=None):
    from options.train_options import TrainOptions
    from models.cut_model import CUTModel
    torch.set_default_dtype(dtype)
    torch.manual_seed(seed)
    np.random.seed(seed)
    cmd = (f"--dataroot unused --name fixture --checkpoints_dir {os.path.join(cut_repo, 'runs')} --gpu_ids -1 "
           f"--model cut --CUT_mode {mode} --netG resnet_6blocks --ngf 4 --ndf 8 --netF_nc 32 --batch_size 1")
    import contextlib, io
    # The model's option setter reads sys.argv itself (parse_known_args()
    # without the command line), so the command line goes there.
    argv, sys.argv = sys.argv, ["train.py", *cmd.split()]
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse()
        model = CUTModel(opt)
    sys.argv = argv
    a = [image("train_a0.png").to(dtype), image("train_a1.png").to(dtype)]
    b = [image("train_b0.png").to(dtype), image("train_b1.png").to(dtype)]
    data = lambda i: {"A": a[i % 2], "B": b[i % 2], "A_paths": ["a"], "B_paths": ["b"]}
    with Draws() as init_draws, contextlib.redirect_stdout(io.StringIO()):
        model.data_dependent_initialize(data(0))
        model.setup(opt)
    if init is not None:  # the float32 run's weights, in this run's precision
        for name, net in [("G", model.netG), ("D", model.netD), ("F", model.netF)]:
            net.load_state_dict({k[len(name) + 1:]: v.to(dtype) for k, v in init.items() if k.startswith(name + ".")})
    start = {}
    for name, net in [("G", model.netG), ("D", model.netD), ("F", model.netF)]:
        start.update(weights(net, name + "."))
    steps = []
    for i in range(3):
        with Draws(replay=None if replay is None else list(replay[i])) as draws:
            model.set_input(data(i))
            model.optimize_parameters()
        losses = {k: float(v) for k, v in model.get_current_losses().items()}
        steps.append({"losses": losses, "draws": draws.log})
    images = {f"A{i}": a[i].float() for i in range(2)} | {f"B{i}": b[i].float() for i in range(2)}
    return start, steps, images, len(init_draws.log), vars(opt)


def train_fixtures(cut_repo):
    for mode in ["cut", "fastcut"]:
        for seed in range(20):
            start, steps, images, n_init, opt = train_run(cut_repo, mode, seed, torch.float32)
            _, steps64, _, _, _ = train_run(cut_repo, mode, seed, torch.float64, init=start,
                                            replay=[s["draws"] for s in steps])
            diffs = [abs(s["losses"][k] - d["losses"][k]) / max(abs(d["losses"][k]), 1e-12)
                     for s, d in zip(steps, steps64) for k in s["losses"]]
            worst = max(diffs) if all(np.isfinite(diffs)) else float("inf")  # some seeds reach NaN
            print(f"{mode} seed {seed}: float32 vs float64 worst relative difference {worst:.2e}")
            if worst < WELL_CONDITIONED:
                break
        torch.set_default_dtype(torch.float32)
        tensors = {k: v.float().contiguous() for k, v in start.items()} | images
        save_file(tensors, os.path.join(FIX, f"cut_train_init_{mode}.safetensors"), {"seed": str(seed)})
        keep = ["lambda_GAN", "lambda_NCE", "nce_idt", "nce_layers", "nce_T", "num_patches", "netF_nc",
                "flip_equivariance", "init_type", "n_epochs", "n_epochs_decay", "pool_size", "gan_mode", "lr", "beta1"]
        out = {"mode": mode, "seed": seed, "f32_vs_f64": worst, "init_draws_skipped": n_init,
               "options": {k: opt[k] for k in keep}, "steps": steps}
        with open(os.path.join(FIX, f"cut_train_{mode}.json"), "w") as fh:
            json.dump(out, fh, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cut-repo", required=True, help="a folder holding the official code's models/ util/ options/ data/")
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.cut_repo))
    os.chdir(a.cut_repo)
    fix_instance_norm_backward()
    from models import networks, patchnce
    generator_fixtures(networks)
    official_checkpoint_fixture(networks)
    discriminator_fixture(networks)
    netf_fixture(networks)
    nce_fixture(patchnce)
    train_fixtures(os.path.abspath(a.cut_repo))


if __name__ == "__main__":
    main()
