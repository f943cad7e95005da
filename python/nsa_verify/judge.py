"""The judge: the project's C++ comparator (docs/tolerance.md) on a candidate's outputs and
gradients, with a structured verdict per tensor (max error, bound, worst element, pass, note) and
per case. A candidate is any subset of the forward's o_<branch>, lse_<branch>, o, indices and, under
"grad", of the gradients; what it leaves out is "not checked", never passed."""

from collections.abc import Mapping
from dataclasses import dataclass
import math

import numpy as np

from ._tensors import as_float64, as_int32

__all__ = ["TensorVerdict", "Verdict", "CaseVerdict", "candidate_arrays"]

_BRANCHES = ("cmp", "slc", "win")
# Forward tensors a candidate may hold that the judge does not compare (the reference's own
# diagnostics, and the tensors of a disabled branch): accepted and left alone.
_UNJUDGED = {"p_cmp", "scores", "score_gap"} | {f"{t}_{b}" for t in ("o", "lse") for b in _BRANCHES}


@dataclass(frozen=True)
class TensorVerdict:
    """One tensor's verdict. max_err: max |candidate - truth| over finite truth elements (for
    indices: the number of mismatched entries); bound: alpha * baseline_err + beta * ulp (for
    indices: the score margin delta); worst: the multi-index of the worst element (None when
    none); expected/actual: truth and candidate there; note: why it failed, or what else is known."""

    name: str
    checked: bool
    passed: bool
    max_err: float
    bound: float
    baseline_err: float
    worst: tuple = None
    worst_flat: int = None
    expected: float = None
    actual: float = None
    note: str = ""

    @property
    def ratio(self):
        """max_err / bound (inf for a nonzero error against a zero bound)."""
        if self.bound > 0:
            return self.max_err / self.bound
        return 0.0 if self.max_err == 0 else math.inf

    def describe(self):
        """One line naming the tensor, the result, the error against the bound and the element."""
        if not self.checked:
            return f"{self.name}: not checked"
        result = "ok" if self.passed else "FAIL"
        text = f"{self.name}: {result}, max |err| {self.max_err:.4g}"
        text += f" {'<=' if self.passed else '>'} bound {self.bound:.4g}" if self.name != "indices" \
            else f" mismatches (delta {self.bound:.4g})"
        if self.worst is not None:
            text += (f", at element {list(self.worst)} (flat {self.worst_flat}): expected "
                     f"{self.expected!r}, got {self.actual!r}")
        if self.note:
            text += f" ({self.note})"
        return text


def _worst_index(flat, shape):
    if flat is None or flat < 0:
        return None, None
    size = int(np.prod(shape)) if shape else 0
    if shape is None or flat >= max(size, 1):
        return None, int(flat)
    return tuple(int(i) for i in np.unravel_index(int(flat), tuple(shape))), int(flat)


class Verdict:
    """The verdicts of one case's forward outputs or gradients, tensor by tensor, in the
    comparator's order. passed: every checked tensor passed (and the case is then judged by
    those alone); checked: at least one tensor was checked."""

    def __init__(self, entries, shapes, kind):
        self.kind = kind
        tensors = []
        for e in entries:
            worst, flat = _worst_index(e["worst"], shapes.get(e["name"]))
            has = worst is not None or flat is not None
            tensors.append(TensorVerdict(
                name=e["name"], checked=e["checked"], passed=e["passed"], max_err=e["max_err"],
                bound=e["bound"], baseline_err=e["baseline_err"], worst=worst, worst_flat=flat,
                expected=e["expected"] if has else None, actual=e["actual"] if has else None,
                note=e["note"]))
        self.tensors = tuple(tensors)

    @property
    def passed(self):
        return all(t.passed for t in self.tensors if t.checked)

    @property
    def checked(self):
        return any(t.checked for t in self.tensors)

    def failures(self):
        return [t for t in self.tensors if t.checked and not t.passed]

    def __getitem__(self, name):
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"{name!r}: the {self.kind} verdict has {', '.join(self.names())}")

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self):
        return len(self.tensors)

    def names(self):
        return [t.name for t in self.tensors]

    def worst_ratio(self):
        """max over checked tensors of max_err / bound (indices excluded)."""
        return max((t.ratio for t in self.tensors if t.checked and t.name != "indices"),
                   default=0.0)

    def table(self):
        lines = [f"  {'tensor':<11} {'result':<6} {'max_err':>11} {'bound':>11}  worst / note"]
        for t in self.tensors:
            result = "--" if not t.checked else "ok" if t.passed else "FAIL"
            tail = "not checked" if not t.checked else ""
            if t.checked and t.worst is not None and t.name != "indices":
                tail = f"at {list(t.worst)}: expected {t.expected:.6g}, got {t.actual:.6g}"
            elif t.checked and t.worst is not None:
                tail = f"at {list(t.worst)}: expected {t.expected:.0f}, got {t.actual:.0f}"
            if t.checked and t.note:
                tail = f"{tail}; {t.note}" if tail else t.note
            lines.append(f"  {t.name:<11} {result:<6} {t.max_err:>11.4g} {t.bound:>11.4g}  {tail}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"Verdict({self.kind}: {'PASS' if self.passed else 'FAIL'}, "
                f"{sum(t.checked for t in self.tensors)} of {len(self.tensors)} checked)")


class CaseVerdict:
    """One case's verdict: `forward` and `grads` (Verdict, or None where not judged), and status:
    "pass" (at least one tensor checked, none failed), "fail", "not checked" (the candidate gave
    nothing to judge), "skipped" (the implementation declined the case), "error" (it raised).
    message: the reason for skipped and error, notes otherwise."""

    def __init__(self, case, forward=None, grads=None, status=None, message=""):
        self.case = case
        self.forward = forward
        self.grads = grads
        self.message = message
        if status is None:
            judged = [v for v in (forward, grads) if v is not None and v.checked]
            status = ("not checked" if not judged
                      else "pass" if all(v.passed for v in judged) else "fail")
        self.status = status

    @property
    def passed(self):
        return self.status == "pass"

    @property
    def name(self):
        return getattr(self.case, "id", str(self.case))

    def failures(self):
        return [t for v in (self.forward, self.grads) if v is not None for t in v.failures()]

    def tensors_checked(self):
        return sum(t.checked for v in (self.forward, self.grads) if v is not None for t in v)

    def worst_ratio(self):
        return max((v.worst_ratio() for v in (self.forward, self.grads) if v is not None),
                   default=0.0)

    def report(self):
        """The case's result, every failing tensor on a line of its own, and the tables."""
        lines = [f"case {self.name}: {self.status.upper()}" + (f" ({self.message})"
                                                                if self.message else "")]
        for t in self.failures():
            lines.append("  " + t.describe())
        for v in (self.forward, self.grads):
            if v is not None:
                lines.append(f" {v.kind}:")
                lines.append(v.table())
        return "\n".join(lines)

    def __repr__(self):
        return f"CaseVerdict({self.name}: {self.status})"


def candidate_arrays(cfg, result):
    """A candidate's result as the judge takes it: (outputs, grads). `result` is a mapping with
    any of o_<branch>, lse_<branch>, o, indices and "grad": a mapping of gradient names; or a bare
    array, taken as o; or None. Arrays may be numpy, torch (any device) or DLPack, of any float
    dtype (int for indices), packed or, for a padded batch, [batch, t, ...]. Raises ValueError
    for an unknown name or a wrong shape and TypeError for a wrong dtype, naming the tensor."""
    if result is None:
        return {}, None
    if not isinstance(result, Mapping):
        result = {"o": result}
    batch = cfg.batch if cfg.layout == "padded" else None
    shapes = cfg.output_shapes()
    outputs = {}
    grads = None
    for name, value in result.items():
        if name == "grad":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise TypeError(f"grad: expected a mapping of gradient names to arrays, got "
                                f"{type(value).__name__}")
            grad_shapes = cfg.grad_shapes()
            grads = {}
            for gname, g in value.items():
                if gname not in grad_shapes:
                    raise ValueError(f"grad/{gname}: not a gradient of this case (it has "
                                     f"{', '.join(grad_shapes)})")
                per_token = not gname.startswith("dphi_")  # phi's are per KV head
                grads[gname] = as_float64(g, f"grad/{gname}", grad_shapes[gname],
                                          batch if per_token else None)
            continue
        if name == "indices" and "indices" in shapes:
            outputs[name] = as_int32(value, name, shapes[name], batch)
        elif name == "indices" and cfg.enable_slc:
            # given indices: the lists are inputs; a candidate may echo them (judged exactly).
            shape = (cfg.total_q, cfg.h_kv, cfg.top_n)
            outputs[name] = as_int32(value, name, shape, batch)
        elif name in shapes and name not in ("p_cmp", "scores", "score_gap"):
            outputs[name] = as_float64(value, name, shapes[name], batch)
        elif name in _UNJUDGED:
            continue
        else:
            judged = [n for n in shapes if n not in ("p_cmp", "scores", "score_gap")]
            raise ValueError(f"unknown output {name!r}: a candidate holds any of "
                             f"{', '.join(judged)} and 'grad'")
    return outputs, grads
