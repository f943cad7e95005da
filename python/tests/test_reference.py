"""The reference bindings: forward and backward in every precision, on all rows or a selection,
against the golden truth (stored by the C++ writer, read back by the reader: an independent path
through HDF5) and against a small numpy oracle of the window branch."""

import numpy as np
import pytest

import nsa_verify as nv


def test_forward_f128_reproduces_the_golden_truth_exactly(smoke):
    for case in smoke:
        out = nv.forward(case.config, case.inputs, "f128")
        assert set(case.expected) <= set(out), case.id
        for name, want in case.expected.items():
            np.testing.assert_array_equal(out[name], want, err_msg=f"{case.id}: {name}")
        np.testing.assert_array_equal(out.rows, np.arange(case.config.total_q))


def test_backward_f128_reproduces_the_golden_gradients_exactly(smoke):
    for case in smoke:
        assert case.backward
        g = nv.backward(case.config, case.inputs, case.do, "f128")
        assert set(g) == set(case.expected_grads), case.id
        for name, want in case.expected_grads.items():
            np.testing.assert_array_equal(g[name], want, err_msg=f"{case.id}: {name}")


def test_row_and_head_selection_keep_their_order(smoke):
    case = smoke[1]  # varlen bf16, an empty sequence
    rows = [case.config.total_q - 1, 0, 57]
    out = nv.forward(case.config, case.inputs, "f128", rows=rows, heads=[1])
    assert list(out.rows) == rows and list(out.heads) == [1]
    assert list(out.groups) == [1 // case.config.group]
    for name in ("o", "o_win", "lse_slc"):
        np.testing.assert_array_equal(out[name], case.expected[name][rows][:, [1]])
    np.testing.assert_array_equal(out.indices, case.expected["indices"][rows][:, out.groups])


def test_backward_row_and_key_selection(smoke):
    case = smoke[0]
    full = nv.backward(case.config, case.inputs, case.do, "f64")
    part = nv.backward(case.config, case.inputs, case.do, "f64", rows=[7, 3], keys=[100, 2, 64])
    assert list(part.rows) == [7, 3] and list(part.key_tokens) == [100, 2, 64]
    np.testing.assert_array_equal(part.dq, full.dq[[7, 3]])
    np.testing.assert_array_equal(part.dg_win, full.dg_win[[7, 3]])
    np.testing.assert_array_equal(part.dk_slc, full.dk_slc[[100, 2, 64]])
    only_q = nv.backward(case.config, case.inputs, case.do, "f64", key_grads=False)
    assert set(only_q) == {"dq", "dg_cmp", "dg_slc", "dg_win"}
    only_k = nv.backward(case.config, case.inputs, case.do, "f64", query_grads=False)
    assert "dq" not in only_k and "dk_cmp" in only_k


def _window_oracle(cfg, x):
    """o_win and lse_win in numpy from docs/semantics.md: the last w keys up to and including t
    (window_keys w), query head h on KV head h // G, per sequence."""
    o = np.zeros((cfg.total_q, cfg.h_q, cfg.d_v))
    lse = np.full((cfg.total_q, cfg.h_q), -np.inf)
    for q0, k0, tq, tk in cfg.sequences:
        for i in range(tq):
            t = tk - tq + i
            lo = max(0, t - cfg.window + 1)
            for h in range(cfg.h_q):
                g = h // cfg.group
                k = x["k_win"][k0 + lo:k0 + t + 1, g]
                v = x["v_win"][k0 + lo:k0 + t + 1, g]
                s = k @ x["q"][q0 + i, h] * cfg.scale
                m = s.max()
                p = np.exp(s - m)
                lse[q0 + i, h] = m + np.log(p.sum())
                o[q0 + i, h] = p @ v / p.sum()
    return o, lse


def test_window_branch_and_gating_against_a_numpy_oracle(tiny, tiny_inputs):
    assert tiny.window_keys == "w"
    out = nv.forward(tiny, tiny_inputs, "f64")
    o_win, lse_win = _window_oracle(tiny, tiny_inputs)
    np.testing.assert_allclose(out.o_win, o_win, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.lse_win, lse_win, rtol=0, atol=1e-12)
    gated = sum(tiny_inputs[f"g_{b}"][..., None] * out[f"o_{b}"] for b in ("cmp", "slc", "win"))
    np.testing.assert_allclose(out.o, gated, rtol=0, atol=1e-12)
    do = nv.generate_grad_output(tiny, seed=2)
    g = nv.backward(tiny, tiny_inputs, do, "f64")
    np.testing.assert_allclose(g.dg_win, np.einsum("rhd,rhd->rh", do, o_win), atol=1e-12)


def test_precisions_agree_and_the_baseline_is_the_dtype_faithful_one(tiny, tiny_inputs):
    f64 = nv.forward(tiny, tiny_inputs, "f64")
    for p in ("f128", "bin50"):
        hp = nv.forward(tiny, tiny_inputs, p)
        assert np.abs(hp.o - f64.o).max() < 1e-13
    base = nv.forward(tiny, tiny_inputs, "baseline")
    err = np.abs(base.o - f64.o).max()
    assert 0 < err < 1e-4  # fp32 arithmetic on an fp32 config
    with pytest.raises(ValueError, match="f64|f128|bin50|baseline"):
        nv.forward(tiny, tiny_inputs, "fp128")


def test_outputs_follow_the_config():
    base = dict(t_k=140, h_q=2, d_k=16, d_v=16, top_n=3, window=32)
    given = nv.config(given_indices=True, **base)
    x = nv.generate_inputs(given, 3)
    out = nv.forward(given, x)
    assert "scores" not in out and "score_gap" not in out
    np.testing.assert_array_equal(out.indices, x["indices"])  # given lists are echoed
    shared = nv.config(shared_kv=True, phi="linear", **base)
    xs = nv.generate_inputs(shared, 3)
    np.testing.assert_array_equal(xs["k_cmp"], xs["k_win"])
    g = nv.backward(shared, xs, nv.generate_grad_output(shared, 1))
    assert {"dk_shared", "dv_shared", "dphi_k_pos", "dphi_k_w1"} <= set(g)
    assert not any(n.startswith("dk_") and n != "dk_shared" for n in g)
    # "k"/"v" stand for every branch's K/V of a shared_kv config
    alias = {n: a for n, a in xs.items() if n[:2] not in ("k_", "v_")}
    alias.update(k=xs["k_cmp"], v=xs["v_cmp"])
    np.testing.assert_array_equal(nv.forward(shared, alias).o, nv.forward(shared, xs).o)
    no_cmp = nv.config(enable_cmp=False, **base)
    out = nv.forward(no_cmp, nv.generate_inputs(no_cmp, 3), keep_scores=False)
    assert "o_cmp" not in out and "lse_cmp" not in out
    assert "p_cmp" not in out and "scores" not in out and "indices" in out
    assert out.o_slc.shape == (140, 2, 16) and out.lse_win.shape == (140, 2)


def test_generated_inputs_are_seeded_and_in_the_dtype():
    cfg = nv.config(t_k=70, h_q=2, d_k=8, d_v=8, dtype="bf16", phi="mlp", phi_hidden=4)
    a, b = nv.generate_inputs(cfg, 9), nv.generate_inputs(cfg, 9)
    c = nv.generate_inputs(cfg, 10, regime="peaked")
    assert set(a) == set(cfg.input_shapes())
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].shape == cfg.input_shapes()[name]
        bits = (a[name].astype(np.float32).view(np.uint32) >> 16).astype(np.uint32) << 16
        np.testing.assert_array_equal(bits.view(np.float32), a[name])  # exactly bf16
    assert not np.array_equal(a["q"], c["q"])
    with pytest.raises(ValueError, match="regime 'hot'"):
        nv.generate_inputs(cfg, 1, regime="hot")


def test_padded_batch_inputs_may_come_unpacked():
    cfg = nv.config(t_k=40, batch=3, h_q=2, d_k=8, d_v=8)
    x = nv.generate_inputs(cfg, 1)
    unpacked = {n: a.reshape(3, 40, *a.shape[1:]) if a.shape[0] == 120 else a
                for n, a in x.items()}
    np.testing.assert_array_equal(nv.forward(cfg, unpacked).o, nv.forward(cfg, x).o)


class _DLPackOnly:
    """An array reachable only through DLPack (as a framework tensor is)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_inputs_through_dlpack_and_any_float_dtype(tiny, tiny_inputs):
    want = nv.forward(tiny, tiny_inputs).o
    via = {n: (_DLPackOnly(a) if n == "q" else a.astype(np.float32) if n.startswith("k_") else a)
           for n, a in tiny_inputs.items()}
    np.testing.assert_array_equal(nv.forward(tiny, via).o, want)


def test_torch_tensors_in_the_case_dtype(smoke):
    torch = pytest.importorskip("torch")
    case = smoke[1]  # bf16
    x = case.torch_inputs()
    assert x["q"].dtype == torch.bfloat16 and x["indices"].dtype == torch.int32 if "indices" in x \
        else x["q"].dtype == torch.bfloat16
    x["q"].requires_grad_(True)
    out = nv.forward(case.config, {n: t for n, t in x.items() if n != "do"}, "f128")
    np.testing.assert_array_equal(out.o, case.expected["o"])


def test_a_given_compressed_cache_reproduces_its_golden_cases():
    """cmp_given: k_tilde/v_tilde are inputs in place of phi's parameters (and of K_cmp/V_cmp
    without shared K/V); the gradient goes to dk_tilde/dv_tilde (docs/semantics.md 2.1)."""
    cases = [c for c in nv.open_golden("canonical") if c.config.cmp_given]
    assert len(cases) >= 2
    assert any("dk_tilde" in c.expected_grads for c in cases)
    for case in cases:
        assert {"k_tilde", "v_tilde"} <= set(case.inputs), case.id
        assert not any(n.startswith("phi_") for n in case.inputs), case.id
        out = nv.forward(case.config, case.inputs, "f128")
        for name, want in case.expected.items():
            np.testing.assert_array_equal(out[name], want, err_msg=f"{case.id}: {name}")
        if case.backward:
            g = nv.backward(case.config, case.inputs, case.do, "f128")
            # With the compression branch off the cache only feeds the selection's scores, whose
            # indices are constants: no gradient reaches it, and none is listed.
            assert set(g) == set(case.expected_grads), case.id
            for name, want in case.expected_grads.items():
                np.testing.assert_array_equal(g[name], want, err_msg=f"{case.id}: {name}")
    # A cache entry that is not finite is named with its position.
    case = cases[0]
    bad = dict(case.inputs)
    bad["k_tilde"] = bad["k_tilde"].copy()
    bad["k_tilde"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="k_tilde"):
        nv.forward(case.config, bad, "f64")
