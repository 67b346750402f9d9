"""The lab's GPT update in PyTorch: the reference `gmt-lab bench --torch` times the engines against.

The same model as kernel-lib's GPT (pre-LayerNorm blocks, linear layers without biases, GELU in
its tanh form, causal attention, an untied head), the same completion-weighted cross-entropy and
AdamW, on random tokens. Prints one JSON line: {"threads": N, "medianMs": ..., "torch": version}.

    python3 torch_reference.py --threads 1 --vocab 64 --d 128 --layers 4 --heads 4 --context 64 --batch 16
"""
import argparse
import json
import math
import time

import torch

p = argparse.ArgumentParser()
for name, default in [("threads", 1), ("vocab", 64), ("d", 128), ("layers", 4), ("heads", 4), ("context", 64), ("batch", 16), ("steps", 12), ("warmup", 3), ("seed", 0)]:
    p.add_argument(f"--{name}", type=int, default=default)
a = p.parse_args()
torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)
V, D, L, H, T, B = a.vocab, a.d, a.layers, a.heads, a.context, a.batch
F, DH = 4 * D, D // H


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.qkv, self.o = torch.nn.Linear(D, 3 * D, bias=False), torch.nn.Linear(D, D, bias=False)
        self.w1, self.w2 = torch.nn.Linear(D, F, bias=False), torch.nn.Linear(F, D, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(D, -1)
        heads = lambda t: t.view(B, T, H, DH).transpose(1, 2)
        s = (heads(q) @ heads(k).transpose(-1, -2)) / math.sqrt(DH)
        y = (s.masked_fill(self.mask, float("-inf")).softmax(-1) @ heads(v)).transpose(1, 2).reshape(B, T, D)
        x = x + self.o(y)
        return x + self.w2(torch.nn.functional.gelu(self.w1(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(V, D), torch.nn.Parameter(torch.zeros(T, D))
        self.blocks = torch.nn.ModuleList([Block() for _ in range(L)])
        self.lnf, self.head = torch.nn.LayerNorm(D), torch.nn.Linear(D, V, bias=False)

    def forward(self, x):
        h = self.wte(x) + self.wpe
        for b in self.blocks:
            h = b(h)
        return self.head(self.lnf(h))


m = GPT()
opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)
x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
w = (torch.arange(B * T) % 3 != 0).float()
times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    nll = torch.nn.functional.cross_entropy(m(x).view(-1, V), y.view(-1), reduction="none")
    loss = (nll * w).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if i >= a.warmup:
        times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(json.dumps({"threads": a.threads, "medianMs": times[len(times) // 2], "torch": torch.__version__}))
