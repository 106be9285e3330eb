#!/usr/bin/env python3
"""PyTorch timings the reference script does not offer as is, measured the
same way (`cyclegan_ref.py`'s own networks, init and optimisation step):

    forward --size 256 --batch 4   generator forward with a batch
    train --size 128               one training iteration; `cyclegan_ref.py
                                   time-train` turns autograd off before
                                   training (torch.set_grad_enabled is set for
                                   the `train` command only) and fails, so this
                                   runs its `train_steps` with autograd on

Each prints one JSON line with the median seconds and the process's peak
resident memory (MiB).
"""
import argparse, json, os, resource, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CYCLEGAN_REF", os.path.join(HERE, "..", "..", "shared", "reference")))
import torch  # noqa: E402
import cyclegan_ref as ref  # noqa: E402


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["forward", "train"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--netG", default="resnet_9blocks", help="train: the generators (resnet_6blocks for the small case)")
    ap.add_argument("--ngf", type=int, default=64, help="train: generator width")
    ap.add_argument("--ndf", type=int, default=64, help="train: discriminator width")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if a.what == "forward":
        torch.set_grad_enabled(False)
        g = ref.init_normal(ref.make_G("resnet_9blocks")).eval().to(dev)
        x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
        g(x)
        sync()
        ts = []
        for _ in range(a.iters):
            t = time.perf_counter()
            g(x)
            sync()
            ts.append(time.perf_counter() - t)
    else:
        torch.manual_seed(0)
        init = {}
        for name, net in (("G_A", ref.make_G(a.netG, a.ngf)), ("G_B", ref.make_G(a.netG, a.ngf)),
                          ("D_A", ref.NLayerDiscriminator(ndf=a.ndf)), ("D_B", ref.NLayerDiscriminator(ndf=a.ndf))):
            for k, v in ref.init_normal(net).state_dict().items():
                init[f"{name}.{k}"] = v
        xa = [torch.rand(1, 3, a.size, a.size) * 2 - 1]
        xb = [torch.rand(1, 3, a.size, a.size) * 2 - 1]
        if dev.type == "cuda":
            # cyclegan_ref's train_steps builds its networks on the CPU; move them as they are made
            torch.set_default_device(dev)
            init = {k: v.to(dev) for k, v in init.items()}
            xa, xb = [t.to(dev) for t in xa], [t.to(dev) for t in xb]
        with torch.enable_grad():
            rows, _ = ref.train_steps(init, xa, xb, a.iters + 1, a.netG, a.ngf, a.ndf, "lsgan")
        ts = [r["seconds"] for r in rows[1:]]
    ts.sort()
    print(json.dumps({"median_s": ts[len(ts) // 2], "runs": ts, "peak_rss_mib": peak_mib(), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
