#!/usr/bin/env python3
"""Conformance of flash-linear-attention's own NSA reference with the `fla` profile.

Runs fla's naive reference functions (`fla.ops.nsa.naive`: naive_nsa_compression, naive_nsa_topk,
naive_nsa_selection; PyPI package `fla-core`) on every case of a golden file of the `fla` suite,
writes what they return as a candidate file (o_cmp, lse_cmp, indices, o_slc in the case dtype)
and judges it with `nsa golden check`, i.e. with the project's tolerance rule. fla has no naive
sliding window (it calls FlashAttention), so o_win, the gated o and the gradients are left out and
reported as not checked.

Two runs: "fp32" hands fla the case's values widened to float32 (exact), the precision in which
fla's Triton kernels rank blocks (fp32 dot products and exp); its verdict is the exit status.
"native" hands them over in the case dtype, as a bf16 model calls the naive code: fla 0.6.0's
naive_nsa_topk then computes q·k, the softmax and the group mean in bf16/fp16 (it does not widen,
unlike naive_nsa_compression), so its scores carry bf16 rounding (about 5e-4 at scores near
0.1) and where the ranked scores are that close it picks other blocks than the truth, beyond the
tie margin; o_slc then fails with the indices. That run is printed for information, with its
status, and does not decide the exit status (docs/semantics.md, section 9, known behaviours).

    python3 golden/examples/fla_conformance.py [--nsa PATH] [--keep CANDIDATE.h5] [GOLDEN.h5]
        default golden file: golden/data/fla.h5; default nsa: $NSA_CLI, else `nsa` on PATH
    exit 0 = every case passed, 1 = a failure, 2 = nothing could be judged,
         77 = torch, fla or h5py not importable (skipped; none of them is a CI requirement)

How the calls are adapted (each row is independent, so none changes a result):
  - fla's naive functions number query positions from 0 (they require T_q = T_k); a case's
    queries are the last T_q positions, so the queries are padded in front with zero rows and
    only the last T_q rows of each result are kept;
  - each sequence of a varlen case is run on its own as a batch of one (fla's own varlen path
    numbers sequences after an empty one wrongly: docs/semantics.md, section 9);
  - fla returns block indices in score order; the candidate lists them ascending, -1 last (the
    project's format: the index rule compares sets).
A case with `topn_rounding` next_power_of_two stores the rounded n as top_n, which is what
`parallel_nsa` keeps for an integer block_counts; the naive functions are called with that n.
"""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    import torch
    from fla.ops.nsa.naive import naive_nsa_compression, naive_nsa_selection, naive_nsa_topk
    from fla.ops.utils.pooling import mean_pooling
except Exception as e:  # pragma: no cover - the ctest treats 77 as "skipped"
    print(f"skipping: {type(e).__name__}: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nsa_numpy  # noqa: E402  (the golden-file reader and the candidate writer's dtype helpers)

TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def run_case(c, device, widen):
    """fla's compression, top-n and selection outputs for every query row of case c, from the
    case's values in float32 (widen) or in the case dtype."""
    if c.profile_name != "fla":
        raise ValueError(f"case {c.name}: profile {c.profile_name}, this check runs fla's code")
    dt = torch.float32 if widen else TORCH_DTYPE[c.dtype]
    bs = c.slc_block  # l = d = l' under the profile
    out = {"o_cmp": np.zeros((c.total_q, c.h_q, c.d_v)),
           "lse_cmp": np.full((c.total_q, c.h_q), -np.inf),
           "o_slc": np.zeros((c.total_q, c.h_q, c.d_v)),
           "indices": np.full((c.total_q, c.h_kv, c.top_n), -1, np.int64)}

    def tensor(x):  # the stored values are exact in the case dtype
        return torch.from_numpy(x).to(device=device, dtype=dt).unsqueeze(0)

    for s in range(len(c.cu_k) - 1):
        q0, q1, k0, k1 = c.cu_q[s], c.cu_q[s + 1], c.cu_k[s], c.cu_k[s + 1]
        t_q, t_k = q1 - q0, k1 - k0
        if t_q == 0:
            continue
        q = np.zeros((t_k, c.h_q, c.d_k))
        q[t_k - t_q:] = c.q[q0:q1]
        # fla feeds one k and v to every branch; a case with its own K_cmp/V_cmp gets them here.
        q, k, v = tensor(q), tensor(c.k["slc"][k0:k1]), tensor(c.v["slc"][k0:k1])
        k_cmp = mean_pooling(tensor(c.k["cmp"][k0:k1]), bs)
        v_cmp = mean_pooling(tensor(c.v["cmp"][k0:k1]), bs)
        o_cmp, lse_cmp = naive_nsa_compression(q, k_cmp, v_cmp, bs, c.scale)
        idx = naive_nsa_topk(q, k_cmp, c.top_n, bs, c.scale)
        o_slc = naive_nsa_selection(q, k, v, idx, bs, c.scale)
        rows = slice(t_k - t_q, t_k)
        out["o_cmp"][q0:q1] = o_cmp[0, rows].double().cpu().numpy()
        out["lse_cmp"][q0:q1] = lse_cmp[0, rows].double().cpu().numpy()
        out["o_slc"][q0:q1] = o_slc[0, rows].double().cpu().numpy()
        lists = idx[0, rows].cpu().numpy()
        lists = np.where(lists < 0, np.iinfo(np.int64).max, lists)
        lists = np.sort(lists, axis=-1)
        out["indices"][q0:q1, :, :lists.shape[-1]] = np.where(lists == np.iinfo(np.int64).max,
                                                              -1, lists)[:, :, :c.top_n]
    return out


def write_candidate(path, results):
    with h5py.File(path, "w") as f:
        for c, mine in results:
            g = f.create_group(f"cases/{c.name}/outputs")
            for name in ("o_cmp", "o_slc"):
                nsa_numpy.write_output(g, name, mine[name], c.dtype)
            g.create_dataset("lse_cmp", data=mine["lse_cmp"].astype(np.float32))
            g.create_dataset("indices", data=mine["indices"].astype(np.int32))


def main(argv):
    nsa, keep, golden, i = os.environ.get("NSA_CLI", "nsa"), None, None, 0
    while i < len(argv):
        if argv[i] in ("--nsa", "--keep") and i + 1 < len(argv):
            nsa, keep = (argv[i + 1], keep) if argv[i] == "--nsa" else (nsa, argv[i + 1])
            i += 2
        elif golden is None and not argv[i].startswith("--"):
            golden, i = argv[i], i + 1
        else:
            print(__doc__)
            return 2
    golden = golden or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                    "fla.h5")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cases = []
    with h5py.File(golden, "r") as f:
        for name in f["cases"]:
            g = f["cases"][name]
            c = nsa_numpy.Case(g)
            c.profile_name = nsa_numpy.attr(g, "profile")
            cases.append(c)
    print(f"fla {getattr(sys.modules['fla'], '__version__', '?')}, torch {torch.__version__} "
          f"on {device}: {len(cases)} cases of {golden}", flush=True)
    status = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, widen in (("native", False), ("fp32", True)):
            print(f"\n=== run {run}: inputs {'widened to float32' if widen else 'in the case dtype'}",
                  flush=True)
            path = os.path.join(tmp, f"fla_{run}.h5")
            if keep:
                path = keep.replace(".h5", f"_{run}.h5")
            write_candidate(path, [(c, run_case(c, device, widen)) for c in cases])
            status[run] = subprocess.run([nsa, "golden", "check", golden, path]).returncode
    print(f"\nfla conformance: fp32 run: nsa golden check exit {status['fp32']} (the verdict); "
          f"native run: exit {status['native']} (information)")
    return status["fp32"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
