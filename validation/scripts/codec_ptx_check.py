"""Checks the gradcomp codec kernels (validation/src/gradcomp/codec/codec.ptx) on a CUDA GPU
against numpy references, without the Rust CUDA build: loads the PTX with the driver API through
ctypes and launches each kernel on PyTorch-allocated buffers. Run on the H200 host:
    /opt/torch/.venv/bin/python validation/scripts/codec_ptx_check.py
Prints one PASS/FAIL line per case; exit 1 on any failure."""
import ctypes
import sys

import numpy as np
import torch

PTX = "validation/src/gradcomp/codec/codec.ptx"
torch.zeros(1, device="cuda")  # primary context, current on this thread
cu = ctypes.CDLL("libcuda.so.1")
mod = ctypes.c_void_p()
ptx = open(PTX, "rb").read() + b"\0"
assert cu.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(ptx)) == 0, "cuModuleLoadData"


def fn(name):
    f = ctypes.c_void_p()
    assert cu.cuModuleGetFunction(ctypes.byref(f), mod, name.encode()) == 0, name
    return f


def launch(f, grid, block, *vals):
    holders = []
    for v in vals:
        if isinstance(v, torch.Tensor):
            holders.append(ctypes.c_uint64(v.data_ptr()))
        else:
            holders.append(v)
    params = (ctypes.c_void_p * len(holders))(
        *[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders]
    )
    rc = cu.cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, None, params, None)
    assert rc == 0, f"launch rc {rc}"
    torch.cuda.synchronize()


M64 = (1 << 64) - 1


def mix64(z):
    z = z.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


failed = 0


def report(name, ok, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail else ""))
    failed += 0 if ok else 1


# 1. uniform: bit-identical to the hash reference.
uni = fn("codec_uniform_f32")
for n, key in [(1, 7), (1_000_007, 0x1234_5678_9ABC_DEF0), (6_500_000, 42)]:
    out = torch.empty(n, dtype=torch.float32, device="cuda")
    launch(uni, (n + 1023) // 1024, 1024, out, ctypes.c_uint64(key), ctypes.c_uint32(n))
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15))
    want = (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    got = out.cpu().numpy()
    report(f"uniform n={n}", np.array_equal(got, want), f"mean {got.mean():.4f}")

# 2. scatter-add: exact for distinct indices, close with collisions.
sca = fn("codec_scatter_add_f32")
rng = np.random.default_rng(1)
for n, m, distinct in [(10_000_000, 65_000, True), (1 << 20, 8 * 10_486, False)]:
    if distinct:
        idx = rng.choice(n, m, replace=False).astype(np.uint32)
    else:
        idx = rng.integers(0, n, m).astype(np.uint32)
    val = rng.standard_normal(m).astype(np.float32)
    out = torch.zeros(n, dtype=torch.float32, device="cuda")
    ti = torch.from_numpy(idx.astype(np.int64)).cuda().to(torch.int32)
    tv = torch.from_numpy(val).cuda()
    launch(sca, (m + 1023) // 1024, 1024, ti, tv, out, ctypes.c_uint32(m))
    want = np.zeros(n, np.float64)
    np.add.at(want, idx, val.astype(np.float64))
    got = out.cpu().numpy()
    if distinct:
        ok = np.array_equal(got, want.astype(np.float32))
    else:
        ok = np.allclose(got, want, rtol=1e-6, atol=1e-6)
    report(f"scatter-add n={n} m={m} distinct={distinct}", ok)

# 3. stable selection: count, scan, compact against the numpy reference.
cnt, scan, comp = fn("codec_sel_count"), fn("codec_sel_scan"), fn("codec_sel_compact")
for n, p1, p2 in [(5, 0.4, 0.4), (1024, 0.01, 0.3), (100_000, 0.001, 0.002),
                  ((1 << 22) + 12_345, 0.01, 0.05), (23_440_896, 0.001, 0.0005),
                  (3 * 1024 * 1024 + 1, 0.0, 1.0)]:
    r = rng.random(n)
    flags = np.where(r < p1, 1, np.where(r < p1 + p2, 2, 0)).astype(np.uint8)
    ones = int((flags == 1).sum())
    ties = int((flags == 2).sum())
    need = ties // 3
    k = ones + need
    tie_rank = np.cumsum(flags == 2) - (flags == 2)
    want = np.nonzero((flags == 1) | ((flags == 2) & (tie_rank < need)))[0].astype(np.uint32)
    nb = (n + 1023) // 1024
    tf = torch.from_numpy(flags).cuda()
    cs = torch.zeros(nb, dtype=torch.int32, device="cuda")
    ct = torch.zeros(nb, dtype=torch.int32, device="cuda")
    out = torch.full((max(k, 1),), -1, dtype=torch.int32, device="cuda")
    launch(cnt, nb, 1024, tf, ctypes.c_uint32(n), cs, ct)
    launch(scan, 1, 1024, cs, ct, ctypes.c_uint32(nb))
    launch(comp, nb, 1024, tf, ctypes.c_uint32(n), cs, ct, ctypes.c_uint32(need), out)
    got = out.cpu().numpy().view(np.uint32)[:k]
    report(f"select n={n} k={k} need={need}/{ties}", np.array_equal(got, want))

# Timings of the selection at BERT's largest bucket (compaction only; informative).
n = 6_500_000
flags = torch.from_numpy((rng.random(n) < 0.01).astype(np.uint8)).cuda()
nb = (n + 1023) // 1024
cs = torch.zeros(nb, dtype=torch.int32, device="cuda")
ct = torch.zeros(nb, dtype=torch.int32, device="cuda")
k = int(flags.sum())
out = torch.empty(k, dtype=torch.int32, device="cuda")
for _ in range(3):
    launch(cnt, nb, 1024, flags, ctypes.c_uint32(n), cs, ct)
ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
ev0.record()
for _ in range(20):
    launch(cnt, nb, 1024, flags, ctypes.c_uint32(n), cs, ct)
    launch(scan, 1, 1024, cs, ct, ctypes.c_uint32(nb))
    launch(comp, nb, 1024, flags, ctypes.c_uint32(n), cs, ct, ctypes.c_uint32(0), out)
ev1.record()
torch.cuda.synchronize()
print(f"select n={n} k={k}: {ev0.elapsed_time(ev1) / 20 * 1e3:.1f} us per call (incl. host syncs)")
print(f"{failed} failed")
sys.exit(1 if failed else 0)
