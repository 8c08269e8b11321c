#!/usr/bin/python3
"""Aggregate decode throughput of `mamba2 serve` at several numbers of concurrent streams.

Starts the server (or uses --base URL), then for each concurrency C sends C streaming completions at
once (distinct short prompts, greedy, ignore_eos so each generates exactly --max-tokens tokens) and
reports: aggregate generated tokens/s over the wall time of the round, mean time to first token, mean
per-stream decode rate, and the mean decode batch the scheduler ran (from /metrics).

Example (a random model with the mamba2-130m shapes):
  /usr/bin/python3 tools/make_model.py --shape 130m --layout hf --dtype f32 -o /tmp/m130
  /usr/bin/python3 tools/serve_bench.py --mamba2 build/mamba2 -m /tmp/m130 \\
      --tokenizer ../shared/data/gpt-neox-20b/tokenizer.json --streams 1,4,16 --max-tokens 64
Standard library only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

WORDS = "the old king walked slowly through the silent garden while rain fell on the roses".split()


def metrics(base):
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def stream_one(base, prompt, max_tokens, out):
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(base + "/v1/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    with urllib.request.urlopen(req, timeout=3600) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
            elif ev["choices"] and ev["choices"][0]["text"]:
                now = time.perf_counter()
                first = first or now
                last = now
    out.append({"start": t0, "first": first, "last": last, "tokens": tokens})


def run_round(base, c, max_tokens, round_id):
    results, threads = [], []
    for i in range(c):
        # Distinct prompts: no prompt-state cache hits, every stream prefills its own prompt.
        prompt = f"Story {round_id}-{i}: " + " ".join(WORDS[(i + k) % len(WORDS)] for k in range(12))
        threads.append(threading.Thread(target=stream_one, args=(base, prompt, max_tokens, results)))
    m0 = metrics(base)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    m1 = metrics(base)
    if len(results) != c:
        raise SystemExit(f"only {len(results)} of {c} streams completed")
    tokens = sum(r["tokens"] for r in results)
    ttft = sum(r["first"] - r["start"] for r in results) / c
    per_stream = sum((r["tokens"] - 1) / max(r["last"] - r["first"], 1e-9) for r in results) / c
    steps = m1["mamba2_decode_steps_total"] - m0["mamba2_decode_steps_total"]
    rows = m1["mamba2_decode_rows_total"] - m0["mamba2_decode_rows_total"]
    return {"streams": c, "tokens": tokens, "wall": wall, "agg": tokens / wall, "ttft": ttft,
            "per_stream": per_stream, "batch": rows / max(steps, 1)}


def start_server(args):
    log = tempfile.NamedTemporaryFile(prefix="serve_bench_", suffix=".log", delete=False)
    cmd = [args.mamba2, "serve", "-m", args.model, "--port", "0", "--max-seqs", str(max(args.streams)),
           "--max-queue", str(4 * max(args.streams)), "--max-tokens-limit", str(max(args.max_tokens, 16))]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--backend", args.backend]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline:
        with open(log.name) as f:
            m = re.search(r"listening on (http://[0-9.]+:\d+)", f.read())
        if m:
            return proc, m.group(1), log.name
        if proc.poll() is not None:
            raise SystemExit("server exited:\n" + open(log.name).read())
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mamba2", help="mamba2 binary (the server is started with it)")
    ap.add_argument("-m", "--model", help="model folder")
    ap.add_argument("--tokenizer")
    ap.add_argument("--base", help="use a running server at this URL instead")
    ap.add_argument("--streams", default="1,4,16", help="comma-separated concurrency levels")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="rounds per level (the best is kept)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args()
    args.streams = [int(x) for x in args.streams.split(",")]
    proc = None
    if args.base:
        base = args.base
    else:
        if not (args.mamba2 and args.model):
            ap.error("give --mamba2 and -m, or --base")
        proc, base, log = start_server(args)
    try:
        run_round(base, 1, 4, "warmup")
        rows = []
        for c in args.streams:
            best = None
            for k in range(args.rounds):
                r = run_round(base, c, args.max_tokens, f"{c}.{k}")
                if best is None or r["agg"] > best["agg"]:
                    best = r
            rows.append(best)
            print(f"streams {c}: {best['agg']:.1f} tok/s", file=sys.stderr)
    finally:
        if proc:
            proc.terminate()
            proc.wait()
    print(f"date: {time.strftime('%Y-%m-%d')}; CPU: {cpu_model()} ({os.cpu_count()} logical cores); "
          f"load average at end: {os.getloadavg()[0]:.1f}; {args.max_tokens} tokens per stream")
    print()
    print("| streams | aggregate tok/s | per-stream tok/s | mean TTFT ms | mean decode batch | tokens | wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['streams']} | {r['agg']:.1f} | {r['per_stream']:.1f} | {r['ttft'] * 1000:.0f} | "
              f"{r['batch']:.2f} | {r['tokens']} | {r['wall']:.2f} |")


if __name__ == "__main__":
    main()
