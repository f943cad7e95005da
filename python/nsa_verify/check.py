"""nsa_verify.check(fn, suites=...): runs an implementation on every golden case, judges what it
returns with the C++ comparator and prints a summary table.

The adapter `fn(case)` receives a GoldenCase and returns a candidate result:

    def my_adapter(case):
        x = case.torch_inputs(device="cuda")    # q, k_cmp, ..., g_win, phi_*, do: case dtype
        cfg = case.config                       # every knob: cfg.window, cfg.top_n, cfg.cu_seqlens_q
        o, lse = my_nsa(x["q"], x["k_slc"], ..., window=cfg.window, block=cfg.slc_block)
        result = {"o": o}                       # any of o_<branch>, lse_<branch>, o, indices
        if case.do is not None:                 # the case carries a backward: dL/do = x["do"]
            dq, dk, dv = torch.autograd.grad(o, (x["q"], x["k_slc"], x["v_slc"]), x["do"])
            result["grad"] = {"dq": dq, "dk_slc": dk, "dv_slc": dv}
        return result

What it returns may be numpy, torch (any device) or DLPack arrays of any float dtype, packed
[total, ...] or, for a padded batch, [batch, t, ...]; a bare array is taken as o, None as
nothing. Tensors it leaves out are "not checked", never passed. Raising nsa_verify.Unsupported
(or NotImplementedError) skips the case; any other exception is recorded as the case's error."""

import math
import os
import sys

from .golden import DEFAULT_ALPHA, DEFAULT_BETA, GoldenFile, open_golden
from .judge import CaseVerdict

__all__ = ["Unsupported", "CheckReport", "check"]


class Unsupported(Exception):
    """Raised by an adapter for a case its implementation does not support (a dtype, a phi, a
    knob): check() reports the case as skipped with this message."""


class CheckReport:
    """The verdicts of check(), one CaseVerdict per case in suite order, with the counts.
    passed: at least one case passed and none failed or raised."""

    def __init__(self, verdicts, name):
        self.verdicts = list(verdicts)
        self.name = name

    def __iter__(self):
        return iter(self.verdicts)

    def __len__(self):
        return len(self.verdicts)

    def __getitem__(self, key):
        if isinstance(key, str):
            for v in self.verdicts:
                if v.name == key or v.case.name == key:
                    return v
            raise KeyError(key)
        return self.verdicts[key]

    def count(self, status):
        return sum(v.status == status for v in self.verdicts)

    @property
    def passed(self):
        return self.count("pass") > 0 and self.count("fail") == 0 and self.count("error") == 0

    def failures(self):
        return [v for v in self.verdicts if v.status in ("fail", "error")]

    def summary(self):
        return (f"{len(self)} cases: {self.count('pass')} passed, {self.count('fail')} failed, "
                f"{self.count('error')} errors, {self.count('skipped')} skipped, "
                f"{self.count('not checked')} not checked")

    def table(self):
        """One line per case: id, result, tensors checked (forward + gradients), the worst
        error/bound ratio, and the first failure or the reason."""
        width = max([len(v.name) for v in self.verdicts] + [4])
        lines = [f"  {'case':<{width}}  {'result':<11} {'tensors':>7} {'err/bound':>9}  "
                 f"first failure / note"]
        for v in self.verdicts:
            fwd = sum(t.checked for t in v.forward) if v.forward is not None else 0
            grd = sum(t.checked for t in v.grads) if v.grads is not None else 0
            count = f"{fwd}+{grd}" if grd else str(fwd)
            ratio = v.worst_ratio()
            ratio_text = "" if v.status in ("skipped", "error", "not checked") else (
                "inf" if math.isinf(ratio) else f"{ratio:.3g}")
            fails = v.failures()
            tail = fails[0].describe() if fails else v.message
            lines.append(f"  {v.name:<{width}}  {v.status.upper():<11} {count:>7} "
                         f"{ratio_text:>9}  {tail}")
        return "\n".join(lines)

    def __repr__(self):
        return f"CheckReport({self.name}: {self.summary()})"


def _files(suites):
    if isinstance(suites, (str, os.PathLike, GoldenFile)):
        suites = [suites]
    return [s if isinstance(s, GoldenFile) else open_golden(s) for s in suites]


def check(fn, suites=("smoke",), cases=None, alpha=DEFAULT_ALPHA, beta=DEFAULT_BETA,
          file=sys.stdout, verbose=False, raise_errors=False):
    """Runs `fn(case)` on every case of `suites` (names of committed suites, paths, or
    GoldenFiles) that `cases` selects (a glob or substring of the case name, a list of them, or a
    callable; None: all), judges each result, prints a table to `file` (None: silent) and returns
    a CheckReport. verbose also prints every judged case's tensor tables; raise_errors re-raises
    an exception of fn instead of recording it."""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    verdicts = []
    files = _files(suites)
    for golden in files:
        for case in golden.select(cases):
            try:
                result = fn(case)
            except (Unsupported, NotImplementedError) as e:
                verdicts.append(CaseVerdict(case, status="skipped",
                                            message=str(e) or type(e).__name__))
                continue
            except Exception as e:  # noqa: BLE001 - the implementation's error is the verdict
                if raise_errors:
                    raise
                verdicts.append(CaseVerdict(case, status="error",
                                            message=f"{type(e).__name__}: {e}"))
                continue
            try:
                verdicts.append(case.judge(result, alpha=alpha, beta=beta))
            except (ValueError, TypeError) as e:  # a malformed result: named tensor, shape, dtype
                if raise_errors:
                    raise
                verdicts.append(CaseVerdict(case, status="error", message=str(e)))
    report = CheckReport(verdicts, name)
    if file is not None:
        labels = ", ".join(f"{g.label} ({len(g.select(cases))} cases)" for g in files)
        print(f"nsa_verify.check: {name} on {labels}", file=file)
        print(report.table(), file=file)
        if verbose:
            for v in verdicts:
                if v.forward is not None or v.grads is not None:
                    print(v.report(), file=file)
        print(report.summary(), file=file)
    return report
