"""pytorch-fid's Inception v3 forward on the CPU, timed like `cyclegan bench --cases inceptionN`:
median of REPEATS runs after one warm-up, a batch of N random 299x299 images.

    ~/.venvs/torchref/bin/python scripts/bench_inception.py --batch 10 --repeats 3
"""
import argparse, json, resource, statistics, time

import torch
import pytorch_fid.inception as pfi

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=10)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)


def untrained():  # the architecture without the download; weights do not change the arithmetic
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32); net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64); net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160); net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192); net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


pfi.fid_inception_v3 = untrained
model = pfi.InceptionV3([3]).eval()
x = torch.rand(a.batch, 3, 299, 299)
times = []
with torch.no_grad():
    for i in range(a.repeats + 1):
        t = time.perf_counter(); model(x); times.append(time.perf_counter() - t)
m = statistics.median(times[1:])
print(f"pytorch-fid inception{a.batch}: median {m:.3f} s, {a.batch / m:.2f} images/s, torch {torch.__version__}, {a.threads} threads")
print(json.dumps({"median_s": m, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
