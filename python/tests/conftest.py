"""Shared fixtures of the nsa_verify tests. They run against whichever nsa_verify is importable:
the build tree's (ctest python:*, PYTHONPATH) or an installed one (pip install .)."""

import os

import numpy as np
import pytest

import nsa_verify as nv

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="session")
def smoke():
    return nv.open_golden("smoke")


@pytest.fixture(scope="session")
def tiny():
    """A small config with every branch: 2 sequences of 150 and 70 tokens (varlen), G = 2."""
    return nv.config({"layout": "varlen", "cu_seqlens_k": [0, 150, 220], "h_q": 4, "h_kv": 2,
                      "d_k": 16, "d_v": 8, "top_n": 3, "window": 40})


@pytest.fixture(scope="session")
def tiny_inputs(tiny):
    return nv.generate_inputs(tiny, seed=5)
