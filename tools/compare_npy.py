#!/usr/bin/python3
"""compare_npy.py A.npy B.npy [--tol 1e-5]

Prints the relative L2 error ||A-B|| / ||B|| (B is the reference) and the max abs diff;
exits 1 if the shapes differ, anything is non-finite, or the relative error exceeds --tol.
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="array under test")
    ap.add_argument("b", help="reference array")
    ap.add_argument("--tol", type=float, default=1e-5, help="max relative L2 error")
    args = ap.parse_args(argv)
    a = np.load(args.a).astype(np.float64)
    b = np.load(args.b).astype(np.float64)
    if a.shape != b.shape:
        print(f"FAIL shape mismatch: {args.a} {a.shape} vs {args.b} {b.shape}")
        return 1
    if not np.all(np.isfinite(a)):
        print(f"FAIL {args.a}: {int(np.size(a) - np.isfinite(a).sum())} non-finite values")
        return 1
    nb = np.linalg.norm(b)
    rel = np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a - b)
    mad = float(np.max(np.abs(a - b))) if a.size else 0.0
    ok = rel <= args.tol
    print(f"{'ok' if ok else 'FAIL'} rel_l2={rel:.3e} max_abs={mad:.3e} tol={args.tol:.1e} shape={a.shape}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
