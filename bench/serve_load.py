"""Load test of serve.py beside ddddocr's own API server, on the same images, in one run.

    python3.11 -m venv /tmp/dddd_api && /tmp/dddd_api/bin/pip install 'ddddocr[api]==1.6.1'
    # its /ocr routes pass colors= and custom_color_ranges= to classification(), which takes
    # color_filter_colors= and color_filter_custom_ranges=: every /ocr fails until fixed there
    sed -i -E 's/^( *)colors=/\\1color_filter_colors=/; s/^( *)custom_color_ranges=/\\1color_filter_custom_ranges=/' \\
        /tmp/dddd_api/lib/python3.11/site-packages/ddddocr/api/app.py
    .venv/bin/python bench/serve_load.py outputs/runs/<run>/checkpoints/best.ckpt \\
        --ddddocr-python /tmp/dddd_api/bin/python

Each server runs alone, as its own process on a free loopback port; an async httpx client on
the same machine sends `--requests` one-image requests (JSON, base64) at 1, 8 and 32 concurrent
clients and prints req/s, p50/p99 latency, errors, the share of right reads, the server's RSS
and the CPU time each request cost the server and the client (2 cores: the client's is not the
server's to use).
The images are the run's validation split (its .hydra/config.yaml), which it never trained on,
or `--data DIR` (labels from file names). Then serve.py alone: a mixed load with 10% malformed
requests (5xx, answers that differ from the same image's answer alone, RSS growth), and the
in-process batched ONNX Runtime rate of the same export, in a process of its own."""

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _args import executable, existing_file, package_version
from _loopback import Server, load

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)


def labelled_images(ckpt: str, data: str | None) -> tuple[list[bytes], list[str], str]:
    """(encoded images, labels, what they are)."""
    if data:
        from captcha_lab.data.images import list_images

        paths = list_images(data)
        return [p.read_bytes() for p in paths], [p.stem for p in paths], f"{len(paths)} images of {data}"
    from captcha_lab.cli.evaluate import run_datamodule

    datamodule = run_datamodule(Path(ckpt).parents[1])  # the run's split, as its train.py drew it
    val, hp = datamodule.splits["val"], datamodule.hparams
    labels = datamodule.charset.texts(val.targets)  # the folder's alphabet where symbols is "auto"
    folder = Path(datamodule.folder)
    what = f"{len(val)} validation images of {folder.name} (fold {hp.fold} of {hp.folds})"
    return [(folder / name).read_bytes() for name in val.names], labels, what


def as_json(body: dict) -> dict:
    """httpx arguments of a JSON body, encoded once beforehand: the client's CPU is the server's too."""
    return {"content": json.dumps(body).encode(), "headers": {"content-type": "application/json"}}


def nearest_rank(ordered: list[float], percent: int) -> float:
    """The percentile of sorted values by nearest rank: the smallest value with at least `percent`%
    of them at or below it (integer arithmetic, so 99% of 1000 is rank 990, not 991)."""
    return ordered[max(0, -(-percent * len(ordered) // 100) - 1)]


def levels(server: Server, requests: list, truths: list[str], texts) -> tuple[list[dict], list[str | None]]:
    """One row per concurrency level; and the reads of the first level, in request order."""
    asyncio.run(load(server.url, requests[:20], 1))  # warm-up: ddddocr builds its model on first use
    rows, first = [], None
    for concurrency in LEVELS:
        server_cpu = server.cpu_s()
        results, seconds, client_cpu = asyncio.run(load(server.url, requests, concurrency))
        server_cpu = server.cpu_s() - server_cpu
        latencies = sorted(r[0] for r in results)
        reads = [texts(body) if status == 200 else None for _, status, body in results]
        first = first or reads
        rows.append(
            {
                "server": server.name,
                "clients": concurrency,
                "req_per_s": len(results) / seconds,
                "p50_ms": 1000 * nearest_rank(latencies, 50),
                "p99_ms": 1000 * nearest_rank(latencies, 99),
                "errors": sum(status != 200 for _, status, _ in results),
                "right": sum(r is not None and r.lower() == t.lower() for r, t in zip(reads, truths, strict=True)),
                "rss_mb": server.rss_mb(),
                "server_cpu_ms": 1000 * server_cpu / len(results),
                "client_cpu_ms": 1000 * client_cpu / len(results),
            }
        )
    return rows, first


def malformed(images: list[bytes], i: int) -> tuple[str, dict]:
    """The i-th kind of bad request, each one a client could send by mistake."""
    png = images[i % len(images)]
    text = base64.b64encode(png).decode()
    kinds = [
        {"json": {"images": ["not base64!"]}},
        {"json": {"images": [base64.b64encode(b"GIF89a, or so it says").decode()]}},
        {"json": {"images": [""]}},
        {"json": {"images": [base64.b64encode(png[: len(png) // 2]).decode()]}},  # truncated
        {"content": b"{", "headers": {"content-type": "application/json"}},
        {"content": text, "headers": {"content-type": "text/plain"}},
        {"json": {"images": [text] * 65}},  # one more than the default limit
        {"files": [("image", ("empty.png", b"", "image/png"))]},
        {"content": b"--x\r\nContent-Disposition: form-data", "headers": {"content-type": "multipart/form-data"}},
        {"json": {"imgs": [text]}},
    ]
    return "/predict", kinds[i % len(kinds)]


def mixed(server: Server, images: list[bytes], expected: list[str], n: int) -> dict:
    """`n` requests at 32 clients, every 10th malformed; the good ones hold 1 or 3 images."""
    requests, wanted = [], []
    for i in range(n):
        if i % 10 == 9:
            requests.append(malformed(images, i // 10))
            wanted.append(None)
            continue
        picks = [(i + k * 7) % len(images) for k in range(3 if i % 5 == 0 else 1)]
        requests.append(("/predict", as_json({"images": [base64.b64encode(images[p]).decode() for p in picks]})))
        wanted.append([expected[p] for p in picks])
    half, rss = n // 2, [server.rss_mb()]  # at the start, halfway (warmed up) and at the end
    results = asyncio.run(load(server.url, requests[:half], 32))[0]
    rss.append(server.rss_mb())
    results += asyncio.run(load(server.url, requests[half:], 32))[0]
    rss.append(server.rss_mb())
    bad = [status for (_, status, _), w in zip(results, wanted, strict=True) if w is None]
    good = [(status, body, w) for (_, status, body), w in zip(results, wanted, strict=True) if w is not None]
    wrong = sum(s != 200 or [r["text"] for r in body["results"]] != w for s, body, w in good)
    return {
        "requests": n,
        "malformed": len(bad),
        "malformed_4xx": sum(400 <= s < 500 for s in bad),
        "server_errors_5xx": sum(s >= 500 for _, s, _ in results),
        "lost_or_mismatched": wrong,
        "rss_mb": rss,
    }


def in_process(ckpt: str, batches: list[int]) -> None:
    """Prints the export's images/s on ONNX Runtime in this process (torch not imported), with its
    default threads (as predict.py) and with one (as serve.py): the bench's images decoded and read
    in batches, and the batches alone. Median of 5 passes."""
    from captcha_lab.data.images import to_floats
    from captcha_lab.serving.server import load_reader

    images = [base64.b64decode(b) for b in json.loads(sys.stdin.read())]
    rates = []
    for threads, batch in [(t, b) for t in (0, 1) for b in batches]:
        reader = load_reader(ckpt, batch, threads)
        reader.predict(images[:batch])  # warm-up
        decode, read = [], []
        for _ in range(5):
            start = time.perf_counter()
            pixels = [reader.prepare(b) for b in images]
            middle = time.perf_counter()
            reader.read_all(to_floats(pixels))
            decode.append(middle - start)
            read.append(time.perf_counter() - middle)
        decoding, reading = statistics.median(decode), statistics.median(read)
        rate = {"decode_and_read": len(images) / (decoding + reading), "read": len(images) / reading}
        rates.append({"threads": threads, "batch": batch, **rate})
    print(json.dumps(rates))


def reference(ckpt: str, images: list[bytes], batches: list[int]) -> list[dict]:
    """in_process, run as a process of its own (this one has imported PyTorch for the split)."""
    blobs = json.dumps([base64.b64encode(b).decode() for b in images])
    command = [sys.executable, __file__, ckpt, "--in-process", ",".join(map(str, batches))]
    done = subprocess.run(command, input=blobs, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def report(what: str, n: int, rows: list[dict], rates: list[dict]) -> None:
    print(f"images: {what}; {n} one-image requests per level (JSON, base64), httpx async client, same machine")
    print("| server | clients | req/s | p50 ms | p99 ms | errors | right | RSS MB | CPU ms/request: server, client |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        right = f"{r['right']}/{n} ({100 * r['right'] / n:.1f}%)"
        print(
            f"| {r['server']} | {r['clients']} | {r['req_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['errors']} | {right} | {r['rss_mb']:.0f} | {r['server_cpu_ms']:.2f}, {r['client_cpu_ms']:.2f} |"
        )
    for rate in rates:
        print(
            f"in-process ONNX Runtime, {rate['threads'] or 'default'} thread(s), batch {rate['batch']}: "
            f"{rate['decode_and_read']:.0f} images/s decoded and read, {rate['read']:.0f} read alone"
        )


def goals(rows: list[dict], rates: list[dict], mix: dict, stopped: int) -> None:
    ours = {r["clients"]: r for r in rows if r["server"].startswith("captcha-lab")}
    theirs = {r["clients"]: r for r in rows if r["server"].startswith("ddddocr")}
    top, most = ours[max(LEVELS)]["req_per_s"], max(LEVELS)
    print("goals:")
    if theirs:
        ratio = top / theirs[most]["req_per_s"]
        print(f"  {most} clients: {ratio:.1f}x ddddocr's req/s (goal >= 5x): {met(ratio >= 5)}")
    for kind in ("decode_and_read", "read"):
        best = max(rates, key=lambda rate: rate[kind])
        share = top / best[kind]
        print(
            f"  {most} clients: {100 * share:.0f}% of the best in-process rate, {kind.replace('_', ' ')} "
            f"({best['threads'] or 'default'} thread(s), batch {best['batch']}; goal >= 70%): {met(share >= 0.7)}"
        )
    p99 = ours[1]["p99_ms"]
    print(f"  1 client: p99 {p99:.1f} ms (goal <= 10 ms): {met(p99 <= 10)}")
    before, halfway, after = mix["rss_mb"]
    growth = 100 * (after - before) / before
    print(
        f"  mixed load: {mix['requests']} requests at {most} clients, {mix['malformed']} malformed "
        f"({mix['malformed_4xx']} answered 4xx): 5xx {mix['server_errors_5xx']}, lost or mismatched "
        f"{mix['lost_or_mismatched']}, RSS {before:.1f} -> {halfway:.1f} (halfway) -> {after:.1f} MB "
        f"({growth:+.1f}%; goal 0, 0, <= +10%): "
        f"{met(mix['server_errors_5xx'] == 0 and mix['lost_or_mismatched'] == 0 and growth <= 10)}"
    )
    print(f"  SIGTERM after the mixed load: serve.py exited with status {stopped}")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ours(ckpt: str, requests: list, truths: list[str], picks: list[int], images: list[bytes], logs: Path, n: int):
    """serve.py's rows, its mixed load of `n` requests and its exit status after SIGTERM; `picks`:
    the index in `images` of each request's image."""
    server = Server("captcha-lab serve.py", [sys.executable, "serve.py", f"ckpt_path={ckpt}", "port=0"], logs / "ours")
    try:
        rows, reads = levels(server, requests, truths, lambda body: body["results"][0]["text"])
        seen = sorted(set(picks))  # each image's read alone (1 client): what the mixed load must give back
        expected = dict(zip(picks, reads, strict=True))
        mix = mixed(server, [images[i] for i in seen], [expected[i] for i in seen], n)
    finally:
        stopped = server.stop()
    return rows, mix, stopped


def ddddocr(python: str, version: str, requests: list, truths: list[str], logs: Path) -> list[dict]:
    name = f"ddddocr {version} api"
    command = [python, "-m", "ddddocr", "api", "--host", "127.0.0.1", "--port", "0", "--show-ad", "false"]
    server = Server(name, command, logs / "ddddocr")
    try:
        return levels(server, requests, truths, lambda body: body["result"])[0]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ckpt", type=existing_file, help="a run's best.ckpt, with its best.onnx beside it")
    parser.add_argument(
        "--ddddocr-python", type=executable, help="python of a venv with ddddocr[api]; without: serve.py alone"
    )
    parser.add_argument("--data", help="images named by their labels, not the run's validation split")
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level and server")
    parser.add_argument("--mixed", type=int, default=2000, help="requests of the mixed load")
    parser.add_argument("--in-process", help=argparse.SUPPRESS)  # reference()'s own process
    args = parser.parse_args()
    if args.in_process:
        return in_process(args.ckpt, [int(b) for b in args.in_process.split(",")])
    peer = package_version(args.ddddocr_python, "ddddocr") if args.ddddocr_python else None
    ckpt, logs = str(Path(args.ckpt).resolve()), Path(tempfile.mkdtemp(prefix="serve_load_"))
    images, truths, what = labelled_images(ckpt, args.data)
    picks = [i % len(images) for i in range(args.requests)]
    texts, truths = [base64.b64encode(images[i]).decode() for i in picks], [truths[i] for i in picks]
    requests = [("/predict", as_json({"images": [t]})) for t in texts]
    rows, mix, stopped = ours(ckpt, requests, truths, picks, images, logs, args.mixed)
    if args.ddddocr_python:
        rows += ddddocr(args.ddddocr_python, peer, [("/ocr", as_json({"image": t})) for t in texts], truths, logs)
    rates = reference(ckpt, [images[i] for i in sorted(set(picks))], [32, 256])  # serve.py's max_batch, predict.py's
    report(what, args.requests, rows, rates)
    goals(rows, rates, mix, stopped)


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a missing export or data folder: one line, exit 2
        main()
