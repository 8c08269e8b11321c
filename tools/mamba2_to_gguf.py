#!/usr/bin/env python3
"""Writes a state-spaces Mamba-2 model folder (config.json + model.safetensors, as
`mamba2 bench --write-model` makes) as a llama.cpp GGUF file, for the llama.cpp comparison
in BENCHMARKS.md.

llama.cpp's own convert_hf_to_gguf.py needs transformers and torch >= 2.1 at import time,
which this machine's /usr/bin/python3 lacks; this script follows the same conventions for
the mamba2 architecture (metadata keys, tensor names and shapes, A = -exp(A_log), which
tensors stay f32) and uses gguf-py from a llama.cpp checkout, imported at run time only.

  mamba2_to_gguf.py MODEL_DIR OUT.gguf --outtype f32|f16|bf16 --llama-dir LLAMA_DIR

The vocabulary is llama.cpp's built-in GPT-NeoX one (LLAMA_DIR/models/ggml-vocab-gpt-neox.gguf),
the tokenizer the Mamba-2 checkpoints use.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        if t["dtype"] == "F32":
            arr = raw.view(np.float32)
        elif t["dtype"] == "F16":
            arr = raw.view(np.float16).astype(np.float32)
        elif t["dtype"] == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}")
        out[name] = arr.reshape(t["shape"])
    return out


def copy_vocab(gguf, writer, vocab_path, vocab_size):
    """The built-in GPT-NeoX vocabulary, as llama.cpp's converter copies it."""
    r = gguf.GGUFReader(vocab_path, "r")
    K = gguf.Keys.Tokenizer

    def field(key):
        return r.get_field(key)

    writer.add_tokenizer_model(bytes(field(K.MODEL).parts[-1]).decode("utf-8"))
    pre = field(K.PRE)
    writer.add_tokenizer_pre(bytes(pre.parts[-1]).decode("utf-8") if pre else "mpt")
    tokens = field(K.LIST)
    writer.add_token_list([bytes(tokens.parts[i]) for i in tokens.data][:vocab_size])
    types = field(K.TOKEN_TYPE)
    writer.add_token_types([types.parts[i].tolist()[0] for i in types.data][:vocab_size])
    merges = field(K.MERGES)
    writer.add_token_merges([bytes(merges.parts[i]) for i in merges.data])
    for key, add in ((K.BOS_ID, writer.add_bos_token_id), (K.EOS_ID, writer.add_eos_token_id),
                     (K.UNK_ID, writer.add_unk_token_id), (K.PAD_ID, writer.add_pad_token_id)):
        if (f := field(key)) is not None:
            add(f.parts[-1].tolist()[0])
    for key, add in ((K.ADD_BOS, writer.add_add_bos_token), (K.ADD_EOS, writer.add_add_eos_token)):
        if (f := field(key)) is not None:
            add(bool(f.parts[-1].tolist()[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--llama-dir", type=Path, required=True)
    a = ap.parse_args()
    sys.path.insert(0, str(a.llama_dir / "gguf-py"))
    import gguf  # noqa: E402  (from the llama.cpp checkout, never vendored here)

    cfg = json.loads((a.model_dir / "config.json").read_text())
    ssm = cfg.get("ssm_cfg", {})
    d_model, n_layer = cfg["d_model"], cfg["n_layer"]
    pad = cfg.get("pad_vocab_size_multiple", 16)
    vocab_rows = -(cfg["vocab_size"] // -pad) * pad
    d_state, d_conv = ssm.get("d_state", 128), ssm.get("d_conv", 4)
    head_dim, n_groups = ssm.get("headdim", 64), ssm.get("ngroups", 1)
    d_inner = ssm.get("expand", 2) * d_model
    n_heads = d_inner // head_dim

    w = read_safetensors(a.model_dir / "model.safetensors")
    Q = gguf.GGMLQuantizationType
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16}[a.outtype]
    qtype = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16}[a.outtype]

    writer = gguf.GGUFWriter(a.out, "mamba2")
    writer.add_name(a.model_dir.name)
    writer.add_context_length(2**20)
    writer.add_embedding_length(d_model)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_block_count(n_layer)
    writer.add_ssm_conv_kernel(d_conv)
    writer.add_ssm_inner_size(d_inner)
    writer.add_ssm_state_size(d_state)
    writer.add_ssm_time_step_rank(n_heads)
    writer.add_ssm_group_count(n_groups)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(ftype)
    copy_vocab(gguf, writer, a.llama_dir / "models" / "ggml-vocab-gpt-neox.gguf", vocab_rows)

    def add(name, arr, matrix):
        # Like the converter: only 2-D .weight matrices take the output type; norms, conv,
        # biases, A and D stay f32.
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        t = qtype if matrix else Q.F32
        writer.add_tensor(name, gguf.quants.quantize(arr, t), raw_dtype=t)

    add("token_embd.weight", w["backbone.embedding.weight"], True)
    if "lm_head.weight" in w and not cfg.get("tie_embeddings", True):
        add("output.weight", w["lm_head.weight"], True)
    add("output_norm.weight", w["backbone.norm_f.weight"], False)
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", w[p + "norm.weight"], False)
        add(f"blk.{i}.ssm_in.weight", w[p + "mixer.in_proj.weight"], True)
        add(f"blk.{i}.ssm_conv1d.weight", w[p + "mixer.conv1d.weight"].reshape(-1, d_conv), False)
        add(f"blk.{i}.ssm_conv1d.bias", w[p + "mixer.conv1d.bias"], False)
        add(f"blk.{i}.ssm_dt.bias", w[p + "mixer.dt_bias"], False)
        add(f"blk.{i}.ssm_a", -np.exp(w[p + "mixer.A_log"].astype(np.float32)).reshape(n_heads, 1), False)
        add(f"blk.{i}.ssm_d", w[p + "mixer.D"].reshape(n_heads, 1), False)
        add(f"blk.{i}.ssm_norm.weight", w[p + "mixer.norm.weight"].reshape(n_groups, d_inner // n_groups), False)
        add(f"blk.{i}.ssm_out.weight", w[p + "mixer.out_proj.weight"], True)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {a.out} ({a.outtype})")


if __name__ == "__main__":
    main()
