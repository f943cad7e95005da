"""Configs: `config(x)` builds a validated Config from a dict, JSON text, a file or a profile name
(docs/config-format.md); every rule is checked by the C++ validate(), and a broken one raises
ConfigError with .field, .value and .rule."""

import json
import os

from . import _core
from ._errors import ConfigError

__all__ = ["Config", "config", "profiles"]


def profiles():
    """The profile names: canonical, fla, nsa_triton, custom."""
    return list(_core.profile_names())


class Config:
    """A validated NSA config. Every field of docs/config-format.md is an attribute (normalized:
    `scale`, `t_q` and both cu_seqlens are filled in), plus what validation derives: total_q,
    total_k, group, max_t_k, max_cmp_blocks, max_slc_blocks and sequences (q_begin, k_begin, t_q,
    t_k). Immutable; `replace(**fields)` gives a new validated one."""

    __slots__ = ("_vc", "_fields")

    def __init__(self, valid):
        object.__setattr__(self, "_vc", valid)
        object.__setattr__(self, "_fields", json.loads(valid.json))

    def __getattr__(self, name):
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            value = fields[name]
            return list(value) if isinstance(value, list) else value
        raise AttributeError(f"Config has no field '{name}' (fields: {', '.join(fields)})")

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable: use config.replace(**fields)")

    def __dir__(self):
        return sorted(set(object.__dir__(self)) | set(self._fields))

    # Derived by validate().
    total_q = property(lambda self: self._vc.total_q)
    total_k = property(lambda self: self._vc.total_k)
    group = property(lambda self: self._vc.group)
    max_t_k = property(lambda self: self._vc.max_t_k)
    max_cmp_blocks = property(lambda self: self._vc.max_cmp_blocks)
    max_slc_blocks = property(lambda self: self._vc.max_slc_blocks)
    sequences = property(lambda self: list(self._vc.sequences))

    @property
    def scale(self):
        return self._vc.scale

    def branches(self):
        """The enabled branches, of "cmp", "slc", "win"."""
        return [b for b in ("cmp", "slc", "win") if self._fields["enable_" + b]]

    def to_dict(self):
        return json.loads(self._vc.json)

    def to_json(self):
        return self._vc.json

    def replace(self, **fields):
        """A new validated config with `fields` changed. What validation filled in (t_q = t_k,
        the padded layout's cu_seqlens, the default scale 1/sqrt(d_k), cu_seqlens_q = cu_seqlens_k)
        is left to be derived again, so that replace(t_k=...) or replace(d_k=...) stays
        consistent."""
        d = self.to_dict()
        if d["layout"] == "padded":
            d["cu_seqlens_k"], d["cu_seqlens_q"] = [], []
            if d["t_q"] == d["t_k"]:
                d["t_q"] = -1
        elif d["cu_seqlens_q"] == d["cu_seqlens_k"]:
            d["cu_seqlens_q"] = []
        if d["scale"] is not None and abs(d["scale"] * d["d_k"] ** 0.5 - 1) < 1e-15:
            d["scale"] = None
        d.update(fields)
        return config(d)

    def input_shapes(self):
        """{input name: shape} of every tensor this config reads (golden/SCHEMA.md, inputs/)."""
        return dict(self._vc.input_shapes())

    def output_shapes(self):
        """{name: shape} of the forward's outputs over every row (golden/SCHEMA.md, expected/)."""
        return dict(self._vc.output_shapes())

    def grad_shapes(self):
        """{name: shape} of the gradients over every row and key (expected/grad/)."""
        return dict(self._vc.grad_shapes())

    def describe(self):
        return self._vc.describe()

    def __eq__(self, other):
        return isinstance(other, Config) and self._fields == other._fields

    def __hash__(self):
        return hash(self._vc.json)

    def __repr__(self):
        f = self._fields
        shape = (f"t_k={f['t_k']}, batch={f['batch']}" if f["layout"] == "padded"
                 else f"cu_seqlens_k={f['cu_seqlens_k']}")
        return (f"Config(profile={f['profile']!r}, {shape}, h_q={f['h_q']}, h_kv={f['h_kv']}, "
                f"d_k={f['d_k']}, d_v={f['d_v']}, dtype={f['dtype']!r}, "
                f"branches={'+'.join(self.branches())})")


def _json_default(x):
    # numpy scalars and arrays (cu_seqlens as an array) in a config dict.
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not a config value")


def _from_dict(d):
    try:
        text = json.dumps(d, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config: {e}", "<json>", repr(d), str(e)) from None
    return Config(_core.validate_json(text))


def config(x=None, **fields):
    """A validated Config from:

    - a Config (returned as is, or with `fields` replaced),
    - a dict of config fields (docs/config-format.md), a "profile" key applied first,
    - JSON text of such an object,
    - a path to a JSON config file,
    - a profile name ("canonical", "fla", "nsa_triton", "custom"),
    - nothing: the defaults (profile canonical).

    Keyword arguments override fields: config("fla", t_k=256, h_q=4). A broken rule raises
    ConfigError (a ValueError) with .field, .value and .rule; a path that does not exist raises
    FileNotFoundError."""
    if isinstance(x, Config):
        return x.replace(**fields) if fields else x
    if x is None:
        return _from_dict(fields)
    if isinstance(x, dict):
        return _from_dict({**x, **fields})
    if isinstance(x, (str, os.PathLike)):
        text = os.fspath(x)
        if isinstance(text, bytes):
            text = text.decode()
        stripped = text.strip()
        if stripped.startswith("{"):
            if not fields:
                return Config(_core.validate_json(stripped))
            try:
                d = json.loads(stripped)
            except json.JSONDecodeError:
                return Config(_core.validate_json(stripped))  # the C++ parser's message
            return _from_dict({**d, **fields})
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as f:
                body = f.read()
            return config(body, **fields) if body.strip().startswith("{") else Config(
                _core.validate_json(body))
        looks_like_path = os.sep in text or text.endswith(".json")
        if looks_like_path:
            raise FileNotFoundError(f"config file {text!r} does not exist")
        # A profile name; unknown names raise ConfigError(field "profile") from the C++.
        base = json.loads(_core.profile_json(text))
        return _from_dict({**base, **fields})
    raise TypeError(f"config(): expected a dict, JSON text, a path or a profile name, "
                    f"got {type(x).__name__}")
