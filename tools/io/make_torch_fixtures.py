#!/usr/bin/python3
"""Writes the small PyTorch checkpoints that tests/io reads (tests/data/io/).

Run with the Debian python that has torch:  /usr/bin/python3 tools/io/make_torch_fixtures.py
The files are committed; the C++ tests never need Python.

Every *.bin is accompanied by expected values in <name>.expected.safetensors (each tensor
made contiguous, same dtype), written here by a few lines of struct/json so that the C++
side can compare against something it did not compute. The values follow simple formulas
(documented in tests/io/torch_zip_test.cpp) so the tests can also recompute some directly.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "io")

ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.float64: "F64", torch.int32: "I32", torch.int64: "I64"}


def write_safetensors(path, tensors):
    """Minimal safetensors writer: header padded with spaces to a multiple of 8."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dim() > 0 else t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def expected_for(sd):
    return collections.OrderedDict((k, v.detach().contiguous().clone()) for k, v in sd.items())


def save(name, sd, **kw):
    path = os.path.join(OUT, name)
    torch.save(sd, path, **kw)
    write_safetensors(os.path.join(OUT, name.replace(".bin", ".expected.safetensors")), expected_for(sd))
    return path


def write_zip(path, entries, zip64=False, align=64, shift=0):
    """Own zip writer (STORED only). With zip64, every central-directory size/offset field is
    saturated and the real values sit in the zip64 extra field, and the end records are zip64,
    as torch writes them for files over 4 GB."""
    out = bytearray()
    central = []
    for name, data in entries:
        nb = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        # Pad the local extra field so the data starts aligned, like torch's "FB" field, and
        # differently from the central directory's extra field.
        base = offset + 30 + len(nb) + 4
        pad = (-base) % align + shift
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, 0, 0, 0, crc,
                           len(data), len(data), len(nb), len(extra)) + nb + extra + data
        central.append((nb, crc, len(data), offset))
    cd_start = len(out)
    for nb, crc, size, offset in central:
        if zip64:
            extra = struct.pack("<HHQQQ", 0x0001, 24, size, size, offset)
            fsize, foff = 0xFFFFFFFF, 0xFFFFFFFF
        else:
            extra, fsize, foff = b"", size, offset
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if zip64 else 20, 45 if zip64 else 20, 0, 0, 0, 0,
                           crc, fsize, fsize, len(nb), len(extra), 0, 0, 0, 0, foff) + nb + extra
    cd_size = len(out) - cd_start
    n = len(central)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0)
    with open(path, "wb") as f:
        f.write(out)


def entries_of(path, rename_root=None):
    with zipfile.ZipFile(path) as z:
        out = []
        for info in z.infolist():
            name = info.filename
            if rename_root:
                name = rename_root + name[name.index("/"):]
            out.append((name, z.read(info.filename)))
        return out


def basic_state_dict():
    sd = collections.OrderedDict()
    # f32: value i*0.25 - 1 at flat index i.
    sd["f32"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 1.0
    sd["f16"] = (torch.arange(4, dtype=torch.float32) * 0.5 + 1.0).to(torch.float16)
    sd["bf16"] = (torch.arange(4, dtype=torch.float32).reshape(2, 2) - 2.0).to(torch.bfloat16)
    sd["f64"] = torch.tensor([1.0 / 3.0, -2.5], dtype=torch.float64)
    sd["i32"] = torch.tensor([[1, -2], [3, 2**31 - 1]], dtype=torch.int32)
    sd["i64"] = torch.tensor([-(2**40), 7], dtype=torch.int64)
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    # Tied pair: the same storage under two names, as embedding/lm_head.
    emb = torch.arange(15, dtype=torch.float32).reshape(5, 3) / 8.0
    sd["emb.weight"] = emb
    sd["lm_head.weight"] = emb
    # m[r, c] = 10*r + c, a [3, 4] storage seen three ways.
    m = (torch.arange(3).reshape(3, 1) * 10 + torch.arange(4).reshape(1, 4)).to(torch.float32)
    sd["transposed"] = m.t()               # [4, 3], strides (1, 4)
    sd["row_slice"] = m[1:3]               # contiguous, storage offset 4
    sd["col_slice"] = m[:, 2]              # [3], stride 4, offset 2
    # A slice of a larger 1-D storage: value i + 100 for i in [5, 11), viewed [2, 3].
    big = torch.arange(16, dtype=torch.float32) + 100.0
    sd["slice"] = big[5:11].view(2, 3)
    # A 3-D permuted fp16 tensor: storage p[a, b, c] = a*100 + b*10 + c, shape [2,3,4] -> [4,2,3].
    p = (torch.arange(2).reshape(2, 1, 1) * 100 + torch.arange(3).reshape(1, 3, 1) * 10 +
         torch.arange(4).reshape(1, 1, 4)).to(torch.float16)
    sd["permuted"] = p.permute(2, 0, 1)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("emb", {"version": 1})])
    return sd


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(7, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.lm_head = torch.nn.Linear(4, 7, bias=False)
        self.lm_head.weight = self.embedding.weight


def torch2_style_pickle(sd):
    """data.pkl as newer torch writes for tensors with Python state, and a v3 rebuild: built with
    the stdlib pickler, so the opcodes are Python's own."""
    storages = collections.OrderedDict()

    class Storage:
        def __init__(self, key):
            self.key = key

    class Rebuild:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

        def __reduce__(self):
            return (self.fn, self.args)

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                t = storages[obj.key]
                if obj.key == "1":
                    return ("storage", torch.storage.UntypedStorage, obj.key, "cpu", t.numel() * t.element_size())
                return ("storage", torch.FloatStorage, obj.key, "cpu", t.numel())
            return None

    # torch 1.13 predates _rebuild_tensor_v3; the pickler only needs a function it can find
    # under that name to write the GLOBAL.
    if not hasattr(torch._utils, "_rebuild_tensor_v3"):
        def _rebuild_tensor_v3(*args):
            raise NotImplementedError
        _rebuild_tensor_v3.__module__ = "torch._utils"
        _rebuild_tensor_v3.__qualname__ = "_rebuild_tensor_v3"
        torch._utils._rebuild_tensor_v3 = _rebuild_tensor_v3
        created_stub = True
    else:
        created_stub = False

    out = collections.OrderedDict()
    for i, (name, t) in enumerate(sd.items()):
        key = str(i)
        storages[key] = t.contiguous()
        v2 = Rebuild(torch._utils._rebuild_tensor_v2,
                     (Storage(key), 0, tuple(t.shape), tuple(t.stride()), False, collections.OrderedDict()))
        if key == "1":
            out[name] = Rebuild(torch._utils._rebuild_tensor_v3,
                                (Storage(key), 0, tuple(t.shape), tuple(t.stride()), False,
                                 collections.OrderedDict(), t.dtype))
        else:
            out[name] = Rebuild(torch._tensor._rebuild_from_type_v2,
                                (torch._utils._rebuild_tensor_v2, torch.Tensor, v2.args, {"note": "x"}))
    buf = io.BytesIO()
    P(buf, protocol=2).dump(out)
    if created_stub:
        del torch._utils._rebuild_tensor_v3
    return buf.getvalue(), storages


def main():
    os.makedirs(OUT, exist_ok=True)
    basic = save("basic.bin", basic_state_dict())
    save("proto4.bin", basic_state_dict(), pickle_protocol=4)

    torch.manual_seed(0)
    lm = TinyLM().half()
    save("module_fp16.bin", lm.state_dict())

    params = collections.OrderedDict()
    params["plain"] = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    stateful = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    stateful.note = "kept by _rebuild_parameter_with_state"
    params["stateful"] = stateful
    save("parameters.bin", params)

    # Same content as basic.bin in zip64 form, root folder renamed and a little-endian marker.
    entries = entries_of(basic, rename_root="archive") + [("archive/byteorder", b"little")]
    write_zip(os.path.join(OUT, "zip64.bin"), entries, zip64=True)
    # Data starting 1 byte past an 8-byte boundary: every tensor then has to be copied.
    write_zip(os.path.join(OUT, "unaligned.bin"), entries_of(basic), align=8, shift=1)
    # Refused variants.
    write_zip(os.path.join(OUT, "bigendian.bin"),
              entries_of(basic, rename_root="archive") + [("archive/byteorder", b"big")])
    with zipfile.ZipFile(os.path.join(OUT, "deflated.bin"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries_of(basic):
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)

    # Newer-torch pickle forms (_rebuild_from_type_v2, _rebuild_tensor_v3 + UntypedStorage).
    t2 = collections.OrderedDict([("a", torch.tensor([1.5, -2.0])), ("b", torch.tensor([[0.25], [4.0]]))])
    pkl, storages = torch2_style_pickle(t2)
    raw = [("archive/data.pkl", pkl)] + [("archive/data/" + k, v.numpy().tobytes()) for k, v in storages.items()]
    write_zip(os.path.join(OUT, "torch2_style.bin"), raw + [("archive/version", b"3\n"), ("archive/byteorder", b"little")])
    write_safetensors(os.path.join(OUT, "torch2_style.expected.safetensors"), t2)

    # Self-checks: torch itself reads our zips back to the same values.
    ref = basic_state_dict()
    for name in ["zip64.bin", "unaligned.bin"]:
        got = torch.load(os.path.join(OUT, name))
        assert list(got) == list(ref) and all(torch.equal(got[k], ref[k]) for k in ref), name
    if hasattr(torch._utils, "_rebuild_tensor_v3"):
        got = torch.load(os.path.join(OUT, "torch2_style.bin"))
        assert all(torch.equal(got[k], t2[k]) for k in t2)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)} (torch {torch.__version__})")


if __name__ == "__main__":
    sys.exit(main())
