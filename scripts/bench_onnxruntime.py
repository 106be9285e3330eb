#!/usr/bin/env python3
"""onnxruntime (CPU provider) on the ONNX file `cyclegan export` writes,
timed like `cyclegan bench --cases forwardSIZE[xBATCH]`: the median of
REPEATS runs after one warm-up, on a random batch. The weights do not change
the arithmetic; scripts/bench.py makes the file (reference generator ->
`cyclegan import` -> `cyclegan export`).

    ~/.venvs/torchref/bin/python scripts/bench_onnxruntime.py --onnx G.onnx --size 256 --batch 1 --repeats 5
"""
import argparse, json, resource, statistics, time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("--onnx", required=True)
p.add_argument("--size", type=int, default=256)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

opts = ort.SessionOptions()
opts.intra_op_num_threads = a.threads
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(a.onnx, opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
x = np.random.default_rng(0).uniform(-1, 1, (a.batch, 3, a.size, a.size)).astype(np.float32)
times = []
for _ in range(a.repeats + 1):
    t = time.perf_counter(); sess.run(None, {name: x}); times.append(time.perf_counter() - t)
m = statistics.median(times[1:])
print(f"onnxruntime {ort.__version__} forward{a.size}x{a.batch}: median {m:.3f} s, {a.threads} threads")
print(json.dumps({"median_s": m, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
