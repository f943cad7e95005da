"""nsa_verify.check(fn, suites=...): a right adapter passes every case; a wrong one fails on the
tensor and element; an adapter that declines a case skips it, one that raises is an error, one
that returns nothing is not checked; the summary table and the report's counts."""

import io

import numpy as np
import pytest

import nsa_verify as nv
from nsa_test_support import reference_adapter


def test_right_adapter_passes_every_case():
    out = io.StringIO()
    report = nv.check(reference_adapter, suites=["smoke"], file=out)
    assert report.passed and len(report) == 6 and report.count("pass") == 6
    text = out.getvalue()
    assert text.startswith("nsa_verify.check: reference_adapter on smoke (6 cases)")
    assert "smoke/000_padded_fp32_mean" in text and "PASS" in text
    assert text.rstrip().endswith("6 cases: 6 passed, 0 failed, 0 errors, 0 skipped, "
                                  "0 not checked")
    # forward and gradients were both judged
    assert all(v.forward.checked and v.grads.checked for v in report)


def test_wrong_adapter_fails_naming_tensor_and_element():
    def flipped_window(case):
        cfg = case.config.replace(profile="custom",
                                  window_keys="w_plus_one" if case.config.window_keys == "w"
                                  else "w")
        return {"o_win": nv.forward(cfg, case.inputs, "f64").o_win}

    out = io.StringIO()
    report = nv.check(flipped_window, suites="smoke", file=out)
    assert not report.passed and report.count("fail") == 6
    first = report.failures()[0].failures()[0]
    assert first.name == "o_win" and len(first.worst) == 3
    line = next(l for l in out.getvalue().splitlines() if "000_padded_fp32_mean" in l)
    assert "FAIL" in line and "o_win: FAIL" in line and f"at element {list(first.worst)}" in line


def test_skipped_errors_not_checked_and_selection():
    def picky(case):
        if case.config.dtype == "fp16":
            raise nv.Unsupported("no fp16 kernel")
        if case.config.dtype == "bf16":
            raise RuntimeError("kernel crashed")
        if case.config.given_indices:
            return None
        if case.config.profile == "fla":
            return {"o": np.zeros((2, 2))}  # wrong shape: the case's error, not a crash
        return {"o": case.reference().o}

    report = nv.check(picky, suites=["smoke"], file=None)
    status = {v.case.name: v.status for v in report}
    assert status["002_suffix_fp16_mlp_g4"] == "skipped"
    assert report["002_suffix_fp16_mlp_g4"].message == "no fp16 kernel"
    assert status["001_varlen_bf16_linear_empty_seq"] == "error"
    assert "RuntimeError: kernel crashed" in report["001_varlen_bf16_linear_empty_seq"].message
    assert status["005_given_indices_ties"] == "not checked"
    assert status["003_fla_profile"] == "error"
    assert "o: shape (2, 2)" in report["003_fla_profile"].message
    assert status["000_padded_fp32_mean"] == "pass"
    assert not report.passed  # an error counts against it
    with pytest.raises(RuntimeError, match="kernel crashed"):
        nv.check(picky, suites=["smoke"], cases="001_*", file=None, raise_errors=True)
    only = nv.check(picky, suites=["smoke", "fla"], cases=["*fp32*"], file=None)
    assert [v.name for v in only] == ["smoke/000_padded_fp32_mean", "fla/002_fla_fp32"]


def test_verbose_prints_the_tables():
    out = io.StringIO()
    nv.check(lambda c: {"o": c.reference().o}, suites=["smoke"], cases="000_*", file=out,
             verbose=True)
    assert "case smoke/000_padded_fp32_mean: PASS" in out.getvalue()
    assert "  o           ok" in out.getvalue()
