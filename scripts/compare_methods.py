#!/usr/bin/env python3
"""The README's fixed-budget comparison of CycleGAN, CUT and FastCUT on
../shared/data/emoji64 (Noto -> Twemoji, 64 px): each trained for the same
number of iterations with the same small networks (resnet_6blocks, ngf 16,
ndf 16) and its own defaults otherwise, then scored on the test folders
with `cyclegan eval` (FID/KID against testB; L1, PSNR, SSIM against each
emoji's Twemoji twin) and drawn as docs/methods.png.

    cargo build --release
    ~/.venvs/torchref/bin/python scripts/compare_methods.py --runs ~/compare --iters 3000 \\
        --inception ~/fidw/pt_inception-2015-12-05-6726825d.pth

Runs already in --runs are reused (delete them to retrain). Needs pillow.
"""
import argparse, json, os, subprocess, time

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "release", "cyclegan")
DATA = os.path.join(ROOT, "..", "shared", "data", "emoji64")
METHODS = ["cyclegan", "cut", "fastcut"]
SHOWN = ["1f353.png", "1f361.png", "1f381.png", "1f3a2.png", "1f3ae.png", "1f414.png", "1f439.png", "1f453.png", "1f1f8-1f1ea.png", "00ae-fe0f.png"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--inception", required=True)
    a = ap.parse_args()
    os.makedirs(a.runs, exist_ok=True)
    rows = []
    for m in METHODS:
        run = os.path.join(a.runs, m)
        seconds = None
        if not os.path.isdir(run):
            t = time.monotonic()
            subprocess.run([BIN, "train", "--model", m, "--data-a", os.path.join(DATA, "trainA"), "--data-b", os.path.join(DATA, "trainB"),
                            "--output", run, "--netG", "resnet_6blocks", "--ngf", "16", "--ndf", "16", "--load-size", "64",
                            "--crop-size", "64", "--max-iters", str(a.iters), "--print-freq", "100", "--display-freq", "1000",
                            "--seed", "1"], check=True, stderr=subprocess.DEVNULL)
            seconds = time.monotonic() - t
        fake = os.path.join(a.runs, f"fake_{m}")
        subprocess.run([BIN, "translate", "--model", run, os.path.join(DATA, "testA"), "-o", fake], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([BIN, "eval", "--real", os.path.join(DATA, "testB"), "--fake", fake, "--paired", "--json",
                              "--inception", a.inception], check=True, capture_output=True, text=True).stdout
        e = json.loads(out)
        rows.append((m, e, seconds))
    out = subprocess.run([BIN, "eval", "--real", os.path.join(DATA, "testB"), "--fake", os.path.join(DATA, "testA"), "--paired",
                          "--json", "--inception", a.inception], check=True, capture_output=True, text=True).stdout
    rows.append(("input (untranslated)", json.loads(out), None))
    print("| method | FID | KID | L1 (0-255) | PSNR (dB) | SSIM | training time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m, e, s in rows:
        p = e["paired"]
        print(f"| {m} | {e['fid']:.1f} | {e['kid']:.4f} | {p['mean_l1']:.1f} | {p['mean_psnr']:.2f} | {p['mean_ssim']:.3f} | "
              f"{'-' if s is None else f'{s:.0f}'} |")
    # the picture: input, the three translations, the twin
    cell, gap = 64, 4
    columns = [os.path.join(DATA, "testA")] + [os.path.join(a.runs, f"fake_{m}") for m in METHODS] + [os.path.join(DATA, "testB")]
    grid = Image.new("RGB", (len(SHOWN) * (cell + gap) + gap, len(columns) * (cell + gap) + gap), "white")
    for r, folder in enumerate(columns):
        for c, name in enumerate(SHOWN):
            grid.paste(Image.open(os.path.join(folder, name)).convert("RGB").resize((cell, cell)), (gap + c * (cell + gap), gap + r * (cell + gap)))
    grid = grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST)
    grid.save(os.path.join(ROOT, "docs", "methods.png"))


if __name__ == "__main__":
    main()
