#!/usr/bin/env python3
"""PyTorch + transformers baseline for the rollout engine's decoding:
`LlamaForCausalLM.from_pretrained` on an apr-rs checkpoint directory, then
`generate` (greedy, KV cache, exactly N new tokens: `min_new_tokens = N`)
on the same prompts `decode-bench --dump` wrote, at several batch sizes.

First checks that transformers computes the same model: the logits of the
first prompt's last position against apr-rs's (printed as max |diff|).

Prints one JSON line per batch size. Usage:
  generate_torch.py MODEL_DIR DUMP.json --batches 1,8,64,256 --new-tokens 128 [--threads 2]
"""
import argparse
import json
import sys
import time

import torch
from transformers import LlamaForCausalLM

PAD = 0  # <pad>; see apr_trace::tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dump")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.float32 if a.dtype == "f32" else torch.bfloat16
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=dtype).to(a.device).eval()
    d = json.load(open(a.dump))
    prompts = d["prompts"]
    with torch.no_grad():
        ids = torch.tensor([prompts[0]], device=a.device)
        ours = torch.tensor(d["check_logits"])
        theirs = model(ids).logits[0, -1].float().cpu()
        diff = (ours - theirs).abs().max().item()
        print(json.dumps({"check": "transformers logits vs apr-rs", "max_abs_diff": diff,
                          "argmax_equal": int(ours.argmax()) == int(theirs.argmax())}), flush=True)
    for b in [int(x) for x in a.batches.split(",")]:
        batch = [prompts[i % len(prompts)] for i in range(b)]
        n = max(len(p) for p in batch)
        # Left padding, as transformers wants for batched decoder-only generation.
        inp = torch.tensor([[PAD] * (n - len(p)) + p for p in batch], device=a.device)
        mask = torch.tensor([[0] * (n - len(p)) + [1] * len(p) for p in batch], device=a.device)
        with torch.no_grad():
            t0 = time.perf_counter()
            out = model.generate(input_ids=inp, attention_mask=mask, max_new_tokens=a.new_tokens,
                                 min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=PAD,
                                 use_cache=True)
            if a.device != "cpu":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        gen = (out.shape[1] - n) * b
        print(json.dumps({"impl": "transformers generate", "torch": torch.__version__,
                          "batch": b, "new_tokens": a.new_tokens, "generated_tokens": gen,
                          "seconds": dt, "tokens_per_s": gen / dt}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
