"""The judge through the bindings, from both sides: a right candidate passes, a wrong one fails
on the tensor and element that is wrong; the bound is the rule's (docs/tolerance.md); tensors left
out are not checked; gradients; the tie-aware index rule; candidate files and check_file."""

import math
import os
import subprocess

import numpy as np
import pytest

import nsa_verify as nv
from nsa_test_support import perturbed

# (mantissa bits, minimum normal exponent) per dtype: golden/SCHEMA.md, "Tolerance rule".
FORMATS = {"fp32": (23, -126), "fp16": (10, -14), "bf16": (7, -126), "fp64": (52, -1022)}


def ulp(x, dtype):
    p, emin = FORMATS[dtype]
    e = emin if x == 0 else max(math.floor(math.log2(abs(x))), emin)
    return 2.0 ** (e - p)


def rule_bound(case, name, alpha=2.0, beta=2.0):
    err, dtype = case.tolerance[name] if name in case.tolerance else case.grad_tolerance[name]
    truth = case.expected[name] if name in case.expected else case.expected_grads[name]
    return alpha * err + beta * ulp(np.abs(truth[np.isfinite(truth)]).max(), dtype)


@pytest.fixture(scope="module")
def case_and_reference(smoke):
    case = smoke[0]  # padded fp32, every branch
    return case, dict(case.reference("f64"))


def test_right_candidate_passes_with_the_rules_bound(case_and_reference):
    case, ref = case_and_reference
    v = case.judge(ref)
    assert v.status == "pass" and v.forward.passed
    assert [t.name for t in v.forward] == ["indices", "o_cmp", "lse_cmp", "o_slc", "lse_slc",
                                           "o_win", "lse_win", "o"]
    for name in ("o", "o_win", "lse_cmp"):
        assert v.forward[name].bound == pytest.approx(rule_bound(case, name), rel=1e-12)
        assert v.forward[name].max_err < v.forward[name].bound
    assert v.grads is None


@pytest.mark.parametrize("factor, passes", [(0.5, True), (4.0, False)])
def test_one_element_off_by_a_multiple_of_the_bound(case_and_reference, factor, passes):
    case, ref = case_and_reference
    where = (17, 3, 5)
    bound = rule_bound(case, "o_win")
    cand = dict(ref, o_win=perturbed(case.expected["o_win"], where, factor * bound))
    t = case.judge(cand).forward["o_win"]
    assert t.passed is passes
    assert t.max_err == pytest.approx(factor * bound, rel=1e-6)
    assert t.worst == where and t.worst_flat == np.ravel_multi_index(where, cand["o_win"].shape)
    assert t.expected == case.expected["o_win"][where]
    assert t.actual == cand["o_win"][where]
    if not passes:
        line = t.describe()
        assert line.startswith("o_win: FAIL") and "at element [17, 3, 5]" in line
        with pytest.raises(AssertionError, match=r"o_win: FAIL.*at element \[17, 3, 5\]"):
            case.assert_passes(cand)


def test_nan_inf_and_left_out_tensors(case_and_reference):
    case, ref = case_and_reference
    o = np.array(ref["o"])
    o[0, 0, 0] = np.nan
    v = case.judge({"o": o, "lse_win": ref["lse_win"]})
    assert not v.forward["o"].passed and "NaN" in v.forward["o"].note
    assert v.forward["lse_win"].checked and v.forward["lse_win"].passed
    assert not v.forward["o_cmp"].checked and v.forward["o_cmp"].describe() == "o_cmp: not checked"
    assert case.judge({}).status == "not checked" and case.judge(None).status == "not checked"
    assert case.judge(ref["o"]).forward["o"].passed  # a bare array is o


def test_indices_rule(case_and_reference):
    case, ref = case_and_reference
    idx = np.array(ref["indices"])
    idx[40, 1, 0] = 10 ** 6  # not a candidate block
    t = case.judge({"indices": idx}).forward["indices"]
    assert not t.passed and t.worst == (40, 1, 0) and "not a candidate" in t.note


def test_alpha_and_beta_reach_the_comparator(case_and_reference):
    case, ref = case_and_reference
    loose = case.judge(ref, alpha=2, beta=2)
    strict = case.judge(ref, alpha=0, beta=0)
    assert loose.passed and not strict.passed
    assert all(t.bound == 0 for t in strict.forward if t.name != "indices")


def test_gradients_from_both_sides(smoke):
    case = smoke[2]  # fp16, mlp phi: every phi parameter gradient
    g = dict(nv.backward(case.config, case.inputs, case.do, "f64"))
    v = case.judge(grads=g)
    assert v.passed and v.forward is None
    assert set(v.grads.names()) == set(case.config.grad_shapes())
    where = (2, 0, 3)
    bound = rule_bound(case, "dk_slc")
    bad = dict(g, dk_slc=perturbed(case.expected_grads["dk_slc"], where, 3 * bound))
    v = case.judge({"grad": bad})
    assert v.status == "fail" and [t.name for t in v.failures()] == ["dk_slc"]
    assert v.grads["dk_slc"].worst == where
    assert "dk_slc: FAIL" in v.report() and "[2, 0, 3]" in v.report()
    with pytest.raises(ValueError, match="grad/dk_shared: not a gradient of this case"):
        case.judge(grads={"dk_shared": g["dk_slc"]})


def test_candidate_errors_name_the_tensor(case_and_reference):
    case, ref = case_and_reference
    with pytest.raises(ValueError, match=r"o: shape \(130, 4\), expected \(130, 4, 16\)"):
        case.judge({"o": ref["o"][..., 0]})
    with pytest.raises(TypeError, match="o_slc: dtype int64"):
        case.judge({"o_slc": np.zeros((130, 4, 16), np.int64)})
    with pytest.raises(TypeError, match="indices: dtype float64"):
        case.judge({"indices": ref["indices"].astype(np.float64)})
    with pytest.raises(ValueError, match="unknown output 'out'"):
        case.judge({"out": ref["o"]})
    with pytest.raises(ValueError, match="indices: element .* outside int32"):
        case.judge({"indices": np.full(ref["indices"].shape, 2 ** 40)})
    unpacked = {"o": ref["o"].reshape(1, 130, 4, 16)}  # padded batch of 1 as [batch, t, ...]
    assert case.judge(unpacked).passed


def test_torch_candidate(case_and_reference):
    torch = pytest.importorskip("torch")
    case, ref = case_and_reference
    cand = {n: torch.from_numpy(np.array(a)) for n, a in ref.items()}
    cand["o"] = cand["o"].float().requires_grad_(True)
    assert case.judge(cand).passed


def test_judge_any_inputs_and_a_wrong_convention():
    cfg = nv.config(t_k=150, h_q=2, d_k=16, d_v=16, top_n=3, window=20)
    x = nv.generate_inputs(cfg, 4)
    right = nv.forward(cfg, x, "f64")
    assert nv.judge(cfg, x, dict(right)).passed
    # the window with w + 1 keys: a convention the canonical profile does not use
    wrong = nv.forward(cfg.replace(profile="custom", window_keys="w_plus_one"), x, "f64")
    v = nv.judge(cfg, x, {"o_win": wrong.o_win, "o_slc": wrong.o_slc})
    assert not v.forward["o_win"].passed and v.forward["o_slc"].passed
    do = nv.generate_grad_output(cfg, 2)
    g = dict(nv.backward(cfg, x, do, "f64"))
    assert nv.judge(cfg, x, {"grad": g}, do=do).passed
    with pytest.raises(ValueError, match="need the upstream gradient"):
        nv.judge(cfg, x, {"grad": g})


def _swap_at_the_closest_tie(cfg, x):
    """The reference's index lists with one change at the (row, KV head) of the smallest score
    gap: its weakest freely chosen block replaced by the strongest unselected candidate."""
    truth = nv.forward(cfg, x, "f64")
    gap = np.where(np.isfinite(truth.score_gap), truth.score_gap, np.inf)
    r, g = np.unravel_index(np.argmin(gap), gap.shape)
    last = r // cfg.slc_block  # one padded sequence: row r sits at position r
    chosen = [int(j) for j in truth.indices[r, g] if j >= 0]
    free = [j for j in chosen if not (j < cfg.n_init or last - cfg.n_local < j <= last)]
    s = truth.scores[r, g]
    out_block = min(free, key=lambda j: s[j])
    in_block = max((j for j in range(last + 1) if j not in chosen), key=lambda j: s[j])
    idx = np.array(truth.indices)
    idx[r, g, :len(chosen)] = sorted([j for j in chosen if j != out_block] + [in_block])
    return truth, idx, (int(r), int(g))


def test_indices_that_differ_within_ties_are_judged_with_their_own_lists():
    cfg = nv.config(t_k=512, h_q=2, h_kv=1, d_k=16, d_v=16, top_n=5, window=16)
    x = nv.generate_inputs(cfg, 3, regime="ties")  # seed 3 has a gap below delta
    truth, idx, (r, g) = _swap_at_the_closest_tie(cfg, x)
    # the selection branch on the candidate's own lists
    own = cfg.replace(profile="custom", given_indices=True, index_policy="multiset")
    mine = nv.forward(own, dict(x, indices=idx), "f64")
    v = nv.judge(cfg, x, {"indices": idx, "o_slc": mine.o_slc, "o": mine.o})
    assert v.passed, v.report()
    assert "differ within ties" in v.forward["indices"].note
    assert "judged with the candidate's indices" in v.forward["o_slc"].note
    # the same lists with the reference's o_slc: wrong for the candidate's own selection
    v = nv.judge(cfg, x, {"indices": idx, "o_slc": truth.o_slc})
    assert not v.forward["o_slc"].passed and v.forward["o_slc"].worst[0] == r
    # a swap where the gap is far beyond delta breaks the index rule
    x1 = nv.generate_inputs(cfg, 1, regime="ties")
    _, idx1, (r1, g1) = _swap_at_the_closest_tie(cfg, x1)
    t = nv.judge(cfg, x1, {"indices": idx1}).forward["indices"]
    assert not t.passed and t.worst[:2] == (r1, g1) and "> delta" in t.note


def test_candidate_files(tmp_path, smoke):
    from nsa_test_support import reference_adapter

    results = {c.name: reference_adapter(c) for c in smoke}
    right = tmp_path / "right.h5"
    nv.write_candidate(right, smoke, results)
    report = nv.check_file(smoke, right)
    assert report.status == 0 and report.passed_count == 6 and report.grad_tensors > 0
    bad = dict(results)
    name = smoke[3].name
    o = np.array(bad[name]["o"])
    o[9, 1, 2] += 1.0
    bad[name] = dict(bad[name], o=o)
    wrong = tmp_path / "wrong.h5"
    nv.write_candidate(wrong, "smoke", bad)
    report = nv.check_file("smoke", wrong)
    assert report.status == 1 and report.failed_count == 1
    failed = next(c for c in report.cases if c.status == "fail")
    assert failed.case.name == name and failed.failures()[0].name == "o"
    assert failed.failures()[0].worst == (9, 1, 2)
    partial = tmp_path / "partial.h5"
    nv.write_candidate(partial, smoke, {smoke[0].name: {"o": results[smoke[0].name]["o"]}})
    report = nv.check_file(smoke, partial)
    assert report.status == 0 and report.not_checked_count == 5
    nothing = tmp_path / "nothing.h5"
    nv.write_candidate(nothing, smoke, {})
    assert nv.check_file(smoke, nothing).status == 2
    with pytest.raises(KeyError, match="no case 'nope'"):
        nv.write_candidate(tmp_path / "x.h5", smoke, {"nope": {}})
    with pytest.raises(FileNotFoundError):
        nv.check_file(smoke, tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(nv.GoldenError, match="junk.h5"):
        nv.check_file(smoke, junk)
    # The `nsa` program (ctest passes it in NSA_CLI) judges the same files the same way.
    cli = os.environ.get("NSA_CLI")
    if cli:
        for path, status in ((right, 0), (wrong, 1), (nothing, 2)):
            run = subprocess.run([cli, "golden", "check", smoke.path, str(path)],
                                 capture_output=True, text=True)
            assert run.returncode == status, run.stdout + run.stderr
