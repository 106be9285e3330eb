#!/usr/bin/env python3
"""Load test of `cyclegan serve`: N concurrent clients POST 256x256 images
for D seconds; throughput, p50/p95/p99 latency, the server's peak memory,
5xx answers other than 503 (must be 0), and throughput against `cyclegan
translate` on the same images in the same run. Standard library only.

    cargo build --release
    python3 scripts/load_test.py --clients 4 --seconds 60

The generator is resnet_9blocks at the official width (ngf 64), with the
weights of one training iteration (made here, in a temporary folder).
"""
import argparse, http.client, io, json, os, random, statistics, struct, subprocess, sys, tempfile, threading, time, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(os.path.dirname(HERE), "target", "release", "cyclegan")


def png(width, height, seed):
    """A smooth RGB test image as PNG bytes (no imaging library needed)."""
    rnd = random.Random(seed)
    a, b = rnd.random() * 6, rnd.random() * 6
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in ((x * 255 // width), (y * 255 // height), int(127 + 120 * ((x * a + y * b) % 10) / 10)))
        for y in range(height)
    )
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_model(tmp):
    """G_A of a resnet_9blocks CycleGAN after one iteration (official defaults), and the images."""
    data = os.path.join(tmp, "data")
    for d in ("trainA", "trainB", "test"):
        os.makedirs(os.path.join(data, d))
    for i in range(8):
        for d in ("trainA", "trainB", "test"):
            with open(os.path.join(data, d, f"{i}.png"), "wb") as f:
                f.write(png(256, 256, hash((d, i))))
    run = os.path.join(tmp, "run")
    subprocess.run([BIN, "train", "--dataroot", data, "--output", run, "--max-iters", "1", "--preprocess", "none"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(run, "checkpoints", "latest", "G_A.safetensors"), os.path.join(data, "test")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--no-backoff", action="store_true", help="retry at once after a 503 (a stress test)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, images_dir = make_model(tmp)
        images = [open(os.path.join(images_dir, n), "rb").read() for n in sorted(os.listdir(images_dir))]
        # the baseline: translate on the same images, several passes
        folder = os.path.join(tmp, "many")
        os.makedirs(folder)
        for r in range(3):
            for i, img in enumerate(images):
                with open(os.path.join(folder, f"{r}_{i}.png"), "wb") as f:
                    f.write(img)
        out = subprocess.run([BIN, "translate", "--model", model, folder, "-o", os.path.join(tmp, "out")],
                             check=True, capture_output=True, text=True).stdout
        translate_rate = float(out.split("(")[1].split(" images/s")[0])

        server = subprocess.Popen([BIN, "serve", "--model", f"g={model}", "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        url = next(w for w in server.stdout.readline().split() if w.startswith("http://")).rstrip("/")
        host, port = url[len("http://"):].split(":")
        results, lock = [], threading.Lock()
        stop = time.monotonic() + a.seconds

        def client(k):
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            i = k
            while time.monotonic() < stop:
                body = images[i % len(images)]
                i += 1
                t = time.monotonic()
                conn.request("POST", "/v1/translate", body=body, headers={"Content-Type": "image/png"})
                r = conn.getresponse()
                r.read()
                with lock:
                    results.append((r.status, time.monotonic() - t))
                if r.status == 503 and not a.no_backoff:  # a well-behaved client waits as Retry-After says
                    time.sleep(float(r.getheader("Retry-After", "1")))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        peak = peak_rss_mib(server.pid)
        server.terminate()
        server.wait(timeout=60)
    ok = sorted(l for s, l in results if s == 200)
    q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))]
    five = [s for s, _ in results if s >= 500 and s != 503]
    rate = len(ok) / elapsed
    row = {"clients": a.clients, "seconds": round(elapsed, 1), "requests": len(results), "ok": len(ok),
           "status_503": sum(1 for s, _ in results if s == 503), "other_5xx": len(five), "images_per_s": round(rate, 3),
           "p50_s": round(q(0.50), 3), "p95_s": round(q(0.95), 3), "p99_s": round(q(0.99), 3),
           "peak_rss_mib": round(peak), "translate_images_per_s": translate_rate,
           "serve_over_translate": round(rate / translate_rate, 3)}
    print(json.dumps(row))
    print(f"| {a.clients} | {row['seconds']} | {row['ok']} | {row['status_503']} | {row['other_5xx']} | {rate:.2f} | "
          f"{row['p50_s']} | {row['p95_s']} | {row['p99_s']} | {row['peak_rss_mib']} | {translate_rate:.2f} | {row['serve_over_translate']:.2f} |")
    return 1 if five else 0


if __name__ == "__main__":
    sys.exit(main())
