"""NSA Verify for Python: the project's reference, golden files and judge (docs/python.md).

    import nsa_verify as nv
    cfg = nv.config("canonical", t_k=256, h_q=4, h_kv=1, d_k=32, d_v=32)
    x = nv.generate_inputs(cfg, seed=1)
    out = nv.forward(cfg, x, precision="f128")         # o_cmp, lse_cmp, ..., o, indices, ...
    report = nv.check(my_adapter, suites=["smoke"])     # judge an implementation on golden cases
"""

from ._errors import ConfigError, CudaError, GoldenError
from . import _core
from .config import Config, config, profiles
from .reference import (PRECISIONS, Gradients, Outputs, backward, forward, generate_grad_output,
                        generate_inputs, prepare_inputs)
from .judge import CaseVerdict, TensorVerdict, Verdict
from .golden import (FileVerdict, GoldenCase, GoldenFile, check_file, golden_dir, open_golden,
                     suites, write_candidate)
from .check import CheckReport, Unsupported, check
from ._tensors import bf16_bits_to_float32
from . import cuda

__version__ = _core.__version__


def judge(cfg, inputs, result, precision="f128", alpha=2.0, beta=2.0, do=None, grads=None):
    """Judges a candidate on any inputs (not only golden cases): computes truth in `precision`
    and the baseline from `inputs` and compares `result` (as GoldenCase.judge takes it) with the
    C++ nsa::ref::check_candidate; gradients (under "grad" or `grads`) need the upstream gradient
    `do` and are judged with check_candidate_gradients. Returns a CaseVerdict."""
    from ._tensors import as_float64
    from .judge import candidate_arrays

    cfg = config(cfg)
    arrays = prepare_inputs(cfg, inputs)
    outputs, cand_grads = candidate_arrays(cfg, result)
    if grads is not None:
        _, cand_grads = candidate_arrays(cfg, {"grad": grads})
    fwd = None
    if outputs:
        fwd = Verdict(_core.check_candidate(cfg._vc, arrays, outputs, precision, float(alpha),
                                            float(beta)), cfg.output_shapes(), "forward")
    grad_verdict = None
    if cand_grads:
        if do is None:
            raise ValueError("judge: gradients need the upstream gradient do")
        batch = cfg.batch if cfg.layout == "padded" else None
        d_o = as_float64(do, "do", (cfg.total_q, cfg.h_q, cfg.d_v), batch)
        idx = outputs.get("indices") if cfg.enable_slc and not cfg.given_indices else None
        grad_verdict = Verdict(_core.check_candidate_gradients(cfg._vc, arrays, d_o, cand_grads,
                                                               idx, precision, float(alpha),
                                                               float(beta)),
                               cfg.grad_shapes(), "gradients")
    return CaseVerdict(f"{cfg!r}", fwd, grad_verdict)


__all__ = [
    "__version__", "ConfigError", "GoldenError", "CudaError", "Config", "config", "profiles",
    "PRECISIONS", "Outputs", "Gradients", "generate_inputs", "generate_grad_output", "forward",
    "backward", "prepare_inputs", "TensorVerdict", "Verdict", "CaseVerdict", "GoldenFile",
    "GoldenCase", "FileVerdict", "golden_dir", "suites", "open_golden", "write_candidate",
    "check_file", "check", "CheckReport", "Unsupported", "judge", "bf16_bits_to_float32", "cuda",
]
