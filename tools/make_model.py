#!/usr/bin/python3
"""Writes a random Mamba-2 model directory, initialised as mamba_ssm initialises
(MAMBA2-SPEC section 4), in the state-spaces layout (config.json + pytorch_model.bin)
or the transformers layout (config.json + [sharded] model.safetensors).

The weights depend only on the shapes, --seed and --perturb-norms, never on the
layout or storage dtype, so the same seed gives the same model in both layouts
(up to the storage rounding of --dtype).

Examples:
  make_model.py --layout ss --dtype f16 --shape 130m -o /tmp/m130
  make_model.py --layout hf --d-model 64 --n-layer 2 --d-state 16 --head-dim 16 \\
      --n-groups 2 --chunk-size 16 --vocab 300 --dtype bf16 --untied --shards 3 -o /tmp/tiny
"""

import argparse
import collections
import json
import math
import os
import struct
import sys

import numpy as np

MAMBA2_DEFAULTS = dict(d_state=128, head_dim=64, n_groups=1, expand=2, d_conv=4, chunk_size=256)
SHAPE_130M = dict(d_model=768, n_layer=24, vocab=50277, pad_multiple=16)


# ---------------------------------------------------------------------------
# weights (float32, layout independent)

def pad_vocab(v, m):
    return v + (m - v % m) if m and v % m else v


def init_weights(d_model, n_layer, d_state, head_dim, n_groups, expand, d_conv, vocab_rows,
                 untied, seed, perturb_norms):
    """Returns an ordered list of (mamba_ssm name, float32 array)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    d_inner = expand * d_model
    if d_inner % head_dim:
        raise ValueError(f"d_inner {d_inner} is not a multiple of head_dim {head_dim}")
    n_heads = d_inner // head_dim
    if n_heads % n_groups:
        raise ValueError(f"n_heads {n_heads} is not a multiple of n_groups {n_groups}")
    conv_dim = d_inner + 2 * n_groups * d_state
    p_rows = 2 * d_inner + 2 * n_groups * d_state + n_heads

    def unif(shape, bound):
        return ((rng.random(shape, dtype=f32) * 2 - 1) * f32(bound)).astype(f32)

    def ones_like_norm(n):
        w = np.ones(n, f32)
        if perturb_norms:
            w += f32(0.1) * rng.standard_normal(n, dtype=f32)
        return w

    out = [("backbone.embedding.weight", f32(0.02) * rng.standard_normal((vocab_rows, d_model), dtype=f32))]
    for i in range(n_layer):
        pre = f"backbone.layers.{i}."
        # A ~ U[1,16]
        A = rng.uniform(1.0, 16.0, n_heads)
        # dt log-uniform on [1e-3, 0.1], floor 1e-4, then inverse softplus
        dt = np.exp(rng.random(n_heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt = np.maximum(dt, 1e-4)
        dt_bias = dt + np.log(-np.expm1(-dt))
        out += [
            (pre + "norm.weight", ones_like_norm(d_model)),
            (pre + "mixer.dt_bias", dt_bias.astype(f32)),
            (pre + "mixer.A_log", np.log(A).astype(f32)),
            (pre + "mixer.D", ones_like_norm(n_heads)),
            (pre + "mixer.in_proj.weight", unif((p_rows, d_model), 1 / math.sqrt(d_model))),
            (pre + "mixer.conv1d.weight", unif((conv_dim, 1, d_conv), 0.5)),
            (pre + "mixer.conv1d.bias", unif((conv_dim,), 0.5)),
            (pre + "mixer.norm.weight", ones_like_norm(d_inner)),
            (pre + "mixer.out_proj.weight", unif((d_model, d_inner), 1 / math.sqrt(d_inner) / math.sqrt(n_layer))),
        ]
    out.append(("backbone.norm_f.weight", ones_like_norm(d_model)))
    if untied:
        out.append(("lm_head.weight", unif((vocab_rows, d_model), 1 / math.sqrt(d_model))))
    return out


# ---------------------------------------------------------------------------
# storage conversions

def f32_to_bf16_bits(a):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


_ST_NAME = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def to_storage_bytes(a, dtype):
    if dtype == "f32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "f16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "bf16":
        return f32_to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 array, dtype 'f32'|'f16'|'bf16')."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, a, dt in tensors:
        b = to_storage_bytes(a, dt)
        header[name] = {"dtype": _ST_NAME[dt], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


# ---------------------------------------------------------------------------
# writers

def _storage_dtype(name, dtype, mixed):
    # --mixed: keep the small per-head SSM parameters in float32, as some
    # converted checkpoints do, so loaders must honour per-tensor dtypes.
    if mixed and name.rsplit(".", 1)[-1] in ("A_log", "D", "dt_bias"):
        return "f32"
    return dtype


def write_ss(out_dir, weights, dims, vocab, pad_multiple, untied, dtype, mixed):
    import torch

    tdt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    ssm_cfg = {"layer": "Mamba2"}
    names = {"d_state": "d_state", "head_dim": "headdim", "n_groups": "ngroups", "expand": "expand",
             "d_conv": "d_conv", "chunk_size": "chunk_size"}
    for k, ssk in names.items():
        if dims[k] != MAMBA2_DEFAULTS[k]:
            ssm_cfg[ssk] = dims[k]
    cfg = {
        "d_model": dims["d_model"],
        "d_intermediate": 0,
        "n_layer": dims["n_layer"],
        "vocab_size": vocab,
        "ssm_cfg": ssm_cfg,
        "attn_layer_idx": [],
        "attn_cfg": {},
        "rms_norm": True,
        "residual_in_fp32": True,
        "fused_add_norm": True,
        "pad_vocab_size_multiple": pad_multiple,
        "tie_embeddings": not untied,
    }
    sd = collections.OrderedDict()
    for name, a in weights:
        sd[name] = torch.from_numpy(np.ascontiguousarray(a)).to(tdt[_storage_dtype(name, dtype, mixed)])
    if not untied:
        # module.state_dict() detaches each parameter, so the real checkpoints hold two tensor
        # objects over one storage: two _rebuild_tensor_v2 records naming the same storage key
        sd["lm_head.weight"] = sd["backbone.embedding.weight"].detach()
    # module.state_dict() attaches _metadata (pickled via BUILD); mimic it
    meta = collections.OrderedDict()
    for prefix in ["", "backbone", "backbone.embedding", "backbone.layers"]:
        meta[prefix] = {"version": 1}
    for i in range(dims["n_layer"]):
        for sub in ["", ".norm", ".mixer", ".mixer.in_proj", ".mixer.conv1d", ".mixer.act", ".mixer.norm",
                    ".mixer.out_proj"]:
            meta[f"backbone.layers.{i}{sub}"] = {"version": 1}
    meta["backbone.norm_f"] = {"version": 1}
    meta["lm_head"] = {"version": 1}
    sd._metadata = meta
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    torch.save(sd, os.path.join(out_dir, "pytorch_model.bin"))


def write_hf(out_dir, weights, dims, vocab_rows, untied, dtype, mixed, shards):
    d_inner = dims["expand"] * dims["d_model"]
    cfg = {
        "architectures": ["Mamba2ForCausalLM"],
        "model_type": "mamba2",
        "hidden_size": dims["d_model"],
        "num_hidden_layers": dims["n_layer"],
        "state_size": dims["d_state"],
        "head_dim": dims["head_dim"],
        "num_heads": d_inner // dims["head_dim"],
        "n_groups": dims["n_groups"],
        "expand": dims["expand"],
        "conv_kernel": dims["d_conv"],
        "chunk_size": dims["chunk_size"],
        "vocab_size": vocab_rows,
        "time_step_limit": [0.0, float("inf")],  # json writes the literal Infinity on purpose
        "time_step_min": 0.001,
        "time_step_max": 0.1,
        "time_step_floor": 0.0001,
        "layer_norm_epsilon": 1e-5,
        "hidden_act": "silu",
        "use_bias": False,
        "use_conv_bias": True,
        "residual_in_fp32": True,
        "rms_norm": True,
        "initializer_range": 0.1,
        "rescale_prenorm_residual": False,
        "tie_word_embeddings": not untied,
        "use_cache": True,
        "pad_token_id": 0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype],
    }
    tensors = []
    for name, a in weights:
        if name == "backbone.embedding.weight":
            name = "backbone.embeddings.weight"
        tensors.append((name, a, _storage_dtype(name, dtype, mixed)))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
        return
    # contiguous groups of roughly equal byte size
    sizes = [a.size * {"f32": 4, "f16": 2, "bf16": 2}[dt] for _, a, dt in tensors]
    total = sum(sizes)
    groups = [[] for _ in range(shards)]
    acc = 0
    for t, s in zip(tensors, sizes):
        k = min(shards - 1, int(acc * shards / total))
        groups[k].append(t)
        acc += s
    groups = [g for g in groups if g]
    weight_map = {}
    for k, g in enumerate(groups):
        fname = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors(os.path.join(out_dir, fname), g)
        for name, _, _ in g:
            weight_map[name] = fname
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def make(out_dir, layout="ss", d_model=64, n_layer=2, d_state=128, head_dim=64, n_groups=1, expand=2,
         d_conv=4, chunk_size=256, vocab=300, pad_multiple=16, dtype="f32", shards=1, untied=False,
         seed=0, perturb_norms=True, mixed=False, weights=None):
    """Writes the model; returns the list of (name, float32 weights) before storage rounding."""
    os.makedirs(out_dir, exist_ok=True)
    dims = dict(d_model=d_model, n_layer=n_layer, d_state=d_state, head_dim=head_dim, n_groups=n_groups,
                expand=expand, d_conv=d_conv, chunk_size=chunk_size)
    vocab_rows = pad_vocab(vocab, pad_multiple)
    if weights is None:
        weights = init_weights(d_model, n_layer, d_state, head_dim, n_groups, expand, d_conv, vocab_rows,
                               untied, seed, perturb_norms)
    if layout == "ss":
        if shards > 1:
            raise ValueError("--shards applies to the hf layout only")
        write_ss(out_dir, weights, dims, vocab, pad_multiple, untied, dtype, mixed)
    elif layout == "hf":
        write_hf(out_dir, weights, dims, vocab_rows, untied, dtype, mixed, shards)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return weights


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True, help="output model directory")
    ap.add_argument("--layout", choices=["ss", "hf"], default="ss")
    ap.add_argument("--shape", choices=["130m"], help="exact mamba2-130m shapes (overrides d-model/n-layer/vocab)")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--d-state", type=int, default=MAMBA2_DEFAULTS["d_state"])
    ap.add_argument("--head-dim", type=int, default=MAMBA2_DEFAULTS["head_dim"])
    ap.add_argument("--n-groups", type=int, default=MAMBA2_DEFAULTS["n_groups"])
    ap.add_argument("--expand", type=int, default=MAMBA2_DEFAULTS["expand"])
    ap.add_argument("--d-conv", type=int, default=MAMBA2_DEFAULTS["d_conv"])
    ap.add_argument("--chunk-size", type=int, default=MAMBA2_DEFAULTS["chunk_size"])
    ap.add_argument("--vocab", type=int, default=300, help="true vocab size (ss config's vocab_size)")
    ap.add_argument("--pad-multiple", type=int, default=16, help="rows are vocab padded to this multiple")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32", help="storage dtype")
    ap.add_argument("--mixed", action="store_true", help="store A_log, D, dt_bias as f32 whatever --dtype")
    ap.add_argument("--shards", type=int, default=1, help="hf layout: number of safetensors shards")
    ap.add_argument("--untied", action="store_true", help="separate lm_head.weight")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb-norms", dest="perturb_norms", action="store_true", default=True,
                    help="norm weights and D = 1 + 0.1*N(0,1) (default)")
    ap.add_argument("--no-perturb-norms", dest="perturb_norms", action="store_false",
                    help="norm weights and D exactly 1, as mamba_ssm initialises them")
    a = ap.parse_args(argv)
    if a.shape == "130m":
        a.d_model, a.n_layer, a.vocab, a.pad_multiple = (SHAPE_130M[k] for k in
                                                         ("d_model", "n_layer", "vocab", "pad_multiple"))
    make(a.out, a.layout, a.d_model, a.n_layer, a.d_state, a.head_dim, a.n_groups, a.expand, a.d_conv,
         a.chunk_size, a.vocab, a.pad_multiple, a.dtype, a.shards, a.untied, a.seed, a.perturb_norms, a.mixed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
