#!/usr/bin/python3
"""Independent float64 numpy reference of the Mamba-2 forward pass.

Written from docs MAMBA2-SPEC sections 1-3 only (no C++ code was consulted), so
it can serve as the oracle for the engine's tests:

  * loads a model directory in the state-spaces layout (config.json with d_model,
    pytorch_model.bin) or the transformers layout (config.json with hidden_size,
    model.safetensors or sharded safetensors + index);
  * forward(): full-sequence prefill with the CHUNKED SSD algorithm (segsum,
    diagonal blocks, chunk states, state passing, off-diagonal), optional initial
    state in and final state out;
  * step(): single-token decode per spec section 3;
  * ssd_recurrent(): the per-token recurrence, used only by --selftest.

CLI:
  mamba2_ref.py logits -m DIR --ids 1,2,3 -o OUT.npy [--f64] [--chunk-size Q]
  mamba2_ref.py --selftest
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

F = np.float64  # compute dtype of the reference


# ---------------------------------------------------------------------------
# safetensors reader (own, minimal)

_ST_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


def read_safetensors(path):
    """Returns {name: np.ndarray (float32/float64/int)}; BF16 is widened to float32."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError(f"{path}: header length {hlen} exceeds file size {len(raw)}")
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = memoryview(raw)[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        buf = data[b:e]
        n = int(np.prod(shape)) if shape else 1
        if dt == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2", count=n)
            arr = (u16.astype(np.uint32) << 16).view(np.float32)
        elif dt in _ST_DTYPES:
            arr = np.frombuffer(buf, dtype=_ST_DTYPES[dt], count=n)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        if arr.nbytes != (e - b) * (2 if dt == "BF16" else 1):
            raise ValueError(f"{path}: tensor {name}: byte size mismatch")
        out[name] = arr.reshape(shape).copy()
    return out


# ---------------------------------------------------------------------------
# model loading

def _json_load(path):
    with open(path, "r") as f:
        # Python's json accepts the non-standard Infinity/NaN literals natively.
        return json.load(f)


def _as_float(v):
    if isinstance(v, dict) and "__float__" in v:
        return float(v["__float__"])  # transformers 5.x form, e.g. "Infinity"
    return float(v)


def _pad_vocab(v, m):
    if m and v % m != 0:
        v += m - v % m
    return v


class Config:
    """Hyperparameters in the spec's names."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items())) + ")"


def parse_config(cfg):
    if "d_model" in cfg:  # state-spaces / mamba_ssm MambaConfig
        ssm = dict(cfg.get("ssm_cfg") or {})
        if ssm.get("layer", "Mamba2") != "Mamba2":
            raise ValueError(f"config.json: ssm_cfg.layer is {ssm.get('layer')!r}, expected 'Mamba2'")
        if cfg.get("d_intermediate", 0):
            raise NotImplementedError("config.json: d_intermediate > 0 (MLP blocks) not supported by the reference")
        if cfg.get("attn_layer_idx"):
            raise NotImplementedError("config.json: attention layers not supported by the reference")
        if not cfg.get("rms_norm", True):
            raise NotImplementedError("config.json: rms_norm=false (LayerNorm) not supported")
        if not ssm.get("rmsnorm", True) or ssm.get("norm_before_gate", False) or ssm.get("D_has_hdim", False):
            raise NotImplementedError("config.json: ssm_cfg rmsnorm/norm_before_gate/D_has_hdim non-default")
        d_model = int(cfg["d_model"])
        expand = int(ssm.get("expand", 2))
        d_inner = expand * d_model
        if ssm.get("d_ssm") not in (None, d_inner):
            raise NotImplementedError("config.json: d_ssm != d_inner not supported")
        head_dim = int(ssm.get("headdim", 64))
        dt_limit = ssm.get("dt_limit", [0.0, float("inf")])
        return Config(
            layout="ss",
            d_model=d_model,
            n_layer=int(cfg["n_layer"]),
            d_state=int(ssm.get("d_state", 128)),
            d_conv=int(ssm.get("d_conv", 4)),
            expand=expand,
            d_inner=d_inner,
            head_dim=head_dim,
            n_heads=d_inner // head_dim,
            n_groups=int(ssm.get("ngroups", 1)),
            chunk_size=int(ssm.get("chunk_size", 256)),
            dt_limit=(_as_float(dt_limit[0]), _as_float(dt_limit[1])),
            eps=float(cfg.get("norm_epsilon", 1e-5)),
            vocab_size=int(cfg["vocab_size"]),
            vocab_rows=_pad_vocab(int(cfg["vocab_size"]), int(cfg.get("pad_vocab_size_multiple", 1))),
            tied=bool(cfg.get("tie_embeddings", True)),
            use_bias=bool(ssm.get("bias", False)),
            use_conv_bias=bool(ssm.get("conv_bias", True)),
        )
    if "hidden_size" in cfg:  # transformers Mamba2Config
        d_model = int(cfg["hidden_size"])
        expand = int(cfg.get("expand", 2))
        d_inner = expand * d_model
        head_dim = int(cfg.get("head_dim", 64))
        n_heads = int(cfg.get("num_heads", d_inner // head_dim))
        if n_heads * head_dim != d_inner:
            raise ValueError(f"config.json: num_heads*head_dim = {n_heads * head_dim}, expected expand*hidden_size = {d_inner}")
        tsl = cfg.get("time_step_limit", [0.0, float("inf")])
        if not cfg.get("rms_norm", True):
            raise NotImplementedError("config.json: rms_norm=false not supported")
        return Config(
            layout="hf",
            d_model=d_model,
            n_layer=int(cfg["num_hidden_layers"]),
            d_state=int(cfg.get("state_size", 128)),
            d_conv=int(cfg.get("conv_kernel", 4)),
            expand=expand,
            d_inner=d_inner,
            head_dim=head_dim,
            n_heads=n_heads,
            n_groups=int(cfg.get("n_groups", 1)),
            chunk_size=int(cfg.get("chunk_size", 256)),
            dt_limit=(_as_float(tsl[0]), _as_float(tsl[1])),
            eps=float(cfg.get("layer_norm_epsilon", 1e-5)),
            vocab_size=int(cfg["vocab_size"]),
            vocab_rows=int(cfg["vocab_size"]),  # already padded in this layout
            tied=bool(cfg.get("tie_word_embeddings", False)),
            use_bias=bool(cfg.get("use_bias", False)),
            use_conv_bias=bool(cfg.get("use_conv_bias", True)),
        )
    raise ValueError("config.json: neither 'd_model' (state-spaces) nor 'hidden_size' (transformers) present")


def _load_pytorch_bin(path):
    import torch  # only needed for this layout

    sd = torch.load(path, map_location="cpu")
    out = {}
    for k, v in sd.items():
        out[k] = v.detach().to(torch.float64).numpy()  # fp16/bf16/fp32 -> f64 is exact
    return out


def _load_weights(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    pt = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(idx):
        wm = _json_load(idx)["weight_map"]
        out = {}
        for shard in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(model_dir, shard))
            for k, v in part.items():
                if wm.get(k) != shard:
                    raise ValueError(f"{shard}: tensor {k} not mapped to this shard in the index")
                out[k] = v
        missing = set(wm) - set(out)
        if missing:
            raise ValueError(f"{idx}: tensors missing from shards: {sorted(missing)[:5]}")
        return out
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(pt):
        return _load_pytorch_bin(pt)
    raise FileNotFoundError(f"{model_dir}: no model.safetensors[.index.json] or pytorch_model.bin")


class Model:
    """All weights as float64 arrays. Layer i is self.layers[i], a dict."""

    def __init__(self, cfg, w):
        self.cfg = c = cfg
        emb = w.get("backbone.embeddings.weight", w.get("backbone.embedding.weight"))
        if emb is None:
            raise KeyError("missing backbone.embedding(s).weight")
        self.embedding = self._chk(emb, (c.vocab_rows, c.d_model), "embedding")
        if "lm_head.weight" in w:
            self.lm_head = self._chk(w["lm_head.weight"], (c.vocab_rows, c.d_model), "lm_head.weight")
        else:
            self.lm_head = self.embedding
        self.norm_f = self._chk(w["backbone.norm_f.weight"], (c.d_model,), "norm_f")
        conv_dim = c.d_inner + 2 * c.n_groups * c.d_state
        p_rows = 2 * c.d_inner + 2 * c.n_groups * c.d_state + c.n_heads
        self.conv_dim = conv_dim
        self.layers = []
        for i in range(c.n_layer):
            pre = f"backbone.layers.{i}."
            g = lambda n, shape: self._chk(w[pre + n], shape, pre + n)  # noqa: E731
            L = {
                "norm": g("norm.weight", (c.d_model,)),
                "in_proj": g("mixer.in_proj.weight", (p_rows, c.d_model)),
                "conv_w": g("mixer.conv1d.weight", (conv_dim, 1, c.d_conv))[:, 0, :],  # [conv_dim, W]
                "conv_b": (g("mixer.conv1d.bias", (conv_dim,)) if c.use_conv_bias else np.zeros(conv_dim, F)),
                "dt_bias": g("mixer.dt_bias", (c.n_heads,)),
                "A_log": g("mixer.A_log", (c.n_heads,)),
                "D": g("mixer.D", (c.n_heads,)),
                "gnorm": g("mixer.norm.weight", (c.d_inner,)),
                "out_proj": g("mixer.out_proj.weight", (c.d_model, c.d_inner)),
            }
            if c.use_bias:
                L["in_proj_b"] = g("mixer.in_proj.bias", (p_rows,))
                L["out_proj_b"] = g("mixer.out_proj.bias", (c.d_model,))
            self.layers.append(L)

    @staticmethod
    def _chk(a, shape, name):
        a = np.asarray(a, dtype=F)
        if a.shape != tuple(shape):
            raise ValueError(f"tensor {name}: expected shape {tuple(shape)}, found {a.shape}")
        return a

    # -- pieces -------------------------------------------------------------

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.cfg.eps) * w

    def split_in_proj(self, zxbcdt):
        c = self.cfg
        d_mlp = (zxbcdt.shape[-1] - 2 * c.d_inner - 2 * c.n_groups * c.d_state - c.n_heads) // 2
        assert d_mlp == 0
        z = zxbcdt[..., : c.d_inner]
        xBC = zxbcdt[..., c.d_inner: c.d_inner + self.conv_dim]
        dt = zxbcdt[..., c.d_inner + self.conv_dim:]
        return z, xBC, dt

    def split_xBC(self, u):
        """u [..., conv_dim] -> x [..., h, p], B [..., g, n], C [..., g, n]."""
        c = self.cfg
        gn = c.n_groups * c.d_state
        x = u[..., : c.d_inner].reshape(u.shape[:-1] + (c.n_heads, c.head_dim))
        B = u[..., c.d_inner: c.d_inner + gn].reshape(u.shape[:-1] + (c.n_groups, c.d_state))
        C = u[..., c.d_inner + gn:].reshape(u.shape[:-1] + (c.n_groups, c.d_state))
        return x, B, C

    def heads_of_groups(self, B):
        """[..., g, n] -> [..., h, n]: head hh reads group hh // (h/g)."""
        c = self.cfg
        return np.repeat(B, c.n_heads // c.n_groups, axis=-2)

    def dt_act(self, dt_raw, L):
        v = dt_raw + L["dt_bias"]
        # softplus with torch's threshold 20; log1p(exp(v)) is safe for v <= 20
        dt = np.where(v <= 20.0, np.log1p(np.exp(np.minimum(v, 20.0))), v)
        lo, hi = self.cfg.dt_limit
        if lo > 0.0 or hi != math.inf:
            dt = np.clip(dt, lo, hi)
        return dt

    def gated_norm(self, y, z, w):
        """y, z [..., d_inner]; RMSNorm of y*silu(z) per group of d_inner/n_groups."""
        c = self.cfg
        s = y * silu(z)
        G = c.d_inner // c.n_groups
        sg = s.reshape(s.shape[:-1] + (c.n_groups, G))
        sg = sg / np.sqrt(np.mean(sg * sg, axis=-1, keepdims=True) + c.eps)
        return sg.reshape(s.shape) * w

    def conv_prefill(self, xBC, L, conv_state):
        """xBC [T, conv_dim]; conv_state [conv_dim, W] (oldest first) or None.
        Returns activated u [T, conv_dim] and the new conv_state."""
        c = self.cfg
        W = c.d_conv
        T = xBC.shape[0]
        if conv_state is None:
            conv_state = np.zeros((self.conv_dim, W), F)
        hist = np.concatenate([conv_state.T, xBC], axis=0)  # [W + T, conv_dim]
        # only the last W-1 history rows can reach the new tokens
        xp = hist[1:]  # [W - 1 + T, conv_dim]
        acc = np.broadcast_to(L["conv_b"], (T, self.conv_dim)).copy()
        for k in range(W):
            acc += L["conv_w"][:, k] * xp[k: k + T]
        new_state = hist[-W:].T.copy()  # [conv_dim, W]
        return silu(acc), new_state

    # -- mixer ---------------------------------------------------------------

    def mixer(self, xn, L, state=None, chunk_size=None, recurrent=False):
        """xn [T, d_model] -> out [T, d_model], new state dict."""
        c = self.cfg
        T = xn.shape[0]
        zxbcdt = xn @ L["in_proj"].T
        if "in_proj_b" in L:
            zxbcdt = zxbcdt + L["in_proj_b"]
        z, xBC, dt_raw = self.split_in_proj(zxbcdt)
        u, conv_state = self.conv_prefill(xBC, L, None if state is None else state["conv"])
        x, B, C = self.split_xBC(u)
        dt = self.dt_act(dt_raw, L)  # [T, h]
        A = -np.exp(L["A_log"])  # [h]
        Bh, Ch = self.heads_of_groups(B), self.heads_of_groups(C)
        h0 = None if state is None else state["ssm"]
        if recurrent:
            y, hT = ssd_recurrent(x, dt, A, Bh, Ch, h0)
        else:
            y, hT = ssd_chunked(x, dt, A, Bh, Ch, chunk_size or c.chunk_size, h0)
        y = y + L["D"][:, None] * x
        y = y.reshape(T, c.d_inner)
        yn = self.gated_norm(y, z, L["gnorm"])
        out = yn @ L["out_proj"].T
        if "out_proj_b" in L:
            out = out + L["out_proj_b"]
        return out, {"conv": conv_state, "ssm": hT}

    def mixer_step(self, xn, L, state):
        """One token, spec section 3. xn [d_model]; state updated in place copy."""
        c = self.cfg
        zxbcdt = L["in_proj"] @ xn
        if "in_proj_b" in L:
            zxbcdt = zxbcdt + L["in_proj_b"]
        z, xBC, dt_raw = self.split_in_proj(zxbcdt)
        conv = np.roll(state["conv"], -1, axis=1)
        conv[:, -1] = xBC
        u = silu(np.sum(conv * L["conv_w"], axis=1) + L["conv_b"])
        x, B, C = self.split_xBC(u)  # [h,p], [g,n], [g,n]
        dt = self.dt_act(dt_raw, L)  # [h]
        dA = np.exp(dt * -np.exp(L["A_log"]))
        Bh, Ch = self.heads_of_groups(B), self.heads_of_groups(C)  # [h, n]
        ssm = state["ssm"] * dA[:, None, None] + (dt[:, None] * x)[:, :, None] * Bh[:, None, :]
        y = np.einsum("hpn,hn->hp", ssm, Ch) + L["D"][:, None] * x
        yn = self.gated_norm(y.reshape(c.d_inner), z, L["gnorm"])
        out = L["out_proj"] @ yn
        if "out_proj_b" in L:
            out = out + L["out_proj_b"]
        return out, {"conv": conv, "ssm": ssm}

    # -- model ---------------------------------------------------------------

    def empty_state(self):
        c = self.cfg
        return [
            {"conv": np.zeros((self.conv_dim, c.d_conv), F),
             "ssm": np.zeros((c.n_heads, c.head_dim, c.d_state), F)}
            for _ in range(c.n_layer)
        ]

    def _check_ids(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.cfg.vocab_rows):
            raise ValueError(f"token id out of range [0, {self.cfg.vocab_rows})")
        return ids

    def forward(self, ids, initial_state=None, chunk_size=None, recurrent=False, return_state=False):
        """ids [T] -> logits [T, vocab_rows] (float64); optionally the final states.

        initial_state: list per layer of {"conv": [conv_dim, W], "ssm": [h, p, n]}."""
        ids = self._check_ids(ids)
        hid = self.embedding[ids]
        res = np.zeros_like(hid)
        states = []
        for i, L in enumerate(self.layers):
            res = hid + res
            xn = self.rmsnorm(res, L["norm"])
            st = None if initial_state is None else initial_state[i]
            hid, new = self.mixer(xn, L, st, chunk_size, recurrent)
            states.append(new)
        res = hid + res
        logits = self.rmsnorm(res, self.norm_f) @ self.lm_head.T
        return (logits, states) if return_state else logits

    def step(self, token, state):
        """One decode step: token id -> (logits [vocab_rows], new state)."""
        token = int(self._check_ids([token])[0])
        hid = self.embedding[token]
        res = np.zeros_like(hid)
        new_states = []
        for L, st in zip(self.layers, state):
            res = hid + res
            xn = self.rmsnorm(res, L["norm"])
            hid, ns = self.mixer_step(xn, L, st)
            new_states.append(ns)
        res = hid + res
        return self.rmsnorm(res, self.norm_f) @ self.lm_head.T, new_states


def load_model(model_dir):
    cfg = parse_config(_json_load(os.path.join(model_dir, "config.json")))
    return Model(cfg, _load_weights(model_dir))


# ---------------------------------------------------------------------------
# SSD

def silu(v):
    return v / (1.0 + np.exp(-v))


def ssd_recurrent(x, dt, A, B, C, h0=None):
    """Ground-truth recurrence. x [T,h,p], dt [T,h], A [h], B/C [T,h,n] -> y [T,h,p], H_T [h,p,n]."""
    T, h, p = x.shape
    n = B.shape[-1]
    H = np.zeros((h, p, n), F) if h0 is None else h0.copy()
    y = np.empty((T, h, p), F)
    for t in range(T):
        dA = np.exp(dt[t] * A)
        H = H * dA[:, None, None] + (dt[t][:, None] * x[t])[:, :, None] * B[t][:, None, :]
        y[t] = np.einsum("hpn,hn->hp", H, C[t])
    return y, H


def ssd_chunked(x, dt, A, B, C, Q, h0=None):
    """Chunked SSD (spec 2.3), without the D term. Shapes as ssd_recurrent."""
    T, h, p = x.shape
    n = B.shape[-1]
    Nc = max(1, -(-T // Q))
    pad = Nc * Q - T
    if pad:
        # padded positions: dt = 0 -> no decay and no contribution
        x = np.concatenate([x, np.zeros((pad, h, p), F)])
        dt = np.concatenate([dt, np.zeros((pad, h), F)])
        B = np.concatenate([B, np.zeros((pad, h, n), F)])
        C = np.concatenate([C, np.zeros((pad, h, n), F)])
    # chunk-major, head-major layout [Nc, h, Q, ...] so the contractions are batched matmuls
    xc = x.reshape(Nc, Q, h, p).transpose(0, 2, 1, 3)  # [Nc, h, Q, p]
    dtc = dt.reshape(Nc, Q, h).transpose(0, 2, 1)  # [Nc, h, Q]
    Bc = B.reshape(Nc, Q, h, n).transpose(0, 2, 1, 3)  # [Nc, h, Q, n]
    Cc = C.reshape(Nc, Q, h, n).transpose(0, 2, 1, 3)  # [Nc, h, Q, n]
    a = dtc * A[None, :, None]  # [Nc, h, Q]
    Acum = np.cumsum(a, axis=-1)  # [Nc, h, Q]
    xdt = xc * dtc[..., None]  # [Nc, h, Q, p]

    # 1) diagonal blocks: decay matrix exp(segsum), segsum[l,s] = sum_{k=s+1..l} a_k
    seg = Acum[..., :, None] - Acum[..., None, :]  # [Nc, h, l, s]
    causal = np.tril(np.ones((Q, Q), bool))
    Ldec = np.where(causal, np.exp(np.where(causal, seg, 0.0)), 0.0)
    CB = Cc @ Bc.transpose(0, 1, 3, 2)  # [Nc, h, l, s]
    Y_diag = (CB * Ldec) @ xdt  # [Nc, h, Q, p]

    # 2) chunk states from the inputs within each chunk
    Alast = Acum[..., -1]  # [Nc, h]
    decay_states = np.exp(Alast[..., None] - Acum)  # [Nc, h, Q]
    S = (xdt * decay_states[..., None]).transpose(0, 1, 3, 2) @ Bc  # [Nc, h, p, n]

    # 3) state passing between chunks
    H_in = np.empty((Nc + 1, h, p, n), F)
    H_in[0] = 0.0 if h0 is None else h0
    for cidx in range(Nc):
        H_in[cidx + 1] = np.exp(Alast[cidx])[:, None, None] * H_in[cidx] + S[cidx]

    # 4) off-diagonal: contribution of the state entering each chunk
    Y_off = (Cc @ H_in[:Nc].transpose(0, 1, 3, 2)) * np.exp(Acum)[..., None]  # [Nc, h, Q, p]

    Y_diag = Y_diag.transpose(0, 2, 1, 3)
    Y_off = Y_off.transpose(0, 2, 1, 3)
    y = (Y_diag + Y_off).reshape(Nc * Q, h, p)[:T]
    return y, H_in[Nc]


# ---------------------------------------------------------------------------
# self-test

def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def selftest():
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_model

    ok = True

    def check(name, err, tol=1e-12):
        nonlocal ok
        good = err <= tol
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {name}: rel err {err:.3e} (tol {tol:.0e})")

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as td:
        variants = [
            ("ss f32 g1", dict(layout="ss", n_groups=1, dtype="f32", vocab=100, pad_multiple=16)),
            ("hf bf16 g2 untied", dict(layout="hf", n_groups=2, dtype="bf16", vocab=112, untied=True)),
            ("ss f16 g4", dict(layout="ss", n_groups=4, dtype="f16", vocab=97, pad_multiple=8)),
        ]
        for vname, kw in variants:
            d = os.path.join(td, vname.replace(" ", "_"))
            make_model.make(
                out_dir=d, d_model=32, n_layer=2, d_state=8, head_dim=8, expand=2, d_conv=4,
                chunk_size=8, seed=1, perturb_norms=True, shards=1, **kw)
            m = load_model(d)
            print(f"[{vname}] {m.cfg.layout} rows={m.cfg.vocab_rows} g={m.cfg.n_groups}")
            T = 29
            ids = rng.integers(0, m.cfg.vocab_size, T)
            ref = m.forward(ids, recurrent=True)
            for Q in (8, 5, 1, 64):
                check(f"chunked Q={Q} == recurrence", _rel(m.forward(ids, chunk_size=Q), ref))
            # chunked final state == recurrent final state
            _, s_chunk = m.forward(ids, return_state=True)
            _, s_rec = m.forward(ids, recurrent=True, return_state=True)
            check("final ssm state chunked == recurrence",
                  max(_rel(a["ssm"], b["ssm"]) for a, b in zip(s_chunk, s_rec)))
            for K in (0, 1, 3, 8, 17):
                st = m.empty_state()
                if K:
                    lg0, st = m.forward(ids[:K], return_state=True)
                    rows = [lg0]
                else:
                    rows = []
                for t in ids[K:]:
                    lg, st = m.step(t, st)
                    rows.append(lg[None])
                check(f"prefill({K})+step == prefill(all)", _rel(np.concatenate(rows), ref))
            for K in (1, 2, 9, 16):
                lg0, st = m.forward(ids[:K], return_state=True)
                lg1 = m.forward(ids[K:], initial_state=st)
                check(f"prefill({K})+prefill(rest, initial_state) == prefill(all)",
                      _rel(np.concatenate([lg0, lg1]), ref))
            # conv orientation against torch's Conv1d (cross-correlation, padding W-1)
            try:
                import torch
                import torch.nn.functional as Fn

                L = m.layers[0]
                xBC = rng.standard_normal((T, m.conv_dim))
                u, _ = m.conv_prefill(xBC, L, None)
                tw = torch.from_numpy(L["conv_w"][:, None, :])
                tu = Fn.conv1d(torch.from_numpy(xBC.T[None]), tw, torch.from_numpy(L["conv_b"]),
                               padding=m.cfg.d_conv - 1, groups=m.conv_dim)[0, :, :T].T
                check("conv == torch conv1d(padding=W-1)[:T]", _rel(u, Fn.silu(tu).numpy()))
            except ImportError:
                print("  (torch not available: conv cross-check skipped)")
        # the same weights in both layouts give the same logits
        kw = dict(d_model=32, n_layer=2, d_state=8, head_dim=8, expand=2, d_conv=4, chunk_size=8,
                  n_groups=2, vocab=100, pad_multiple=16, seed=3, perturb_norms=True, dtype="f32")
        make_model.make(out_dir=os.path.join(td, "a"), layout="ss", **kw)
        make_model.make(out_dir=os.path.join(td, "b"), layout="hf", shards=3, **kw)
        ma, mb = load_model(os.path.join(td, "a")), load_model(os.path.join(td, "b"))
        ids = rng.integers(0, 100, 11)
        print("[layouts]")
        check("ss layout == hf sharded layout (same seed)", _rel(ma.forward(ids), mb.forward(ids)), 0.0)
        if ma.cfg.vocab_rows != 112 or mb.cfg.vocab_rows != 112:
            ok = False
            print("  FAIL vocab padding: 100 with multiple 16 should give 112 rows")
        else:
            print("  ok   vocab padding 100 -> 112")
    # softplus threshold and dt clamp
    cfg = Config(dt_limit=(0.0, math.inf))
    mm = Model.__new__(Model)
    mm.cfg = cfg
    v = np.array([-30.0, 0.0, 19.9, 20.0, 20.1, 50.0])
    got = mm.dt_act(v, {"dt_bias": 0.0})
    want = np.array([math.log1p(math.exp(t)) if t <= 20 else t for t in v])
    print("[softplus]")
    check("softplus threshold 20", _rel(got, want), 1e-15)
    print("selftest:", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--selftest", action="store_true", help="check chunked == recurrence, prefill+step == prefill")
    sub = ap.add_subparsers(dest="cmd")
    lg = sub.add_parser("logits", help="write reference logits [n_tokens, vocab_rows] as .npy")
    lg.add_argument("-m", "--model", required=True)
    lg.add_argument("--ids", required=True, help="comma-separated token ids")
    lg.add_argument("-o", "--out", required=True)
    lg.add_argument("--f64", action="store_true", help="write float64 (default float32)")
    lg.add_argument("--chunk-size", type=int, default=None, help="override the config's chunk_size")
    lg.add_argument("--recurrent", action="store_true", help="use the per-token recurrence instead of chunks")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if args.cmd != "logits":
        ap.print_help()
        return 2
    ids = [int(t) for t in args.ids.split(",") if t.strip() != ""]
    if not ids:
        print("error: --ids is empty", file=sys.stderr)
        return 2
    m = load_model(args.model)
    logits = m.forward(ids, chunk_size=args.chunk_size, recurrent=args.recurrent)
    np.save(args.out, logits.astype(np.float64 if args.f64 else np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
