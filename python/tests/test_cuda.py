"""The CUDA forward on torch CUDA tensors (device pointers through DLPack). Where the extension
has no kernels or there is no device, the path says why and raises CudaError; on a machine with a
device (and torch with CUDA) the GPU test runs the kernels on golden cases and judges them."""

import numpy as np
import pytest

import nsa_verify as nv


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def test_unavailable_path_says_why():
    if nv.cuda.available():
        pytest.skip("a CUDA device is present: the GPU test below runs instead")
    why = nv.cuda.why_unavailable()
    assert why
    if not nv.cuda.built_with_cuda():
        assert "built without CUDA" in why
    cfg = nv.config(t_k=64, d_k=16, d_v=16)
    with pytest.raises(nv.CudaError, match="nsa_verify.cuda: "):
        nv.cuda.forward(cfg, {})
    # the extension's own plan says the same through the C++ CudaError
    with pytest.raises(nv.CudaError, match="no CUDA kernels|no CUDA device"):
        nv._core.CudaPlan(cfg._vc)


@pytest.mark.skipif(not nv.cuda.available() or _torch_cuda() is None,
                    reason="needs the CUDA kernels, a device and torch with CUDA")
def test_cuda_forward_on_torch_tensors_passes_the_judge():
    torch = _torch_cuda()
    smoke = nv.open_golden("smoke")
    ran = 0
    for case in smoke:
        if nv._core.cuda_unsupported(case.config._vc):
            continue
        x = case.torch_inputs(device="cuda", with_do=False)
        q_ptr = x["q"].data_ptr()
        out = nv.cuda.forward(case.config, x, keep_scores=True)
        assert x["q"].data_ptr() == q_ptr  # the inputs were used in place
        assert all(t.is_cuda for t in out.values())
        assert out["o"].dtype == x["q"].dtype and out["lse_win"].dtype == torch.float32
        result = {n: t for n, t in out.items() if n not in ("p_cmp", "scores")}
        case.assert_passes(result)
        ran += 1
        # a plan is reusable
        plan = nv.cuda.Plan(case.config)
        again = plan(x)
        assert torch.equal(again["o"], out["o"])
    assert ran >= 4


@pytest.mark.skipif(not nv.cuda.available() or _torch_cuda() is None,
                    reason="needs the CUDA kernels, a device and torch with CUDA")
def test_cuda_forward_rejects_host_tensors_and_wrong_dtypes():
    case = nv.open_golden("smoke")[0]  # fp32
    x = case.torch_inputs(device="cuda", with_do=False)
    with pytest.raises(ValueError, match="'k_win' is not on a CUDA device"):
        nv.cuda.forward(case.config, dict(x, k_win=x["k_win"].cpu()))
    with pytest.raises(ValueError, match="'g_cmp' has dtype float16, expected float32"):
        nv.cuda.forward(case.config, dict(x, g_cmp=x["g_cmp"].half()))
    with pytest.raises(ValueError, match="'q' is not C-contiguous"):
        nv.cuda.forward(case.config, dict(x, q=x["q"].transpose(0, 1).contiguous().transpose(0, 1)))
    with pytest.raises(ValueError, match="tensor 'v_slc' is missing"):
        nv.cuda.forward(case.config, {n: t for n, t in x.items() if n != "v_slc"})
