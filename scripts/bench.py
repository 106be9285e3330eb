#!/usr/bin/env python3
"""Run `cyclegan bench` and the PyTorch reference on this machine, in
alternation (the machines here are noisy), and print medians and ratios as
a Markdown table for BENCHMARKS.md.

    cargo build --release
    ~/.venvs/torchref/bin/python scripts/bench.py [--rounds 3] [--repeats 5]

PyTorch figures come from `../shared/reference/cyclegan_ref.py time-forward`
(batch 1) and from scripts/reference_timing.py (batch 4 and training; see
its docstring for why `time-train` is not called directly), from
scripts/bench_inception.py (pytorch-fid's network) and from
scripts/reference_cut_timing.py (the official CUT code, $CYCLEGAN_CUT_REPO or
~/cutrepo). Forward cases are also run by onnxruntime (CPU provider, same
threads) on this tool's own exported file (scripts/bench_onnxruntime.py).
Peak memory is each process's peak resident set, the PyTorch runtime
included.

`--before OTHER_BINARY` runs a second build of this tool (an earlier commit)
in the same rounds and adds its time and our ratio to it: "no slower than
before" measured on one machine in one run.
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = os.environ.get("CYCLEGAN_REF", os.path.join(ROOT, "..", "shared", "reference"))
# The official CUT code's Python files (see scripts/make_cut_fixtures.py for how to bring them).
CUT_REPO = os.environ.get("CYCLEGAN_CUT_REPO", os.path.expanduser("~/cutrepo"))

CASES = [  # (our case, PyTorch command)
    ("forward256", [os.path.join(REF, "cyclegan_ref.py"), "time-forward", "--size", "256"]),
    ("forward256x4", [os.path.join(HERE, "reference_timing.py"), "forward", "--size", "256", "--batch", "4"]),
    ("train128", [os.path.join(HERE, "reference_timing.py"), "train", "--size", "128", "--iters", "3"]),
    ("train256", [os.path.join(HERE, "reference_timing.py"), "train", "--size", "256", "--iters", "3"]),
    # small-tile training (satellite tiles at 64 px): resnet_6blocks, ngf and ndf 32
    ("train64-small", [os.path.join(HERE, "reference_timing.py"), "train", "--size", "64", "--iters", "5",
                       "--netG", "resnet_6blocks", "--ngf", "32", "--ndf", "32"]),
    ("inception10", [os.path.join(HERE, "bench_inception.py"), "--batch", "10"]),  # pytorch-fid's network
    ("inception50", [os.path.join(HERE, "bench_inception.py"), "--batch", "50"]),  # at its default batch size
    ("train256-cut", [os.path.join(HERE, "reference_cut_timing.py"), "--cut-repo", CUT_REPO, "--mode", "cut", "--size", "256", "--iters", "3"]),
    ("train256-fastcut", [os.path.join(HERE, "reference_cut_timing.py"), "--cut-repo", CUT_REPO, "--mode", "fastcut", "--size", "256", "--iters", "3"]),
]


def json_line(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


def ours(cyclegan, case, repeats):
    """One `cyclegan bench` run of `case` by the binary `cyclegan`."""
    return json_line([cyclegan, "bench", "--json", "--cases", case, "--repeats", str(repeats)])


def pytorch(cmd, repeats):
    cmd = [sys.executable, *cmd]
    if "time-forward" in cmd:
        cmd += ["--iters", str(repeats)]
        row = json_line(["/usr/bin/env", *cmd])
        return row["median_s"], None
    if "forward" in cmd:
        cmd += ["--iters", str(repeats)]
    if "--batch" in cmd and "bench_inception.py" in cmd[1]:
        cmd += ["--repeats", str(repeats)]
    row = json_line(cmd)
    return row["median_s"], row["peak_rss_mib"]


def onnx_file(cyclegan, folder):
    """A resnet_9blocks generator (ngf 64) as `cyclegan export` writes it: the
    reference's random generator, imported, then exported."""
    pth, st, onnx = (os.path.join(folder, f) for f in ("G.pth", "G.safetensors", "G.onnx"))
    subprocess.run([sys.executable, os.path.join(REF, "cyclegan_ref.py"), "make-g", "--out", pth], check=True)
    subprocess.run([cyclegan, "import", pth, "--direction", "a2b", "-o", st], check=True, capture_output=True)
    subprocess.run([cyclegan, "export", "--model", st, "-o", onnx], check=True, capture_output=True)
    return onnx


def onnxruntime(onnx, case, repeats):
    size, batch = re.fullmatch(r"forward(\d+)(?:x(\d+))?", case).groups()
    cmd = [sys.executable, os.path.join(HERE, "bench_onnxruntime.py"), "--onnx", onnx, "--size", size,
           "--batch", batch or "1", "--repeats", str(repeats)]
    row = json_line(cmd)
    return row["median_s"], row["peak_rss_mib"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cyclegan", default=os.path.join(ROOT, "target", "release", "cyclegan"))
    ap.add_argument("--cases", default=",".join(c for c, _ in CASES[:4]))
    ap.add_argument("--before", help="another cyclegan binary (an earlier build) to time in the same rounds")
    ap.add_argument("--no-reference", action="store_true", help="skip PyTorch and onnxruntime (with --before)")
    a = ap.parse_args()
    if a.no_reference and not a.before:
        ap.error("--no-reference needs --before")
    wanted = a.cases.split(",")
    results = {c: {"ours": [], "ours_mem": [], "before": [], "torch": [], "torch_mem": [], "ort": [], "ort_mem": []} for c in wanted}
    tmp = tempfile.TemporaryDirectory()
    forward = any(re.fullmatch(r"forward\d+(x\d+)?", c) for c in wanted)
    onnx = onnx_file(a.cyclegan, tmp.name) if forward and not a.no_reference else None
    for r in range(a.rounds):
        for case, cmd in CASES:
            if case not in wanted:
                continue
            reps = a.repeats if case.startswith(("forward", "inception")) else max(3, a.repeats // 2)
            row = ours(a.cyclegan, case, reps)
            results[case]["ours"].append(row["median_s"])
            results[case]["ours_mem"].append(row["peak_rss_mib"])
            line = f"round {r + 1} {case}: ours {row['median_s']:.3f} s"
            if a.before:
                t = ours(a.before, case, reps)["median_s"]
                results[case]["before"].append(t)
                line += f", before {t:.3f} s"
            if not a.no_reference:
                t, mem = pytorch(cmd, reps)
                results[case]["torch"].append(t)
                if mem is not None:
                    results[case]["torch_mem"].append(mem)
                line += f", PyTorch {t:.3f} s"
            if onnx and re.fullmatch(r"forward\d+(x\d+)?", case):
                t, mem = onnxruntime(onnx, case, reps)
                results[case]["ort"].append(t)
                results[case]["ort_mem"].append(mem)
                line += f", onnxruntime {t:.3f} s"
            print(line, file=sys.stderr)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    avx512 = "AVX-512" if "avx512f" in open("/proc/cpuinfo").read() else "no AVX-512"
    simd = f", CYCLEGAN_SIMD={os.environ['CYCLEGAN_SIMD']}" if os.environ.get("CYCLEGAN_SIMD") else ""
    if a.no_reference:
        print(f"Machine: {cpu} ({avx512}), {os.cpu_count()} cores{simd}; {a.rounds} rounds, medians of medians.\n")
    else:
        import torch
        import onnxruntime as ort
        print(f"Machine: {cpu} ({avx512}), {os.cpu_count()} cores{simd}; PyTorch {torch.__version__} "
              f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}; {a.rounds} rounds, "
              "medians of medians.\n")
    if a.before:
        print(f"before: {a.before}\n")
        print("| case | ours (s) | before (s) | ours / before |")
        print("| --- | ---: | ---: | ---: |")
        for case in wanted:
            o, b = statistics.median(results[case]["ours"]), statistics.median(results[case]["before"])
            print(f"| {case} | {o:.3f} | {b:.3f} | {o / b:.2f} |")
        print()
    if a.no_reference:
        return
    print("| case | ours (s) | PyTorch (s) | onnxruntime (s) | ours / PyTorch | ours / onnxruntime "
          "| ours peak MiB | PyTorch peak MiB | memory ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in wanted:
        r = results[case]
        o, t = statistics.median(r["ours"]), statistics.median(r["torch"])
        ort_s = f"{statistics.median(r['ort']):.3f} | " if r["ort"] else "- | "
        ort_ratio = f"{o / statistics.median(r['ort']):.2f}" if r["ort"] else "-"
        om = statistics.median(r["ours_mem"])
        tm = statistics.median(r["torch_mem"]) if r["torch_mem"] else None
        mem = f"{tm:.0f} | {om / tm:.2f}" if tm else "- | -"
        print(f"| {case} | {o:.3f} | {t:.3f} | {ort_s}{o / t:.2f} | {ort_ratio} | {om:.0f} | {mem} |")


if __name__ == "__main__":
    main()
