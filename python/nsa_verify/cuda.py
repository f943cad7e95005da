"""The project's CUDA forward (nsa::cuda, docs/kernels.md) on torch CUDA tensors, without host
copies: the inputs' and outputs' device pointers reach nsa::cuda::Plan::run through DLPack. Only
where the extension was built with CUDA (nvcc at build time) and a device is present; torch is
needed for this path only (it allocates the outputs)."""

from . import _core
from ._errors import CudaError
from .config import Config, config as make_config

__all__ = ["built_with_cuda", "available", "why_unavailable", "Plan", "forward"]

_BRANCHES = ("cmp", "slc", "win")
_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def built_with_cuda():
    """Whether the extension has the CUDA kernels."""
    return bool(_core.built_with_cuda)


def why_unavailable():
    """Why the CUDA forward cannot run here ("" when it can)."""
    if not _core.built_with_cuda:
        return "nsa_verify was built without CUDA (no nvcc when it was built)"
    if not _core.cuda_device_available():
        return "no CUDA device or driver"
    return ""


def available():
    """Whether the CUDA forward can run here: kernels built and a device present."""
    return why_unavailable() == ""


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("nsa_verify.cuda needs torch (CUDA tensors in and out)") from e
    return torch


class Plan:
    """A device plan for one config (tables uploaded once, scratch kept): call it with a dict of
    torch CUDA tensors in the config's dtype (names as golden/SCHEMA.md's inputs/; "k"/"v" for
    every branch with shared_kv), get a dict of torch CUDA tensors: o, o_<branch> (dtype),
    lse_<branch> (float32), indices (int32, where top-n runs) and, with keep_scores, p_cmp and
    scores (float32). Outputs start as NaN (indices 0x7f7f7f7f) so that an element a kernel
    does not write shows up in a comparison."""

    def __init__(self, cfg):
        self.config = cfg if isinstance(cfg, Config) else make_config(cfg)
        if not available():
            raise CudaError(f"nsa_verify.cuda: {why_unavailable()}")
        why = _core.cuda_unsupported(self.config._vc)
        if why:
            raise ValueError(f"cuda forward: {why}")
        self._plans = {}  # per device: a plan's tables and scratch live on one device

    def _plan(self, device):
        index = device.index if device.index is not None else 0
        if index not in self._plans:
            self._plans[index] = _core.CudaPlan(self.config._vc)  # on the current device
        return self._plans[index]

    def _outputs(self, device, keep_scores):
        torch = _torch()
        c = self.config
        dt = getattr(torch, _TORCH_DTYPES[c.dtype])
        shapes = c.output_shapes()
        nan = float("nan")
        out = {"o": torch.full(shapes["o"], nan, dtype=dt, device=device)}
        for b in c.branches():
            out[f"o_{b}"] = torch.full(shapes[f"o_{b}"], nan, dtype=dt, device=device)
            out[f"lse_{b}"] = torch.full(shapes[f"lse_{b}"], nan, dtype=torch.float32,
                                         device=device)
        if "indices" in shapes:
            out["indices"] = torch.full(shapes["indices"], 0x7F7F7F7F, dtype=torch.int32,
                                        device=device)
        if keep_scores:
            for name in ("p_cmp", "scores"):
                if name in shapes:
                    out[name] = torch.full(shapes[name], nan, dtype=torch.float32, device=device)
        return out

    def __call__(self, inputs, keep_scores=False):
        torch = _torch()
        c = self.config
        known = set(c.input_shapes())
        tensors = {}
        for name, t in inputs.items():
            if name in ("k", "v") and c.shared_kv:
                for b in _BRANCHES:
                    if f"{name}_{b}" in known:
                        tensors[f"{name}_{b}"] = t
            elif name in known:
                tensors[name] = t
            elif name not in ("do", "cu_seqlens_q", "cu_seqlens_k") and not (
                    name[:2] in ("k_", "v_", "g_") or name.startswith("phi_")):
                raise ValueError(f"unknown input {name!r}; the inputs are named as in "
                                 f"golden/SCHEMA.md: {', '.join(sorted(known))}")
        q = tensors.get("q")
        if q is None or not hasattr(q, "device") or q.device.type != "cuda":
            raise ValueError("cuda forward: 'q' must be a torch CUDA tensor")
        device = q.device
        out = self._outputs(device, keep_scores)
        with torch.cuda.device(device):
            # nsa::cuda runs on the legacy default stream: let it follow the caller's stream's
            # work, and return only when the outputs are written (errors surface here).
            torch.cuda.current_stream(device).synchronize()
            self._plan(device).run(tensors, out)
            torch.cuda.synchronize(device)
        return out


def forward(cfg, inputs, keep_scores=False):
    """The CUDA forward on `inputs` (torch CUDA tensors in the config's dtype): Plan(cfg)(inputs).
    Raises CudaError where the kernels cannot run (why_unavailable() says why), ValueError for a
    config the kernels do not support or a tensor of the wrong device, dtype, shape or layout."""
    return Plan(cfg)(inputs, keep_scores=keep_scores)
