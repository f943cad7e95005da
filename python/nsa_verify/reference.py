"""The reference forward and backward (nsa::ref, docs/semantics.md) on numpy arrays: in double
("f64"), in high precision ("f128": 113-bit significand, "bin50": 168-bit) or as the dtype-faithful
baseline ("baseline": fp32 arithmetic with storage rounded to the config's dtype), on every row or
a selection. Results are rounded once to float64."""

from collections.abc import Mapping
import operator

import numpy as np

from . import _core
from ._tensors import as_float64, as_int32
from .config import Config, config as make_config

__all__ = ["PRECISIONS", "Outputs", "Gradients", "generate_inputs", "generate_grad_output",
           "forward", "backward", "prepare_inputs"]

PRECISIONS = ("f64", "f128", "bin50", "baseline")
_BRANCHES = ("cmp", "slc", "win")
_PHI_PARAMS = ("pos", "w1", "b1", "w2", "b2")
_BRANCH_KV = {f"{t}_{b}" for t in "kv" for b in _BRANCHES}  # what "k"/"v" stand for (shared_kv)
# Every name an inputs mapping may hold; "k"/"v" stand for every branch's K/V (shared_kv), and
# the cu_seqlens and the upstream gradient "do" (a golden case's) are ignored.
_KNOWN_INPUTS = ({"q", "k", "v", "k_tilde", "v_tilde", "indices", "cu_seqlens_q", "cu_seqlens_k",
                  "do"}
                 | _BRANCH_KV | {f"g_{b}" for b in _BRANCHES}
                 | {f"phi_{t}_{p}" for t in "kv" for p in _PHI_PARAMS})


class _TensorSet(Mapping):
    """Named float64 arrays (int32 for indices), also reachable as attributes."""

    def __init__(self, tensors):
        self._tensors = dict(tensors)

    def __getitem__(self, name):
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"{name!r} is not among {', '.join(self._tensors)}") from None

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def __getattr__(self, name):
        tensors = self.__dict__.get("_tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(name)

    def __repr__(self):
        body = ", ".join(f"{k}{list(v.shape)}" for k, v in self._tensors.items())
        return f"{type(self).__name__}({body})"


class Outputs(_TensorSet):
    """The forward's outputs: o_<branch> and lse_<branch> per enabled branch ([rows, heads, d_v],
    [rows, heads]; lse = -inf for an empty key set), o, p_cmp ([rows, heads, max_cmp_blocks]),
    scores ([rows, groups, max_slc_blocks], -inf for non-candidates), indices ([rows, groups,
    top_n], int32, -1 padded) and score_gap ([rows, groups]) where the config has them (the
    scores only with keep_scores). `rows`, `heads` and `groups` (KV heads) say what they cover."""

    def __init__(self, d):
        super().__init__(d["tensors"])
        self.rows = np.asarray(d["rows"], np.int64)
        self.heads = np.asarray(d["heads"], np.int64)
        self.groups = np.asarray(d["groups"], np.int64)


class Gradients(_TensorSet):
    """The backward's gradients, named as golden/SCHEMA.md's expected/grad/: dq, dk_<b>, dv_<b>
    and dg_<b> per enabled branch (dk_shared, dv_shared instead of the per-branch K/V gradients
    with shared_kv), dphi_k_* / dphi_v_* for a linear or mlp phi. `rows` are the query rows of dq
    and dg, `key_tokens` the key tokens of dK and dV (the backward's `keys`; `keys()` is the
    mapping's)."""

    def __init__(self, d):
        super().__init__(d["tensors"])
        self.rows = np.asarray(d["rows"], np.int64)
        self.key_tokens = np.asarray(d["keys"], np.int64)


def _config(cfg):
    return cfg if isinstance(cfg, Config) else make_config(cfg)


def _index_list(values, what):
    if values is None:
        return []
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"{what}: expected a list of integers, got {arr.dtype} of shape "
                        f"{arr.shape}")
    return [operator.index(v) for v in arr.tolist()]


def _precision(p):
    if p not in PRECISIONS:
        raise ValueError(f"precision {p!r}: expected one of {'|'.join(PRECISIONS)}")
    return p


def prepare_inputs(cfg, inputs):
    """The inputs `cfg` reads, from a mapping of array-likes (numpy, torch, DLPack), as checked
    float64 arrays (int32 indices): names as golden/SCHEMA.md's inputs/, a padded batch's tensors
    packed [batch * t, ...] or as [batch, t, ...]. With shared_kv, "k" and "v" may stand for the
    per-branch names. Raises ValueError for a missing or unknown name or a wrong shape, TypeError
    for a wrong dtype."""
    cfg = _config(cfg)
    if hasattr(inputs, "inputs") and not isinstance(inputs, Mapping):
        inputs = inputs.inputs  # a golden case
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs: expected a mapping of names to arrays, got {type(inputs).__name__}")
    unknown = sorted(set(inputs) - _KNOWN_INPUTS)
    if unknown:
        raise ValueError(f"unknown input {unknown[0]!r}; the inputs are named as in "
                         f"golden/SCHEMA.md: {', '.join(cfg.input_shapes())}")
    batch = cfg.batch if cfg.layout == "padded" else None
    out = {}
    for name, shape in cfg.input_shapes().items():
        value = inputs.get(name)
        if value is None and cfg.shared_kv and name in _BRANCH_KV:
            value = inputs.get(name[0])
        if value is None:
            raise ValueError(f"input {name!r} is missing (shape {tuple(shape)})")
        conv = as_int32 if name == "indices" else as_float64
        out[name] = conv(value, name, shape, batch)
    return out


def generate_inputs(cfg, seed=1, regime="typical"):
    """The project's seeded inputs for `cfg` (nsa::ref::generate_inputs): every tensor the config
    reads, values representable in its dtype, as float64 arrays (int32 indices). regime: typical,
    peaked, ties or extreme."""
    cfg = _config(cfg)
    return dict(_core.generate_inputs(cfg._vc, operator.index(seed), regime))


def generate_grad_output(cfg, seed=1):
    """A seeded upstream gradient dO [total_q, h_q, d_v], uniform in [-1, 1], in the dtype."""
    cfg = _config(cfg)
    return _core.generate_grad_output(cfg._vc, operator.index(seed))


def forward(cfg, inputs, precision="f64", rows=None, heads=None, keep_scores=True, threads=0):
    """The reference forward on `inputs` (see prepare_inputs): Outputs over `rows` (packed query
    rows, default all) and `heads` (query heads, default all), in that order. Errors: ValueError
    for bad inputs (named tensor, element) or a row/head out of range, ConfigError for a config."""
    cfg = _config(cfg)
    arrays = prepare_inputs(cfg, inputs)
    return Outputs(_core.forward(cfg._vc, arrays, _precision(precision), _index_list(rows, "rows"),
                                 _index_list(heads, "heads"), bool(keep_scores), int(threads)))


def backward(cfg, inputs, do, precision="f64", rows=None, keys=None, query_grads=True,
             key_grads=True, phi_params=True, threads=0):
    """The reference backward for the upstream gradient `do` = dL/do [total_q, h_q, d_v]: Gradients
    of dq/dg over `rows` (default all) and of dK/dV over `keys` (key tokens, default all); the phi
    parameter gradients sum over every block. query_grads=False skips dq and dg, key_grads=False
    dK, dV and phi's, phi_params=False phi's. The selected indices are constants."""
    cfg = _config(cfg)
    arrays = prepare_inputs(cfg, inputs)
    batch = cfg.batch if cfg.layout == "padded" else None
    d_o = as_float64(do, "do", (cfg.total_q, cfg.h_q, cfg.d_v), batch)
    return Gradients(_core.backward(cfg._vc, arrays, d_o, _precision(precision),
                                    _index_list(rows, "rows"), _index_list(keys, "keys"),
                                    bool(query_grads), bool(key_grads), bool(phi_params),
                                    int(threads)))
