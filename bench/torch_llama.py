#!/usr/bin/env python3
"""PyTorch side of `node dist/bench/hf-135m.js`: a straightforward Llama of SmolLM2-135M's shape, random weights.

Prints one JSON object on stdout. Exits 0 with {"available": false, "reason": ...} when torch is missing.

  /usr/bin/python3 bench/torch_llama.py --case forward --batch 1 --seq 256
  cases: forward          logits of B×T tokens, no grad
         boft_dense       one training step, BOFT b=8 m=2 on q_proj+v_proj as PEFT computes it (dense butterfly:
                          block_diag, permutation matrices, Rot = M_{m-1}⋯M_0, x @ Rot; spec §2, bench/torch_baseline.py)
         boft_structured  the same adapter, structured (permute, rotate b-blocks, un-permute; no n×n matrix)
         lora             LoRA r=8, alpha 8 on q_proj+v_proj (PEFT's defaults: A kaiming-uniform, B zeros)
         full             full finetuning (every weight, the tied embedding included)
         generate         greedy decoding with a KV cache: a T-token prompt, then 32 new tokens, batch 1
  --steps N (timed units after one warm-up; default 3), --torch-threads N (intra-op; default 1).

PEFT itself is not installable here (no PyPI); the BOFT forward is re-implemented from PEFT's source (the spec in
../shared/spec and bench/torch_baseline.py --selfcheck check it against PEFT's own outputs). A training step is what
boft's is: forward, mean cross-entropy, backward, global-norm clip to 1, AdamW. Default threading is this machine's
fastest: torch intra-op 1 thread, OpenBLAS its own pool (all cores).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # ImportError, or a broken install (missing libblas.so.3, ...)
    print(json.dumps({"available": False, "reason": f"{type(e).__name__}: {e}", "python": sys.executable}))
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baseline import boft_perms, perm_matrices, boft_forward_dense, boft_forward_structured, blas_info  # noqa: E402

# SmolLM2-135M's config.json
V, D, FF, L, H, HKV, HD, EPS, THETA = 49152, 576, 1536, 30, 9, 3, 64, 1e-5, 100000.0


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rope(T, start):
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float32) / HD))
    ang = torch.arange(start, start + T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    return emb.cos()[None, None], emb.sin()[None, None]


def rotate_half(x):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return torch.cat([-x2, x1], -1)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(D, H * HD, bias=False)
        self.k_proj = nn.Linear(D, HKV * HD, bias=False)
        self.v_proj = nn.Linear(D, HKV * HD, bias=False)
        self.o_proj = nn.Linear(H * HD, D, bias=False)

    def forward(self, x, cos, sin, cache, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, H, HD).transpose(1, 2)
        k = self.k_proj(x).view(B, T, HKV, HD).transpose(1, 2)
        v = self.v_proj(x).view(B, T, HKV, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        # transformers' eager attention: repeat_kv, then scores, softmax, weighted sum
        k = k.repeat_interleave(H // HKV, 1)
        v = v.repeat_interleave(H // HKV, 1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(HD)
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(B, T, H * HD))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm(D)
        self.self_attn = Attention()
        self.post_attention_layernorm = RMSNorm(D)
        self.gate_proj = nn.Linear(D, FF, bias=False)
        self.up_proj = nn.Linear(D, FF, bias=False)
        self.down_proj = nn.Linear(FF, D, bias=False)

    def forward(self, x, cos, sin, cache, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, mask)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, D)
        self.layers = nn.ModuleList([Layer() for _ in range(L)])
        self.norm = RMSNorm(D)

    def forward(self, ids, caches=None, start=0):
        T = ids.shape[1]
        S = start + T
        cos, sin = rope(T, start)
        mask = None
        if T > 1:
            mask = torch.full((T, S), float("-inf")).triu(start + 1)[None, None]
        h = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, caches[i] if caches is not None else None, mask)
        return F.linear(self.norm(h), self.embed_tokens.weight)  # tied lm_head


class BoftLinear(nn.Module):
    """PEFT's BOFT Linear (unmerged forward), dense as PEFT computes it or structured."""

    def __init__(self, base, b, m, dense):
        super().__init__()
        n = base.in_features
        self.base, self.dense = base, dense
        self.boft_R = nn.Parameter(torch.zeros(m, n // b, b, b))  # PEFT's init: zeros, so Rot = I
        self.boft_s = nn.Parameter(torch.ones(base.out_features, 1))
        self.perms = boft_perms(n, n // b, b, m)
        self.register_buffer("P", perm_matrices(self.perms, torch.float32))

    def forward(self, x):
        if self.dense:
            return boft_forward_dense(x, self.base.weight, None, self.boft_R, self.boft_s, self.P)
        return boft_forward_structured(x, self.base.weight, None, self.boft_R, self.boft_s, self.perms)


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def build(gen):
    model = Llama()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("layernorm.weight") and name != "norm.weight":
                p.normal_(0, 0.02, generator=gen)
    return model


def adapt(model, kind):
    """Freezes the base and wraps q_proj and v_proj (PEFT's default llama targets); full trains everything."""
    if kind == "full":
        return list(model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.layers:
        a = layer.self_attn
        for name in ("q_proj", "v_proj"):
            base = getattr(a, name)
            if kind == "lora":
                wrapped = LoraLinear(base, 8, 8)
            else:
                wrapped = BoftLinear(base, 8, 2, dense=(kind == "boft_dense"))
            setattr(a, name, wrapped)
    return [p for n, p in model.named_parameters() if "lora_" in n or "boft_" in n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=["forward", "boft_dense", "boft_structured", "lora", "full", "generate"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--torch-threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.torch_threads)
    blas = blas_info()
    gen = torch.Generator().manual_seed(0)
    model = build(gen)
    B, T = a.batch, a.seq
    times = []
    cpus = []  # process CPU seconds (all threads) per timed unit: steadier than wall time on a busy machine
    detail = {}
    if a.case == "forward":
        model.eval()
        with torch.no_grad():
            for _ in range(a.steps + 1):
                ids = torch.randint(0, V, (B, T), generator=gen)
                t0, c0 = time.perf_counter(), time.process_time()
                model(ids).sum().item()
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        tokens = B * T
    elif a.case == "generate":
        model.eval()
        prompt = torch.randint(0, V, (1, T), generator=gen)
        with torch.no_grad():
            for _ in range(2):  # warm-up, then the timed run
                caches = [[None, None] for _ in range(L)]
                t0, c0 = time.perf_counter(), time.process_time()
                logits = model(prompt, caches, 0)[:, -1]
                out = []
                for i in range(a.new_tokens):
                    tok = int(logits.argmax(-1))
                    out.append(tok)
                    if i + 1 == a.new_tokens:
                        break
                    logits = model(torch.tensor([[tok]]), caches, T + i)[:, -1]
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        tokens = a.new_tokens
        detail["new_tokens"] = a.new_tokens
    else:
        trainable = adapt(model, a.case)
        model.train()
        opt = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.0)
        detail["trainable"] = sum(p.numel() for p in trainable)
        losses = []
        for _ in range(a.steps + 1):
            x = torch.randint(0, V, (B, T + 1), generator=gen)
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            logits = model(x[:, :T])
            loss = F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            losses.append(round(loss.item(), 4))
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        detail["losses"] = losses
        tokens = B * T
    timed = times[1:]
    seconds = statistics.median(timed)
    print(json.dumps({
        "available": True, "case": a.case, "batch": B, "seq": T, "seconds": seconds, "times": timed, "first": times[0],
        "cpu_seconds": statistics.median(cpus[1:]),
        "tokens_per_second": tokens / seconds, "torch_version": torch.__version__, "blas": blas["name"],
        "threads": {"torch_intra_op": torch.get_num_threads(), "openblas": blas.get("openblas_threads")},
        "peak_rss_mib": round(__import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024),
        **detail,
    }))


if __name__ == "__main__":
    main()
