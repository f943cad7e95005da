"""Bad input to the reference bindings: each a Python exception naming what is wrong (the tensor,
its shape or dtype, the element, the index), never a crash."""

import numpy as np
import pytest

import nsa_verify as nv
from nsa_verify import _core


@pytest.fixture(scope="module")
def setup():
    cfg = nv.config(t_k=80, h_q=2, h_kv=1, d_k=8, d_v=8, top_n=3, window=16, phi="linear")
    return cfg, nv.generate_inputs(cfg, 2)


def test_wrong_shape_names_tensor_and_expected_shape(setup):
    cfg, x = setup
    bad = dict(x, k_slc=x["k_slc"][:, :, :4])
    with pytest.raises(ValueError, match=r"k_slc: shape \(80, 1, 4\), expected \(80, 1, 8\) = "
                                         r"\[total_k, h_kv, d_k\]"):
        nv.forward(cfg, bad)
    with pytest.raises(ValueError, match=r"phi_k_w1: shape"):
        nv.forward(cfg, dict(x, phi_k_w1=x["phi_k_w1"][0]))


def test_wrong_dtype_names_tensor(setup):
    cfg, x = setup
    with pytest.raises(TypeError, match="q: dtype int64, expected a floating-point array"):
        nv.forward(cfg, dict(x, q=np.ones(x["q"].shape, np.int64)))
    with pytest.raises(TypeError, match="g_win: dtype complex128"):
        nv.forward(cfg, dict(x, g_win=x["g_win"].astype(complex)))
    with pytest.raises(TypeError, match="q: str is not an array|q: dtype <U"):
        nv.forward(cfg, dict(x, q="not an array"))
    with pytest.raises(TypeError, match="inputs: expected a mapping"):
        nv.forward(cfg, [x["q"]])


def test_missing_unknown_and_unrepresentable_inputs(setup):
    cfg, x = setup
    with pytest.raises(ValueError, match=r"input 'v_win' is missing \(shape \(80, 1, 8\)\)"):
        nv.forward(cfg, {n: a for n, a in x.items() if n != "v_win"})
    with pytest.raises(ValueError, match="unknown input 'k_cmpp'"):
        nv.forward(cfg, dict(x, k_cmpp=x["k_cmp"]))
    q = np.array(x["q"])
    q[3, 1, 2] = np.inf
    with pytest.raises(ValueError, match="input 'q' element 58 = inf is not finite"):
        nv.forward(cfg, dict(x, q=q))
    q[3, 1, 2] = 0.1  # not an fp32 value
    with pytest.raises(ValueError, match="input 'q' element 58 .* not representable in fp32"):
        nv.forward(cfg, dict(x, q=q))


def test_rows_heads_keys_out_of_range_or_repeated(setup):
    cfg, x = setup
    with pytest.raises(ValueError, match=r"rows\[1\] = 80"):
        nv.forward(cfg, x, rows=[0, 80])
    with pytest.raises(ValueError, match="head"):
        nv.forward(cfg, x, heads=[2])
    with pytest.raises(TypeError, match="rows: expected a list of integers"):
        nv.forward(cfg, x, rows=[0.5])
    do = nv.generate_grad_output(cfg, 1)
    with pytest.raises(ValueError, match=r"keys\[1\] = 3 is listed twice"):
        nv.backward(cfg, x, do, keys=[3, 3])
    with pytest.raises(ValueError, match=r"rows\[0\] = -1 is outside \[0, 80\)"):
        nv.backward(cfg, x, do, rows=[-1])
    with pytest.raises(ValueError, match=r"do: shape \(80, 2\), expected \(80, 2, 8\)"):
        nv.backward(cfg, x, do[..., 0])


def test_given_index_lists_are_validated():
    cfg = nv.config(t_k=200, h_q=2, h_kv=1, d_k=8, d_v=8, top_n=3, given_indices=True)
    x = nv.generate_inputs(cfg, 1)
    idx = np.array(x["indices"])
    idx[10, 0, 1] = 7  # row 10 (t 10) sees only block 0
    with pytest.raises(ValueError, match="t 10, kv head 0, slot 1: value 7 is not -1 or a "
                                         "candidate block"):
        nv.forward(cfg, dict(x, indices=idx))
    with pytest.raises(TypeError, match="indices: dtype float32"):
        nv.forward(cfg, dict(x, indices=idx.astype(np.float32)))


def test_extension_checks_sizes_itself(setup):
    """A caller of the private extension that skips the Python checks still gets an error."""
    cfg, x = setup
    bad = dict(x, q=np.zeros(5))
    with pytest.raises(ValueError, match=r"q: shape \(5,\), expected \(80, 2, 8\)"):
        _core.forward(cfg._vc, bad, "f64", [], [], True, 0)
    with pytest.raises(ValueError, match="q: expected a C-contiguous float64"):
        _core.forward(cfg._vc, dict(x, q=x["q"].astype(np.float32)), "f64", [], [], True, 0)
    golden = nv.open_golden("smoke")
    with pytest.raises(ValueError, match="o: shape"):
        _core.write_candidate("/tmp/never.h5", golden._c, [(golden[0].name, {"o": np.zeros(3)}, None)])
    with pytest.raises(ValueError, match="gradient 'dq_x' is not one of"):
        _core.judge_case_grads(golden[0]._c, {"dq_x": np.zeros(3)}, None, 2.0, 2.0)
