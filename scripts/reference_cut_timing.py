"""Seconds per training iteration of the official CUT and FastCUT code
(taesungp/contrastive-unpaired-translation) on this machine's CPU, timed
like `cyclegan bench --cases train256-cut`: the mode's official defaults
(resnet_9blocks, basic D, LSGAN, netF 256 wide, 256 patches per layer),
batch 1, random images, median of ITERS iterations after one warm-up.

    git -C CUT_CHECKOUT archive HEAD models util options data | tar -x -C ~/cutrepo
    ~/.venvs/torchref/bin/python scripts/reference_cut_timing.py --cut-repo ~/cutrepo --mode cut --size 256 --iters 3

Prints one JSON line: median_s, peak_rss_mib (the process's peak resident
set, the PyTorch runtime included).
"""
import argparse, contextlib, io, json, os, resource, statistics, sys, time

import torch

p = argparse.ArgumentParser()
p.add_argument("--cut-repo", required=True)
p.add_argument("--mode", choices=["cut", "fastcut"], default="cut")
p.add_argument("--size", type=int, default=256)
p.add_argument("--iters", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
sys.path.insert(0, os.path.abspath(a.cut_repo))
os.chdir(a.cut_repo)
from options.train_options import TrainOptions  # noqa: E402
from models.cut_model import CUTModel  # noqa: E402

# The model's option setter parses sys.argv itself.
sys.argv = ["train.py", "--dataroot", "unused", "--name", "timing", "--checkpoints_dir", os.path.join(a.cut_repo, "runs"),
            "--gpu_ids", "-1", "--model", "cut", "--CUT_mode", a.mode, "--crop_size", str(a.size), "--load_size", str(a.size)]
with contextlib.redirect_stdout(io.StringIO()):
    opt = TrainOptions().parse()
    model = CUTModel(opt)
data = {"A": torch.rand(1, 3, a.size, a.size) * 2 - 1, "B": torch.rand(1, 3, a.size, a.size) * 2 - 1, "A_paths": ["a"], "B_paths": ["b"]}
with contextlib.redirect_stdout(io.StringIO()):
    model.data_dependent_initialize(data)
    model.setup(opt)
times = []
for i in range(a.iters + 1):
    model.set_input(data)
    t = time.perf_counter()
    model.optimize_parameters()
    times.append(time.perf_counter() - t)
m = statistics.median(times[1:])
print(f"official {a.mode} train{a.size}: median {m:.3f} s per iteration, torch {torch.__version__}, {a.threads} threads", file=sys.stderr)
print(json.dumps({"median_s": m, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
