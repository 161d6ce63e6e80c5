#!/usr/bin/env python3
"""Reference stack for `perfcast-gpu freeze`: the same BERT-base-class classifier in PyTorch
eager (nn.TransformerEncoderLayer post-LN, GELU, learned positions, pooler + classifier),
AdamW (foreach, f32 master weights) and bf16 autocast or f32 (TF32 off), one un-frozen training
step timed between two synchronizations after warm-up, like the harness does. Random token ids
(the step time does not depend on them). Writes `<out>/h200-freeze-torch-ref.csv`:
`stack,dtype,batch,seq,frozen,iter_s_median,iter_s_p10,iter_s_p90,tflops_per_s`.

FLOPs are counted as the harness counts them (`BertCfg::train_flops`): 6 x block matmul
parameters x tokens + 12 x batch x seq^2 x hidden per block + the pooler and classifier.
"""
import os
import sys
import time

import torch
import torch.nn as nn


class Bert(nn.Module):
    def __init__(self, layers=12, hidden=768, heads=12, ffn=3072, vocab=30522, pos=512, classes=32):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(pos, hidden)
        self.typ = nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, heads, ffn, dropout=0.0, activation="gelu",
                                       layer_norm_eps=1e-12, batch_first=True, norm_first=False)
            for _ in range(layers))
        self.pool = nn.Linear(hidden, hidden)
        self.cls = nn.Linear(hidden, classes)

    def forward(self, ids):
        s = ids.shape[1]
        p = torch.arange(s, device=ids.device)
        x = self.ln(self.word(ids) + self.pos(p)[None] + self.typ.weight[0])
        for b in self.blocks:
            x = b(x)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


def flops(b, s, layers=12, h=768, f=3072, c=32):
    p_block = h * 3 * h + h * h + 2 * h * f
    return layers * (6 * p_block * b * s + 12 * b * s * s * h) + 6 * b * (h * h + h * c)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for dtype in ["bf16", "f32"]:
        for b, s in [(32, 128), (16, 128), (32, 256)]:
            torch.manual_seed(1)
            m = Bert().to(dev)
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01, foreach=True)
            ids = torch.randint(2, 30522, (b, s), device=dev)
            y = torch.randint(0, 32, (b,), device=dev)
            lossf = nn.CrossEntropyLoss()

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(dtype == "bf16")):
                    lg = m(ids)
                loss = lossf(lg.float(), y)
                loss.backward()
                opt.step()
                return loss.item()

            ts = []
            for r in range(5 + 15):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                step()
                torch.cuda.synchronize()
                if r >= 5:
                    ts.append(time.perf_counter() - t0)
            ts.sort()
            med = ts[len(ts) // 2]
            tf = flops(b, s) / med / 1e12
            rows.append(f"torch-eager,{dtype},{b},{s},0,{med:.6e},{ts[1]:.6e},{ts[-2]:.6e},{tf:.2f}")
            print(f"torch reference {dtype} batch {b} seq {s}: {med * 1e3:.2f} ms/iteration, {tf:.1f} TFLOP/s", flush=True)
            del m, opt
            torch.cuda.empty_cache()
    path = os.path.join(out, "h200-freeze-torch-ref.csv")
    with open(path, "w") as fh:
        fh.write(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}\n")
        fh.write("stack,dtype,batch,seq,frozen,iter_s_median,iter_s_p10,iter_s_p90,tflops_per_s\n")
        fh.write("\n".join(rows) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
