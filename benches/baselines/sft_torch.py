#!/usr/bin/env python3
"""PyTorch baseline for `train-sft`: the same Llama architecture (RMSNorm,
rotate-half rotary embeddings, grouped-query attention, SwiGLU, tied or
untied embeddings), the same token batches (dumped by
`train-sft --dump-batches`), the same loss (mean next-token NLL over real
targets), AdamW with the same hyperparameters and global grad-norm clipping.

Prints one JSON line: target tokens per second over the timed steps.
Usage: sft_torch.py BATCHES.json [--threads N] [--skip K] [--device cpu|cuda] [--dtype f32|bf16]
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, hd = c["hidden_size"], c["hidden_size"] // c["num_heads"]
        self.nh, self.nkv, self.hd = c["num_heads"], c["num_kv_heads"], hd
        self.q = torch.nn.Linear(h, self.nh * hd, bias=False)
        self.k = torch.nn.Linear(h, self.nkv * hd, bias=False)
        self.v = torch.nn.Linear(h, self.nkv * hd, bias=False)
        self.o = torch.nn.Linear(self.nh * hd, h, bias=False)
        self.gate = torch.nn.Linear(h, c["intermediate_size"], bias=False)
        self.up = torch.nn.Linear(h, c["intermediate_size"], bias=False)
        self.down = torch.nn.Linear(c["intermediate_size"], h, bias=False)
        self.n1 = torch.nn.RMSNorm(h, eps=c["rms_norm_eps"])
        self.n2 = torch.nn.RMSNorm(h, eps=c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        y = self.n1(x)
        q = self.q(y).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k(y).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = self.v(y).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.nkv != self.nh)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        y = self.n2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


def rope(x, cos, sin):
    d = x.shape[-1] // 2
    rot = torch.cat((-x[..., d:], x[..., :d]), dim=-1)
    return x * cos + rot * sin


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = torch.nn.ModuleList([Block(c) for _ in range(c["num_layers"])])
        self.norm = torch.nn.RMSNorm(c["hidden_size"], eps=c["rms_norm_eps"])
        self.head = None if c["tie_embeddings"] else torch.nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        b, t = ids.shape
        hd = self.c["hidden_size"] // self.c["num_heads"]
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, hd, 2, device=ids.device).float() / hd))
        f = torch.outer(torch.arange(t, device=ids.device).float(), inv)
        e = torch.cat((f, f), dim=-1)
        cos, sin = e.cos()[None, None], e.sin()[None, None]
        x = self.embed(ids)
        for l in self.layers:
            x = l(x, cos, sin)
        x = self.norm(x)
        w = self.embed.weight if self.head is None else self.head.weight
        return x @ w.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batches")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip", type=int, default=2, help="untimed warm-up steps")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    d = json.load(open(a.batches))
    torch.manual_seed(0)
    model = Llama(d["model"]).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=d["lr"], betas=(d["beta1"], d["beta2"]),
                            eps=d["eps"], weight_decay=d["weight_decay"])
    timed_tokens, t0, losses = 0, None, []
    for i, batch in enumerate(d["batches"]):
        if i == a.skip:
            if a.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        L = max(len(s) for s in batch) - 1
        inp = torch.zeros(len(batch), L, dtype=torch.long)
        tgt = torch.full((len(batch), L), -100, dtype=torch.long)
        for r, s in enumerate(batch):
            inp[r, : len(s) - 1] = torch.tensor(s[:-1])
            tgt[r, : len(s) - 1] = torch.tensor(s[1:])
        inp, tgt = inp.to(a.device), tgt.to(a.device)
        with torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            logits = model(inp)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if d["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), d["grad_clip"])
        opt.step()
        losses.append(loss.item())
        if i >= a.skip:
            timed_tokens += int((tgt != -100).sum())
    if a.device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": a.device, "dtype": a.dtype, "timed_steps": len(d["batches"]) - a.skip,
                      "target_tokens": timed_tokens, "seconds": dt, "tokens_per_s": timed_tokens / dt,
                      "first_loss": losses[0], "last_loss": losses[-1]}))


if __name__ == "__main__":
    sys.exit(main())
