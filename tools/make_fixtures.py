#!/usr/bin/python3
"""Regenerates the committed test fixtures in tests/data/fixtures/ (deterministic seeds).

  ss_tiny/     state-spaces layout: config.json + pytorch_model.bin, all tensors fp16, tied
  hf_tiny/     transformers layout: config.json + model.safetensors, bf16 with A_log/D/dt_bias
               stored f32, n_groups 2, untied lm_head
  hf_sharded/  the hf_tiny weights as 3 safetensors shards + model.safetensors.index.json

Each folder also gets ids.json and logits_<len>.npy (see tools/README.md for the format),
computed by tools/mamba2_ref.py in float64 and stored as float32.

Usage: make_fixtures.py [-o tests/data/fixtures]
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model  # noqa: E402
import mamba2_ref  # noqa: E402

TINY = dict(d_model=64, n_layer=2, d_state=16, head_dim=16, expand=2, d_conv=4, chunk_size=16,
            vocab=300, pad_multiple=16)

FIXTURES = {
    "ss_tiny": dict(layout="ss", dtype="f16", n_groups=1, untied=False, seed=1, shards=1, mixed=False),
    "hf_tiny": dict(layout="hf", dtype="bf16", n_groups=2, untied=True, seed=2, shards=1, mixed=True),
    "hf_sharded": dict(layout="hf", dtype="bf16", n_groups=2, untied=True, seed=2, shards=3, mixed=True),
}


def make_one(root, name, spec):
    d = os.path.join(root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    make_model.make(out_dir=d, perturb_norms=True, **TINY, **spec)
    m = mamba2_ref.load_model(d)
    Q = m.cfg.chunk_size
    rng = np.random.default_rng(1000 + spec["seed"])
    seqs = []
    for length in (1, Q - 1, Q, Q + 1, 3 * Q + 5):
        ids = rng.integers(0, TINY["vocab"], length)
        if length > 2:
            ids[1], ids[2] = 0, TINY["vocab"] - 1  # both ends of the real vocab
        logits = m.forward(ids)  # float64, chunked SSD
        # the decode path must agree too; guard the fixture itself
        rec = m.forward(ids, recurrent=True)
        assert np.linalg.norm(logits - rec) <= 1e-12 * np.linalg.norm(rec)
        fname = f"logits_{length}.npy"
        np.save(os.path.join(d, fname), logits.astype(np.float32))
        seqs.append({"length": int(length), "ids": [int(t) for t in ids], "logits": fname})
    meta = {
        "model": name,
        "layout": spec["layout"],
        "chunk_size": Q,
        "vocab_size": TINY["vocab"],
        "vocab_rows": m.cfg.vocab_rows,
        "logits_dtype": "float32",
        "logits_shape": "[length, vocab_rows]",
        "reference": "tools/mamba2_ref.py (float64, chunked SSD), rounded to float32",
        "sequences": seqs,
    }
    # one sequence per line keeps the file readable
    text = json.dumps({k: v for k, v in meta.items() if k != "sequences"}, indent=1)[:-2]
    text += ',\n "sequences": [\n  ' + ",\n  ".join(json.dumps(s) for s in seqs) + "\n ]\n}\n"
    json.loads(text)
    with open(os.path.join(d, "ids.json"), "w") as f:
        f.write(text)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{name}: {size} bytes, rows={m.cfg.vocab_rows}, chunk={Q}, lengths={[s['length'] for s in seqs]}")
    return size


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default=os.path.join(here, "..", "tests", "data", "fixtures"))
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    total = sum(make_one(a.out, name, spec) for name, spec in FIXTURES.items())
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
