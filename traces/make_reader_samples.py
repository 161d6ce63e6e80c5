#!/usr/bin/env python3
"""Writes the two synthetic reader samples of traces/README.md (Python 3 standard library only;
seeded, so the bytes are the same on every run):

- traces/libcachesim-like.csv: 2 000 block-I/O requests in the column layout of libCacheSim's
  sample data/trace.csv (header `version,time,op,size,lbn`; read by libCacheSim with
  -t "time-col=2, obj-id-col=5, obj-size-col=4, obj-id-is-num=true, has-header=true").
- traces/ml-100k-like/u.data: 1 000 ratings in MovieLens 100K's u.data layout (tab-separated
  user id, item id, rating, timestamp; no header; not in time order, some equal timestamps).

Run from the repository root: python3 traces/make_reader_samples.py
"""
import random

rng = random.Random(20261129)


def zipf_weights(n, s):
    return [1.0 / (i ** s) for i in range(1, n + 1)]


# libCacheSim-style block trace: 300 blocks, Zipf(0.9) popularity, sizes 512 B .. 64 KiB.
blocks = [rng.randrange(1_000_000, 50_000_000) for _ in range(300)]
w = zipf_weights(len(blocks), 0.9)
t = 33898
with open("traces/libcachesim-like.csv", "w") as f:
    f.write("version,time,op,size,lbn\n")
    for _ in range(2000):
        t += rng.choice([0, 0, 0, 1, 1, 2])
        lbn = rng.choices(blocks, weights=w)[0]
        size = 512 * rng.choice([1, 2, 4, 8, 8, 8, 32, 128])
        f.write(f"1,{t},2a,{size},{lbn}\n")

# MovieLens-100K-style ratings: 100 users (Zipf 0.8), 300 items (Zipf 1.0), ids from 1.
uw = zipf_weights(100, 0.8)
iw = zipf_weights(300, 1.0)
with open("traces/ml-100k-like/u.data", "w") as f:
    for _ in range(1000):
        u = rng.choices(range(1, 101), weights=uw)[0]
        i = rng.choices(range(1, 301), weights=iw)[0]
        r = rng.randint(1, 5)
        ts = 874724710 + rng.randrange(0, 500) * 60
        f.write(f"{u}\t{i}\t{r}\t{ts}\n")
