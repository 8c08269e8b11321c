#!/usr/bin/env bash
# `mamba2 serve --backend cuda` on the fake CUDA device (mamba2_fake_cuda): concurrent requests,
# streamed and not, decoded together in one batch (the batched step as a graph per row count),
# and a prompt that repeats (the prompt-state cache's slot copies on the device); every text must
# equal what a cpu-backend server answers. Short: the emulator takes about a second per step.
# usage: bash serve_test.sh <mamba2_fake_cuda-binary> <repo-root>
set -u
MAMBA2=${1:?usage: $0 <mamba2_fake_cuda-binary> <repo-root>}
ROOT=${2:?usage: $0 <mamba2_fake_cuda-binary> <repo-root>}
source "$ROOT/tests/serve/serve_lib.sh"
serve_pick_model
serve_start cuda --backend cuda --max-seqs 4 --threads 2 --state-cache-mb 16
serve_start cpu --backend cpu --max-seqs 4 --threads 2 --state-cache-mb 0
timeout 600 "$PY" - "$BASE_cuda" "$BASE_cpu" <<'EOF' || die "cuda server answers differ from the cpu server's"
import json, sys, threading, urllib.request

cuda, cpu = sys.argv[1], sys.argv[2]

def complete(base, prompt, stream, max_tokens=6, seed=None):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0 if seed is None else 0.8, "stream": stream}
    if seed is not None:
        body["seed"] = seed
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        if not stream:
            j = json.load(r)
            return j["choices"][0]["text"], j["usage"]["prompt_tokens_details"]["cached_tokens"]
        text = ""
        for line in r:
            line = line.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                text += json.loads(line[6:])["choices"][0]["text"]
        return text, None

requests = [("First Citizen:\nBefore we proceed any further, hear me speak.", False, None), ("JULIET:\nO Romeo", True, None), ("First Citizen:\nBefore", False, 7),
            ("KING HENRY VI:\nO God! methinks", True, 3)]
got = [None] * len(requests)

def run(i):
    prompt, stream, seed = requests[i]
    got[i] = complete(cuda, prompt, stream, seed=seed)[0]

threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
for t in threads:
    t.start()
for t in threads:
    t.join()
fails = 0
for (prompt, stream, seed), text in zip(requests, got):
    want = complete(cpu, prompt, stream, seed=seed)[0]
    same = text == want
    fails += not same
    print(f"{'ok  ' if same else 'FAIL'} {prompt!r} stream={stream} seed={seed}: cuda {text!r} cpu {want!r}")
# The first prompt again: its state comes from the cache now (copied between slots on the device).
again, cached = complete(cuda, requests[0][0], False)
good = again == got[0] and cached > 0
fails += not good
print(f"{'ok  ' if good else 'FAIL'} repeated prompt, {cached} tokens from the state cache: {again!r}")
sys.exit(1 if fails else 0)
EOF
serve_alive cuda
echo "serve --backend cuda on the fake device: ok"
