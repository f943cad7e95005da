"""Array-likes in and out: numpy arrays, torch tensors (never imported here; recognized by type),
objects with __dlpack__ or __array__. Inputs become C-contiguous float64 (int32 for index lists)
after their name, dtype and shape are checked, so the extension receives exactly what it expects
and an error names the tensor."""

import numpy as np

# What each dataset's dimensions are (golden/SCHEMA.md), for error messages.
_LEGENDS = {
    "q": "[total_q, h_q, d_k]", "k": "[total_k, h_kv, d_k]", "v": "[total_k, h_kv, d_v]",
    "g": "[total_q, h_q]", "indices": "[total_q, h_kv, top_n]", "do": "[total_q, h_q, d_v]",
    "o": "[rows, h_q, d_v]", "lse": "[rows, h_q]", "p_cmp": "[rows, h_q, num_cmp_blocks_max]",
    "scores": "[rows, h_kv, num_slc_blocks_max]", "score_gap": "[rows, h_kv]",
    "dq": "[rows, h_q, d_k]", "dk": "[keys, h_kv, d_k]", "dv": "[keys, h_kv, d_v]",
    "dg": "[rows, h_q]", "k_tilde": "[total_cmp, h_kv, d_k]", "v_tilde": "[total_cmp, h_kv, d_v]",
    "dk_tilde": "[total_cmp, h_kv, d_k]", "dv_tilde": "[total_cmp, h_kv, d_v]",
}

# Float dtypes of the cases (golden/SCHEMA.md, inputs/) as numpy stores them; bf16 as raw bits.
STORED_NUMPY = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16, "fp64": np.float64}
TORCH_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64"}


def legend(name):
    head = name.split("_")[0]
    text = _LEGENDS.get(name) or _LEGENDS.get(head)
    return f" = {text}" if text else ""


def is_torch(x):
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def host_array(x, name):
    """x as a numpy array on the host (a torch bfloat16 tensor widened to float32, exactly)."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    if hasattr(x, "__dlpack__") and not hasattr(x, "__array__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError) as e:
            raise TypeError(f"{name}: cannot read {type(x).__name__} through DLPack: {e}") from e
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: {type(x).__name__} is not an array ({e})") from e


def _fit_shape(a, name, shape, batch):
    shape = tuple(int(d) for d in shape)
    if a.shape == shape:
        return a
    # A padded batch may come as [batch, t, ...] instead of packed [batch * t, ...].
    if (batch and len(shape) >= 1 and a.ndim == len(shape) + 1 and a.shape[0] == batch
            and a.shape[0] * a.shape[1] == shape[0] and a.shape[2:] == shape[1:]):
        return a.reshape(shape)
    raise ValueError(f"{name}: shape {a.shape}, expected {shape}{legend(name)}")


def as_float64(x, name, shape, batch=None):
    """x as a C-contiguous float64 array of `shape` (exact for fp16/bf16/fp32/fp64 values)."""
    a = host_array(x, name)
    if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        raise TypeError(f"{name}: dtype {a.dtype}, expected a floating-point array "
                        f"(float16, bfloat16, float32 or float64)")
    a = _fit_shape(a, name, shape, batch)
    return np.ascontiguousarray(a, dtype=np.float64)


def as_int32(x, name, shape, batch=None):
    """x as a C-contiguous int32 array of `shape`; integer dtypes only, values within int32."""
    a = host_array(x, name)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: dtype {a.dtype}, expected an integer array (int32)")
    a = _fit_shape(a, name, shape, batch)
    if a.size and a.dtype.itemsize >= 4:
        info = np.iinfo(np.int32)
        bad = np.flatnonzero((a < info.min) | (a > info.max))
        if bad.size:
            where = tuple(int(i) for i in np.unravel_index(bad[0], a.shape))
            raise ValueError(f"{name}: element {list(where)} = {a.flat[bad[0]]} is outside int32")
    return np.ascontiguousarray(a, dtype=np.int32)


def to_stored(a, dtype):
    """A float64 array of values representable in `dtype` as numpy stores that dtype: float32,
    float16, float64, and bf16 as its raw uint16 bits (numpy has no bfloat16; the bits are the
    file's, `bits.view(ml_dtypes.bfloat16)` gives a typed array)."""
    if dtype == "bf16":
        return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return a.astype(STORED_NUMPY[dtype])


def bf16_bits_to_float32(bits):
    """Raw bfloat16 bits (uint16) as float32 values (exact)."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bf16 bits: dtype {bits.dtype}, expected uint16")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_torch(a, dtype, device=None):
    """A float64 (or int32) numpy array as a torch tensor in the case dtype (exact)."""
    import torch  # only where the caller asked for torch tensors

    t = torch.from_numpy(np.array(a, copy=True, order="C"))  # writable: torch wants to own it
    if a.dtype.kind == "f":
        t = t.to(getattr(torch, TORCH_DTYPE_NAMES[dtype]))
    return t.to(device) if device is not None else t
