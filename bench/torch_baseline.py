#!/usr/bin/env python3
"""PyTorch baseline for `npm run bench`: PEFT's BOFT/OFT methods re-implemented as PEFT computes them.

Prints one JSON object on stdout. Exits 0 with {"available": false, "reason": ...} when torch is missing.

  /usr/bin/python3 bench/torch_baseline.py                  # all timings (about 1-2 min on 2 cores)
  /usr/bin/python3 bench/torch_baseline.py --quick          # skip shape C's dense BOFT (the slow one)
  /usr/bin/python3 bench/torch_baseline.py --selfcheck      # check the re-implementation against test/fixtures/peft
  /usr/bin/python3 bench/torch_baseline.py --torch-threads 2

Debian's python3-torch lives in /usr/lib/python3/dist-packages, so use /usr/bin/python3 (a pyenv python3 earlier
on PATH does not see it). Install with bench/setup-torch.sh. Default threading: torch intra-op 1 thread, OpenBLAS
with its own pool (OPENBLAS_NUM_THREADS, default all cores); 2 intra-op threads on top of OpenBLAS's 2 oversubscribe a
2-core box.

What is timed (float32, medians after warm-up, CPU):
  linear_ms       nn.Linear forward+backward, W frozen, grad for x only
  peft_dense_ms   BOFT as PEFT computes it (spec §2): exact Cayley (solve, left=False) per block; per factor a dense
                  block-diagonal via torch.block_diag; dense permutation matrices P_i from block_butterfly_perm;
                  M_i = P_i·BD_i·P_iᵀ via two bmm; Rot = M_{N-1}⋯M_0; x@Rot; base linear; ⊙s.
                  forward+backward, grads for boft_R, boft_s and x.
  oft_*.peft_ms   OFT as PEFT's OFTRotationModule computes it (spec §3): packed triu → skew, Cayley by Neumann
                  (I+2A+2A²+…+A^{K-1}) or exact solve, x reshaped to (…, r, b) and rotated with einsum, then base
                  linear; grads for oft_R.weight and x.
  merge_4096_ms   W' = diag(s)·W·Rotᵀ for a 4096×4096 W with Rot given (PEFT merge); merge_4096_with_rot_ms also
                  builds Rot with the dense method (shape C factors, no grad).
  matmul_gflops   dense 512×1024 @ 1024×1024; matmul_nt_gflops: the same with the right operand stored transposed.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures", "peft")

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # ImportError, or a broken install (missing libblas.so.3, ...)
    print(json.dumps({"available": False, "reason": f"{type(e).__name__}: {e}", "python": sys.executable}))
    sys.exit(0)


# ---------------------------------------------------------------- PEFT BOFT (spec §2)

def block_butterfly_perm(n, b, r, k):
    """PEFT's BOFTLayer.block_butterfly_perm(n, b=D/2^i, r=b/2, n_butterfly_factor=k) as an index list."""
    if k == 0:
        return list(range(n))
    c = int(n // b)
    K = int(c // r)
    order = list(range(0, K, 2)) + list(range(1, K, 2))
    sorted_ = [o * r + t for o in order for t in range(r)]
    return [q * c + sorted_[p] for q in range(n // c) for p in range(c)]


def boft_perms(n, D, b, N):
    """perm_i for factor i = 0..N-1 (n_butterfly_factor k = N-1; i = 0 is the identity)."""
    return [block_butterfly_perm(n, D // (2 ** i), b // 2, N - 1) for i in range(N)]


def perm_matrices(perms, dtype):
    """P_i[j, perm_i[j]] = 1 (PEFT perm2mat), stacked (N, n, n)."""
    N, n = len(perms), len(perms[0])
    P = torch.zeros(N, n, n, dtype=dtype)
    for i, p in enumerate(perms):
        P[i, torch.arange(n), torch.tensor(p)] = 1
    return P


def cayley_batch(data):
    """PEFT BOFT cayley_batch: Q = (I - S)(I + S)^-1 with S = 0.5 (R - Rᵀ), via solve(left=False)."""
    nb, r, c = data.shape
    skew = 0.5 * (data - data.transpose(1, 2))
    eye = torch.eye(r, dtype=data.dtype).unsqueeze(0).expand(nb, r, c)
    return torch.linalg.solve(eye + skew, eye - skew, left=False)


def boft_rotation_dense(boft_R, P):
    """Rot = M_{N-1}⋯M_0 with M_i = P_i·blockdiag(Q[i])·P_iᵀ, all dense (PEFT's method)."""
    N, D, b, _ = boft_R.shape
    Q = cayley_batch(boft_R.reshape(N * D, b, b)).view(N, D, b, b)
    BD = torch.stack([torch.block_diag(*torch.unbind(Q[i])) for i in range(N)])
    M = torch.bmm(P, torch.bmm(BD, P.permute(0, 2, 1)))
    rot = M[0]
    for i in range(1, N):
        rot = M[i] @ rot
    return rot


def boft_forward_dense(x, W, bias, boft_R, boft_s, P):
    """Unmerged BOFT Linear forward: y = ((x·Rot)·Wᵀ)⊙s (+ b, bias unscaled)."""
    rot = boft_rotation_dense(boft_R, P)
    y = F.linear(x @ rot, W, bias)
    s = boft_s.view(-1)
    return (y - bias) * s + bias if bias is not None else y * s


def boft_forward_structured(x, W, bias, boft_R, boft_s, perms):
    """Spec §2's structured form: per factor i = N-1..0 permute, rotate b-blocks, un-permute; no n×n matrices."""
    N, D, b, _ = boft_R.shape
    Q = cayley_batch(boft_R.reshape(N * D, b, b)).view(N, D, b, b)
    z = x
    lead = z.shape[:-1]
    for i in range(N - 1, -1, -1):
        p = torch.tensor(perms[i])
        z = z[..., torch.argsort(p)]
        z = torch.einsum("...dk,dkc->...dc", z.reshape(*lead, D, b), Q[i]).reshape(*lead, D * b)
        z = z[..., p]
    y = F.linear(z, W, bias)
    s = boft_s.view(-1)
    return (y - bias) * s + bias if bias is not None else y * s


# ---------------------------------------------------------------- PEFT OFT (spec §3)

def oft_skew(vec, b):
    rows, cols = torch.triu_indices(b, b, 1)
    m = torch.zeros(vec.shape[0], b, b, dtype=vec.dtype)
    m[:, rows, cols] = vec
    return m - m.transpose(-2, -1)


def oft_cayley(vec, b, neumann, terms=5):
    """OFTRotationModule._cayley_batch: Neumann I+2A+2A²+…+2A^{K-2}+A^{K-1}, or exact solve(I+A, I-A, left=False)."""
    A = oft_skew(vec, b)
    nb = vec.shape[0]
    if neumann:
        R = torch.eye(b, dtype=vec.dtype).repeat(nb, 1, 1)
        if terms > 1:
            R.add_(A, alpha=2.0)
            if terms > 2:
                Qp = torch.bmm(A, A)
                R.add_(Qp, alpha=2.0)
                for _ in range(3, terms - 1):
                    Qp = torch.bmm(Qp, A)
                    R.add_(Qp, alpha=2.0)
                Qp = torch.bmm(Qp, A)
                R.add_(Qp)
        return R
    eye = torch.eye(b, dtype=vec.dtype).unsqueeze(0).expand(nb, b, b)
    return torch.linalg.solve(eye + A, eye - A, left=False)


def oft_forward(x, W, bias, weight, b, neumann, terms=5):
    r = weight.shape[0]
    Q = oft_cayley(weight, b, neumann, terms)
    lead = x.shape[:-1]
    xr = torch.einsum("...rk,rkc->...rc", x.reshape(*lead, r, b), Q).reshape(*lead, r * b)
    return F.linear(xr, W, bias)


# ---------------------------------------------------------------- timing

def timeit(fn, budget_s=2.0, min_reps=3, max_reps=30):
    """Median ms after warm-up. Sizes the run from the warm-up call; slow calls (> 2 s) get 1 warm-up + 3 reps."""
    t0 = time.perf_counter()
    fn()  # warm-up (allocations, first-call dispatch)
    one = time.perf_counter() - t0
    if one < 2.0:
        t0 = time.perf_counter()
        fn()  # second warm-up, sizes the run
        one = time.perf_counter() - t0
    reps = max(min_reps, min(max_reps, int(budget_s / max(one, 1e-6))))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return round(statistics.median(ts) * 1e3, 3)


def fwd_bwd(forward, leaves):
    def step():
        for t in leaves:
            t.grad = None
        y = forward()
        y.backward(GRAD_OUT[y.shape])
    return step


GRAD_OUT = {}


def grad_out(shape, gen):
    GRAD_OUT[torch.Size(shape)] = torch.randn(*shape, generator=gen)


def bench_linear(n, out, tokens, gen):
    W = torch.randn(out, n, generator=gen) / n ** 0.5
    x = torch.randn(tokens, n, generator=gen).requires_grad_()
    grad_out((tokens, out), gen)
    return timeit(fwd_bwd(lambda: F.linear(x, W), [x]))


def bench_boft(n, tokens, b, m, gen):
    D = n // b
    W = torch.randn(n, n, generator=gen) / n ** 0.5
    x = torch.randn(tokens, n, generator=gen).requires_grad_()
    R = (0.05 * torch.randn(m, D, b, b, generator=gen)).requires_grad_()
    s = (1 + 0.01 * torch.randn(n, 1, generator=gen)).requires_grad_()
    P = perm_matrices(boft_perms(n, D, b, m), torch.float32)
    grad_out((tokens, n), gen)
    return timeit(fwd_bwd(lambda: boft_forward_dense(x, W, None, R, s, P), [x, R, s]), budget_s=3.0)


def bench_oft(n, tokens, b, neumann, gen):
    r = n // b
    W = torch.randn(n, n, generator=gen) / n ** 0.5
    x = torch.randn(tokens, n, generator=gen).requires_grad_()
    v = (0.05 * torch.randn(r, b * (b - 1) // 2, generator=gen)).requires_grad_()
    grad_out((tokens, n), gen)
    return timeit(fwd_bwd(lambda: oft_forward(x, W, None, v, b, neumann), [x, v]))


def blas_info():
    """The BLAS library actually mapped into this process, and OpenBLAS's own view of itself when it is OpenBLAS."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if ("blas" in name or "lapack" in name) and path not in libs:
                    libs.append(path)
    except OSError:
        pass
    info = {"libraries": [os.path.realpath(p) for p in libs]}
    import ctypes
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas_config"] = lib.openblas_get_config().decode()
            info["openblas_core"] = lib.openblas_get_corename().decode()
            info["openblas_threads"] = lib.openblas_get_num_threads()
            break
        except (OSError, AttributeError):
            continue
    info["name"] = "openblas" if "openblas_config" in info else ("reference/other" if libs else "unknown")
    return info


# ---------------------------------------------------------------- selfcheck against the PEFT fixtures

def load_case(name):
    with open(os.path.join(FIXTURES, name)) as f:
        d = json.load(f)
    t = {}
    for k, v in d["tensors"].items():
        if v is None:
            t[k] = None
        else:
            dt = torch.int64 if v["dtype"] == "int64" else torch.float64
            t[k] = torch.tensor(v["data"], dtype=dt).reshape(v["shape"])
    return d, t


def maxabs(a, b):
    return float((a - b).abs().max())


def selfcheck():
    out = {}
    d, t = load_case("boft_lin_in16_out24_b4_m2_bias.json")
    g = d["derived"]
    n, N, D, b = g["n"], g["n_factors"], g["block_num"], g["block_size"]
    perms = boft_perms(n, D, b, N)
    P = perm_matrices(perms, torch.float64)
    out["boft_perm_equal"] = perms == t["perm"].tolist()
    rot = boft_rotation_dense(t["boft_R"], P)
    out["boft_rotation_dense_vs_fixture"] = maxabs(rot, t["rotation"])
    # structured formula: x·Rot computed without any n×n matrix, on the identity → Rot
    eye = torch.eye(n, dtype=torch.float64)
    one = torch.ones(n, 1, dtype=torch.float64)
    rot_struct = boft_forward_structured(eye, eye, None, t["boft_R"], one, perms)
    out["boft_rotation_structured_vs_dense"] = maxabs(rot_struct, rot)
    out["boft_rotation_structured_vs_fixture"] = maxabs(rot_struct, t["rotation"])
    R = t["boft_R"].clone().requires_grad_()
    s = t["boft_s"].clone().requires_grad_()
    x = t["x"].clone().requires_grad_()
    y = boft_forward_dense(x, t["base_weight"], t["base_bias"], R, s, P)
    y.backward(t["grad_out"])
    out["boft_y"] = maxabs(y, t["y"])
    out["boft_grad_R"] = maxabs(R.grad, t["grad_boft_R"])
    out["boft_grad_s"] = maxabs(s.grad, t["grad_boft_s"])
    out["boft_grad_x"] = maxabs(x.grad, t["grad_x"])
    y2 = boft_forward_structured(t["x"], t["base_weight"], t["base_bias"], t["boft_R"], t["boft_s"], perms)
    out["boft_y_structured"] = maxabs(y2, t["y"])
    # bigger case, random, fp64: structured vs dense (shape A geometry)
    gen = torch.Generator().manual_seed(1)
    nA, bA, mA = 768, 8, 2
    RA = 0.1 * torch.randn(mA, nA // bA, bA, bA, generator=gen, dtype=torch.float64)
    pA = boft_perms(nA, nA // bA, bA, mA)
    eA = torch.eye(nA, dtype=torch.float64)
    out["boft_A_structured_vs_dense"] = maxabs(
        boft_forward_structured(eA, eA, None, RA, torch.ones(nA, 1, dtype=torch.float64), pA),
        boft_rotation_dense(RA, perm_matrices(pA, torch.float64)))

    # every BOFT Linear fixture: perms and dense rotation (covers m = 1..4, b = 2..16)
    worst = 0.0
    for name in sorted(os.listdir(FIXTURES)):
        if name.startswith("boft_lin_"):
            d, t = load_case(name)
            g = d["derived"]
            pp = boft_perms(g["n"], g["block_num"], g["block_size"], g["n_factors"])
            if pp != t["perm"].tolist():
                worst = float("inf")
            worst = max(worst, maxabs(boft_rotation_dense(t["boft_R"], perm_matrices(pp, torch.float64)),
                                      t["rotation"]))
    out["boft_all_linear_fixtures_rotation"] = worst

    for case, neumann in (("oft_lin_in16_out12_b4_exact_bias.json", False),
                          ("oft_lin_in16_out12_b4_neumann5_bias.json", True)):
        d, t = load_case(case)
        bb, terms = d["derived"]["oft_block_size"], d["config"].get("num_cayley_neumann_terms", 5)
        key = "oft_neumann" if neumann else "oft_exact"
        v = t["oft_R_weight_before_forward"].clone().requires_grad_()
        x = t["x"].clone().requires_grad_()
        out[f"{key}_blocks"] = maxabs(oft_cayley(t["oft_R_weight_before_forward"], bb, neumann, terms),
                                      t["rotation_blocks"])
        y = oft_forward(x, t["base_weight"], t["base_bias"], v, bb, neumann, terms)
        y.backward(t["grad_out"])
        out[f"{key}_y"] = maxabs(y, t["y"])
        out[f"{key}_grad_weight"] = maxabs(v.grad, t["grad_oft_R_weight"])
        out[f"{key}_grad_x"] = maxabs(x.grad, t["grad_x"])
    ok = out["boft_perm_equal"] and all(v < 1e-10 for k, v in out.items() if k != "boft_perm_equal")
    out["ok"] = ok
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--selfcheck", action="store_true", help="check against test/fixtures/peft and exit")
    ap.add_argument("--quick", action="store_true", help="skip shape C's dense BOFT (about 15 s per step)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args()

    if args.selfcheck:
        r = selfcheck()
        print(json.dumps(r))
        sys.exit(0 if r["ok"] else 1)

    torch.set_num_threads(args.torch_threads)
    torch.set_grad_enabled(True)
    blas = blas_info()
    gen = torch.Generator().manual_seed(0)
    res = {
        "available": True,
        "torch_version": torch.__version__,
        "blas": blas["name"],
        "blas_detail": blas,
        "threads": {"torch_intra_op": torch.get_num_threads(), "openblas": blas.get("openblas_threads"),
                    "cpus": os.cpu_count()},
        "dtype": "float32",
    }
    shapes = {"A": (768, 512, 8, 2), "B": (1024, 512, 16, 4), "C": (4096, 128, 32, 4)}
    for key, (n, tokens, b, m) in shapes.items():
        res[key] = {"n": n, "tokens": tokens, "b": b, "m": m, "linear_ms": bench_linear(n, n, tokens, gen)}
        if key == "C" and args.quick:
            res[key]["peft_dense_ms"] = None
        else:
            res[key]["peft_dense_ms"] = bench_boft(n, tokens, b, m, gen)
    for key, neumann in (("oft_neumann", True), ("oft_exact", False)):
        res[key] = {"n": 4096, "tokens": 128, "b": 32, "terms": 5 if neumann else None,
                    "linear_ms": res["C"]["linear_ms"], "peft_ms": bench_oft(4096, 128, 32, neumann, gen)}

    with torch.no_grad():
        n, b, m = 4096, 32, 4
        W = torch.randn(n, n, generator=gen) / n ** 0.5
        s = 1 + 0.01 * torch.randn(n, 1, generator=gen)
        R = 0.05 * torch.randn(m, n // b, b, b, generator=gen)
        P = perm_matrices(boft_perms(n, n // b, b, m), torch.float32)
        rot = boft_rotation_dense(R, P)
        res["merge_4096_ms"] = timeit(lambda: (W @ rot.t()) * s)
        res["merge_4096_with_rot_ms"] = None if args.quick else timeit(
            lambda: (W @ boft_rotation_dense(R, P).t()) * s, budget_s=3.0)
        M, K, N = 512, 1024, 1024
        a = torch.randn(M, K, generator=gen)
        bm = torch.randn(K, N, generator=gen)
        ms = timeit(lambda: a @ bm, budget_s=1.0, max_reps=100)
        res["matmul_gflops"] = round(2 * M * K * N / (ms * 1e-3) / 1e9, 1)
        res["matmul_ms"] = ms
        # The same product with the second operand stored [N, K] (a Linear layer's x @ W.t()).
        bt = torch.randn(N, K, generator=gen)
        ms_nt = timeit(lambda: a @ bt.t(), budget_s=1.0, max_reps=100)
        res["matmul_nt_gflops"] = round(2 * M * K * N / (ms_nt * 1e-3) / 1e9, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
