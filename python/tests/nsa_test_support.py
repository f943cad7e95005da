"""Helpers of the nsa_verify tests (importable: pytest puts this directory on sys.path)."""

import numpy as np

import nsa_verify as nv


def reference_adapter(case):
    """A right candidate: the double reference (forward, and the backward where the case has
    one), which the tolerance rule accepts against the f128 truth."""
    result = dict(case.reference("f64"))
    if case.do is not None:
        result["grad"] = dict(nv.backward(case.config, case.inputs, case.do, "f64"))
    return result


def perturbed(array, index, delta):
    a = np.array(array, dtype=np.float64, copy=True)
    a[index] += delta
    return a
