#!/usr/bin/env python3
"""Run what `cyclegan export` writes through onnxruntime and onnx.checker,
and commit the results as fixtures (tests/fixtures/onnx_check.json and the
translated images onnx_*.png); tests/export.rs checks them against
`cyclegan translate` (at most one 8-bit level apart).

    cargo build --release
    ~/.venvs/torchref/bin/pip install onnx onnxruntime pillow numpy
    ~/.venvs/torchref/bin/python scripts/check_onnx.py

The preprocessing is the one the exported file's metadata states, and the
one README.md shows: RGB to x / 127.5 - 1, NCHW, reflect-pad bottom and
right to a multiple of the generator's stride (numpy's reflection, repeated
where the pad is wider than the image), run, crop back, (y + 1) * 127.5
rounded (ties to even) and clamped.
"""
import json, os, subprocess, sys, tempfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures")
BIN = os.path.join(ROOT, "target", "release", "cyclegan")

# (generator file in tests/fixtures, images to translate)
CASES = [
    ("g_resnet9.pth", ["img_odd.png", "img_square.png"]),
    ("cut_latest_net_G.pth", ["img_odd.png"]),
    ("g_unet128.pth", ["img_odd.png"]),
]


def translate(session, path, multiple, min_size):
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    x = x.transpose(2, 0, 1)[None]
    h, w = x.shape[2:]
    target = lambda n: -(-max(n, min_size) // multiple) * multiple
    x = np.pad(x, ((0, 0), (0, 0), (0, target(h) - h), (0, target(w) - w)), mode="reflect")
    y = session.run(["output"], {"input": x})[0][:, :, :h, :w]
    return np.round((np.clip(y[0], -1, 1).transpose(1, 2, 0) + 1.0) * 127.5).astype(np.uint8)


def main():
    results = {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for model, images in CASES:
            path = os.path.join(tmp, model + ".onnx")
            subprocess.run([BIN, "export", "--model", os.path.join(FIX, model), "-o", path], check=True, stdout=subprocess.DEVNULL)
            proto = onnx.load(path)
            try:
                onnx.checker.check_model(proto, full_check=True)
                checker = "ok"
            except onnx.checker.ValidationError as e:
                checker = str(e).splitlines()[0]
            meta = {p.key: p.value for p in proto.metadata_props}
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            outputs = []
            for image in images:
                out = translate(session, os.path.join(FIX, image), int(meta["size_multiple"]), int(meta["min_size"]))
                name = f"onnx_{model.split('.')[0]}_{image}"
                Image.fromarray(out).save(os.path.join(FIX, name))
                outputs.append({"image": image, "onnxruntime": name})
            results["cases"].append({"model": model, "arch": meta["arch"], "checker": checker, "outputs": outputs})
            print(f"{model}: onnx.checker {checker}; {len(outputs)} image(s) through onnxruntime {ort.__version__}")
    with open(os.path.join(FIX, "onnx_check.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
