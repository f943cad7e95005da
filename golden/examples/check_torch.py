#!/usr/bin/env python3
"""Checking a PyTorch function with nsa_verify.check (docs/python.md, "Checking an implementation").

The function under test is a sliding-window attention in PyTorch, the window branch of NSA: it
returns o_win and lse_win, and, through autograd for the case's upstream gradient dO, the window
branch's dK, dV and gate gradients. nsa_verify judges those on every case of the committed suites
with the project's comparator; the tensors it does not return (the other branches, o, dq) are
reported as not checked.

    python3 golden/examples/check_torch.py [SUITE ...]      default: smoke fla nsa_triton
    exit 0 = every case passed, 1 = a failure, 77 = torch or nsa_verify missing (skipped)
"""
import sys

try:
    import torch
    import nsa_verify as nv
except ImportError as e:  # pragma: no cover - the ctest treats 77 as "skipped"
    print(f"skipping: {e}")
    sys.exit(77)


def window_attention(q, k, v, cu_q, cu_k, window, plus_one, scale):
    """Sliding-window attention over packed sequences: query row i of a sequence at position t
    sees keys t-w+1 .. t (t-w .. t with plus_one); query head h reads KV head h // G. Computed in
    float32 from inputs of any float dtype, like a kernel with fp32 accumulation."""
    group = q.shape[1] // k.shape[1]
    o = q.new_zeros(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float32)
    lse = q.new_zeros(q.shape[0], q.shape[1], dtype=torch.float32)
    outs, lses = [], []
    for b in range(len(cu_k) - 1):
        q_b = q[cu_q[b]:cu_q[b + 1]].float()
        k_b = k[cu_k[b]:cu_k[b + 1]].float().repeat_interleave(group, dim=1)
        v_b = v[cu_k[b]:cu_k[b + 1]].float().repeat_interleave(group, dim=1)
        t_q, t_k = q_b.shape[0], k_b.shape[0]
        pos = torch.arange(t_k - t_q, t_k).unsqueeze(1)  # queries are the last t_q positions
        key = torch.arange(t_k).unsqueeze(0)
        seen = (key <= pos) & (key > pos - window - (1 if plus_one else 0))
        s = torch.einsum("qhd,khd->hqk", q_b, k_b) * scale
        s = s.masked_fill(~seen, float("-inf"))
        lses.append(torch.logsumexp(s, dim=-1).transpose(0, 1))
        outs.append(torch.einsum("hqk,khd->qhd", torch.softmax(s, dim=-1), v_b))
    if outs:
        o, lse = torch.cat(outs), torch.cat(lses)
    return o, lse


def adapter(case):
    """What nsa_verify.check calls for each case: the inputs in the case dtype as torch tensors,
    the window branch's outputs and (where the case has dO) its gradients back."""
    cfg = case.config
    if not cfg.enable_win:
        raise nv.Unsupported("no window branch")
    if cfg.shared_kv:
        raise nv.Unsupported("shared K/V: dk_shared needs every branch")
    x = case.torch_inputs()
    k, v = x["k_win"].requires_grad_(), x["v_win"].requires_grad_()
    o, lse = window_attention(x["q"], k, v, cfg.cu_seqlens_q, cfg.cu_seqlens_k, cfg.window,
                              cfg.window_keys == "w_plus_one", cfg.scale)
    result = {"o_win": o.detach(), "lse_win": lse.detach()}
    if case.do is not None and o.numel():
        do = x["do"].float()
        do_win = x["g_win"].float().unsqueeze(-1) * do  # the branch's upstream gradient
        dk, dv = torch.autograd.grad(o, (k, v), do_win)
        result["grad"] = {"dk_win": dk, "dv_win": dv, "dg_win": (do * o.detach()).sum(-1)}
    return result


def main(argv):
    suites = argv or ["smoke", "fla", "nsa_triton"]
    report = nv.check(adapter, suites=suites)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
