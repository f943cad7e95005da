#!/usr/bin/env python3
"""A second, independent NSA forward and backward in plain numpy, and a checker of golden files.

Written from docs/semantics.md and golden/SCHEMA.md only: it reads every case of the given golden
files, computes every branch in float64 from the stored inputs, and judges its own outputs against
the stored truth with the tolerance rule; where a case holds gradients (schema 2), also its own
backward (nsa_numpy_grad.py) for the stored dO against expected/grad/. It is also the worked
example for authors of other implementations: replace `forward_case` / `backward_case` by calls
into your own code.

    python3 nsa_numpy.py golden/data/*.h5        exit 0 = every case passed, 1 = a failure,
                                                  2 = a file it cannot check (schema version),
                                                  77 = h5py or numpy missing (test skipped)
    python3 nsa_numpy.py --candidate OUT.h5 GOLDEN.h5
        also writes its outputs (o* in the case dtype, lse in fp32, indices; gradients in the case
        dtype under outputs/grad/) as a candidate file for `nsa golden check GOLDEN.h5 OUT.h5`:
        how another implementation reports results.
    python3 nsa_numpy.py --judge CANDIDATE.h5 GOLDEN.h5 [--alpha A] [--beta B]
        judges another implementation's candidate file (golden/SCHEMA.md, "Candidate files")
        with the same rule, without running the forward; exit codes as `nsa golden check`:
        0 = every case it holds passed, 1 = a candidate tensor failed, 2 = nothing was judged.
        Rows whose index lists differ within ties are judged by the index rule alone (their
        o_slc, lse_slc and o are not re-judged here; `nsa golden check` does that); gradients
        are judged against the truth's (`nsa golden check` re-judges them with the candidate's
        own indices).
"""
import math
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - the ctest treats 77 as "skipped"
    print(f"skipping: {e}")
    sys.exit(77)

from nsa_numpy_grad import backward_case  # noqa: E402 (after the skip check)

# 2 added the backward (inputs/do, expected/grad/), 3 given compressed caches (cmp_given)
SUPPORTED_SCHEMA = (1, 2, 3)
# (mantissa bits, minimum normal exponent) of each dtype, for ulp().
FORMATS = {"fp32": (23, -126), "fp16": (10, -14), "bf16": (7, -126), "fp64": (52, -1022)}


# ---- reading ------------------------------------------------------------------------------------

def read_float(ds):
    """A float dataset as float64; bf16 is decoded from its raw bits (h5py would map it to fp16)."""
    if ds.attrs.get("dtype") == "bf16":
        bits = np.empty(ds.shape, np.uint16)
        if bits.size:
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=ds.id.get_type())
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return ds[()].astype(np.float64)


def attr(group, name):
    v = group.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


class Case:
    def __init__(self, g):
        self.name = g.name.split("/")[-1]
        for key in ("h_q", "h_kv", "d_k", "d_v", "cmp_block", "cmp_stride", "slc_block", "top_n",
                    "n_init", "n_local", "window", "phi_hidden", "total_q", "total_k"):
            setattr(self, key, int(g.attrs[key]))
        for key in ("phi", "phi_act", "dtype", "cmp_visibility", "score_mapping", "group_reduce",
                    "forced_mode", "tie_break", "slc_causal", "index_policy", "window_keys"):
            setattr(self, key, attr(g, key))
        # top_n is the count to select, already rounded under topn_rounding next_power_of_two
        # (fla's parallel_nsa); files from before the knob lack the attribute (none).
        self.topn_rounding = attr(g, "topn_rounding") if "topn_rounding" in g.attrs else "none"
        if self.topn_rounding == "next_power_of_two" and self.top_n & (self.top_n - 1):
            raise ValueError(f"case {self.name}: top_n = {self.top_n} is not a power of two "
                             "under topn_rounding next_power_of_two")
        self.scale = float(g.attrs["scale"])
        self.enabled = {b: bool(g.attrs["enable_" + b]) for b in ("cmp", "slc", "win")}
        self.given = bool(g.attrs["given_indices"])
        self.group = self.h_q // self.h_kv
        inp = g["inputs"]
        self.q = read_float(inp["q"])
        # A given compressed cache (schema 3, cmp_given = 1) replaces K_cmp/V_cmp and phi: the
        # blocks of sequence s start at row sum of N_c over the sequences before it.
        self.cmp_given = bool(g.attrs.get("cmp_given", 0))
        self.k = {b: read_float(inp["k_" + b]) for b in ("cmp", "slc", "win") if "k_" + b in inp}
        self.v = {b: read_float(inp["v_" + b]) for b in ("cmp", "slc", "win") if "v_" + b in inp}
        self.k_tilde = read_float(inp["k_tilde"]) if self.cmp_given else None
        self.v_tilde = read_float(inp["v_tilde"]) if self.cmp_given else None
        self.gate = {b: read_float(inp["g_" + b]) for b in ("cmp", "slc", "win")}
        self.phi_k = {n[6:]: read_float(inp[n]) for n in inp if n.startswith("phi_k_")}
        self.phi_v = {n[6:]: read_float(inp[n]) for n in inp if n.startswith("phi_v_")}
        self.cu_q = inp["cu_seqlens_q"][()].astype(np.int64)
        self.cu_k = inp["cu_seqlens_k"][()].astype(np.int64)
        self.given_indices = inp["indices"][()] if self.given else None
        self.expected = {n: d for n, d in g["expected"].items() if isinstance(d, h5py.Dataset)}
        # The backward (schema 2, backward = 1): dO and the truth's gradients.
        self.shared_kv = bool(g.attrs["shared_kv"])
        self.has_grad = bool(g.attrs.get("backward", 0)) and "grad" in g["expected"]
        self.do = read_float(inp["do"]) if self.has_grad else None
        self.expected_grad = dict(g["expected"]["grad"].items()) if self.has_grad else {}
        # Position t of every packed query row inside its sequence (queries are the last T_q).
        self.pos = np.zeros(self.total_q, np.int64)
        for s in range(len(self.cu_k) - 1):
            t_k, t_q = self.cu_k[s + 1] - self.cu_k[s], self.cu_q[s + 1] - self.cu_q[s]
            self.pos[self.cu_q[s]:self.cu_q[s + 1]] = np.arange(t_k - t_q, t_k)


# ---- the NSA forward ----------------------------------------------------------------------------

def attend(q, keys, values, scale):
    """Softmax attention of the query rows q [G, D] over keys/values [S, .]; empty set -> 0, -inf."""
    if keys.shape[0] == 0:
        return np.zeros((q.shape[0], values.shape[1])), np.full(q.shape[0], -np.inf), None
    z = scale * (q @ keys.T)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    p = e / s
    return p @ values, (m + np.log(s))[:, 0], p


def phi(x_block, params, kind, act, g):
    """Compress one block X [l, D] of KV head g."""
    if kind == "mean":
        return x_block.mean(axis=0)
    vec = (x_block + params["pos"][g]).reshape(-1)  # token-major
    if kind == "linear":
        return vec @ params["w1"][g]
    hidden = vec @ params["w1"][g] + params["b1"][g]
    hidden = np.maximum(hidden, 0) if act == "relu" else hidden / (1 + np.exp(-hidden))
    return hidden @ params["w2"][g] + params["b2"][g]


def visible(c, t):
    """Number of compressed blocks query position t sees."""
    last = t + 1 if c.cmp_visibility == "inclusive" else t  # block's last token must be < last
    return 0 if last < c.cmp_block else (last - c.cmp_block) // c.cmp_stride + 1


def map_scores(c, p, n_vis, n_cand):
    """Selection-block scores of one head from its compression weights p[0:n_vis]."""
    def pc(i):
        return p[i] if 0 <= i < n_vis else 0.0
    ratio, span = c.slc_block // c.cmp_stride, c.cmp_block // c.cmp_stride
    out = np.zeros(n_cand)
    for j in range(n_cand):
        if c.score_mapping == "identity":
            out[j] = pc(j)
        elif c.score_mapping == "overlap":
            out[j] = sum(pc(j * ratio + b - m) for b in range(ratio) for m in range(span))
        else:  # paper_eq9
            out[j] = sum(pc(ratio * j - m - n) for m in range(ratio) for n in range(span))
    return out


def forced_set(c, t, n_cand):
    cur = t // c.slc_block
    return {j for j in range(n_cand) if j < c.n_init or cur - c.n_local < j <= cur}


def top_n(c, scores, forced):
    """Selected blocks, ascending."""
    n_cand = len(scores)
    order_key = (lambda j: (-scores[j], j)) if c.tie_break == "lower_index_first" else \
        (lambda j: (-scores[j], -j))
    take = min(c.top_n, n_cand)
    if c.forced_mode == "always":
        chosen = sorted(forced)[:take]
        free = sorted((j for j in range(n_cand) if j not in forced), key=order_key)
        chosen += free[: take - len(chosen)]
    else:
        chosen = sorted(range(n_cand), key=order_key)[:take]
    return sorted(chosen)


def given_blocks(c, row_list, t):
    """Blocks of a given index list under index_policy (a list; repeats kept for multiset).
    negative_to_zero reads a negative entry as block 0."""
    cur = t // c.slc_block
    entries = [int(j) for j in row_list]
    if c.index_policy == "negative_to_zero":
        entries = [0 if j < 0 else j for j in entries]
    valid = [j for j in entries if 0 <= j <= cur]
    if c.index_policy == "multiset":
        return valid
    return sorted(set(valid))


def forward_case(c):
    out = {}
    nq, hq, hkv, G = c.total_q, c.h_q, c.h_kv, c.group
    nc_max = c.expected["p_cmp"].shape[2] if "p_cmp" in c.expected else 0
    ns_max = c.expected["scores"].shape[2] if "scores" in c.expected else 0
    for b in ("cmp", "slc", "win"):
        out["o_" + b] = np.zeros((nq, hq, c.d_v))
        out["lse_" + b] = np.full((nq, hq), -np.inf)
    out["p_cmp"] = np.zeros((nq, hq, nc_max))
    out["scores"] = np.full((nq, hkv, ns_max), -np.inf)
    out["indices"] = np.full((nq, hkv, c.top_n), -1, np.int32)
    need_cmp = c.enabled["cmp"] or (c.enabled["slc"] and not c.given)
    c0 = 0  # first row of the sequence's blocks in a given compressed cache
    for s in range(len(c.cu_k) - 1):
        k0, k1, q0, q1 = c.cu_k[s], c.cu_k[s + 1], c.cu_q[s], c.cu_q[s + 1]
        t_k, t_q = k1 - k0, q1 - q0
        n_c = 0 if t_k < c.cmp_block else (t_k - c.cmp_block) // c.cmp_stride + 1
        for g in range(hkv):
            heads = slice(g * G, (g + 1) * G)
            K = {b: c.k[b][k0:k1, g] for b in c.k}
            V = {b: c.v[b][k0:k1, g] for b in c.v}
            if c.cmp_given:
                kc, vc = c.k_tilde[c0:c0 + n_c, g], c.v_tilde[c0:c0 + n_c, g]
            else:
                starts = [i * c.cmp_stride for i in range(n_c)]
                kc = np.array([phi(K["cmp"][a:a + c.cmp_block], c.phi_k, c.phi, c.phi_act, g)
                               for a in starts]).reshape(n_c, c.d_k)
                vc = np.array([phi(V["cmp"][a:a + c.cmp_block], c.phi_v, c.phi, c.phi_act, g)
                               for a in starts]).reshape(n_c, c.d_v)
            for i in range(t_q):
                row, t = q0 + i, t_k - t_q + i
                q = c.q[row, heads]
                if need_cmp:
                    nv = visible(c, t)
                    o, lse, p = attend(q, kc[:nv], vc[:nv], c.scale)
                    if c.enabled["cmp"]:
                        out["o_cmp"][row, heads], out["lse_cmp"][row, heads] = o, lse
                    if p is not None:
                        out["p_cmp"][row, heads, :nv] = p
                if c.enabled["slc"]:
                    n_cand = t // c.slc_block + 1
                    if c.given:
                        blocks = given_blocks(c, c.given_indices[row, g], t)
                    else:
                        nv = visible(c, t)
                        forced = forced_set(c, t, n_cand)
                        per_head = []
                        for h in range(G):
                            ps = map_scores(c, out["p_cmp"][row, g * G + h], nv, n_cand)
                            if c.forced_mode == "score_one":
                                ps[list(forced)] = 1.0
                            per_head.append(ps)
                        P = np.sum(per_head, axis=0)
                        if c.group_reduce == "mean":
                            P = P / G
                        blocks = top_n(c, P, forced)
                        out["scores"][row, g, :n_cand] = P
                        out["indices"][row, g, :len(blocks)] = blocks
                    end = t + 1 if c.slc_causal == "token" else t_k
                    keys = [u for j in blocks
                            for u in range(j * c.slc_block, min((j + 1) * c.slc_block, end))]
                    o, lse, _ = attend(q, K["slc"][keys], V["slc"][keys], c.scale)
                    out["o_slc"][row, heads], out["lse_slc"][row, heads] = o, lse
                if c.enabled["win"]:
                    span = c.window if c.window_keys == "w" else c.window + 1
                    lo = max(0, t - span + 1)
                    o, lse, _ = attend(q, K["win"][lo:t + 1], V["win"][lo:t + 1], c.scale)
                    out["o_win"][row, heads], out["lse_win"][row, heads] = o, lse
        c0 += n_c
    out["o"] = sum(c.gate[b][..., None] * out["o_" + b] for b in ("cmp", "slc", "win")
                   if c.enabled[b])
    return out


# ---- the tolerance rule -------------------------------------------------------------------------

OUTPUTS = ("o_cmp", "lse_cmp", "o_slc", "lse_slc", "o_win", "lse_win", "o")


def ulp(x, dtype):
    mant, emin = FORMATS[dtype]
    e = emin
    if x > 0 and math.isfinite(x):
        e = max(math.frexp(x)[1] - 1, emin)
    return math.ldexp(1.0, e - mant)


def check_tensor(name, mine, ds, alpha, beta, skip=None):
    """Returns (ok, message) for one tensor; `skip` masks elements judged elsewhere."""
    truth = ds[()]
    bound = alpha * float(ds.attrs["baseline_max_abs_err"]) + \
        beta * ulp(float(np.max(np.abs(truth[np.isfinite(truth)]), initial=0.0)),
                   attr(ds, "ulp_dtype"))
    if mine.shape != truth.shape:
        return False, f"{name}: shape {mine.shape}, expected {truth.shape}"
    keep = np.ones(truth.shape, bool) if skip is None else ~skip
    if np.isnan(mine[keep]).any():
        return False, f"{name}: NaN (unwritten or invalid)"
    inf_t = np.isinf(truth) & keep
    if (mine[inf_t] != truth[inf_t]).any():
        return False, f"{name}: infinities differ from the truth (-inf exactly where it is -inf)"
    fin = np.isfinite(truth) & keep
    if np.isinf(mine[fin]).any():
        return False, f"{name}: Inf where the truth is finite"
    err = float(np.max(np.abs(mine[fin] - truth[fin]), initial=0.0))
    return err <= bound, f"{name}: max err {err:.3g} bound {bound:.3g}"


def index_list_problem(c, lst, t):
    """Why one (row, kv head) index list is not well formed, or None: strictly ascending
    candidate blocks 0 <= j <= t // l', then -1 padding, exactly min(n, candidates) entries."""
    n_cand = t // c.slc_block + 1
    real = lst[lst != -1]
    k = len(real)
    if (lst[k:] != -1).any() or (lst[:k] == -1).any():
        return "an entry after -1 padding"
    if ((real < 0) | (real >= n_cand)).any():
        return f"not a candidate block (0..{n_cand - 1}): {real.tolist()}"
    if (np.diff(real) <= 0).any():
        return f"not strictly ascending: {real.tolist()}"
    if k != min(c.top_n, n_cand):
        return f"{k} blocks selected, expected {min(c.top_n, n_cand)}"
    return None


def check_indices(c, mine, alpha, beta):
    """Tie-aware index check; returns (ok, message, mask of (row, kv head) pairs that differ)."""
    truth = c.expected["indices"][()]
    if mine.shape != truth.shape:
        return False, f"indices: shape {mine.shape}, expected {truth.shape}", None
    scores_ds = c.expected["scores"]
    scores = scores_ds[()]
    fin = np.isfinite(scores)
    delta = alpha * float(scores_ds.attrs["baseline_max_abs_err"]) + \
        beta * ulp(float(np.max(np.abs(scores[fin]), initial=0.0)), "fp32")
    for row in range(truth.shape[0]):
        for g in range(truth.shape[1]):
            why = index_list_problem(c, mine[row, g], int(c.pos[row]))
            if why:
                return False, f"indices: row {row} (t {c.pos[row]}) kv head {g}: {why}", None
    differ = np.zeros(truth.shape[:2], bool)
    for row, g in zip(*np.nonzero((mine != truth).any(axis=2))):
        differ[row, g] = True
        a = set(truth[row, g][truth[row, g] >= 0].tolist())
        b = set(mine[row, g][mine[row, g] >= 0].tolist())
        t = int(c.pos[row])
        if c.forced_mode == "always":
            missing = forced_set(c, t, t // c.slc_block + 1) - b
            if missing:
                return False, f"indices: row {row} (t {t}) kv head {g}: forced block " \
                    f"{min(missing)} missing", differ
        for x in a - b:
            for y in b - a:
                if scores[row, g, x] - scores[row, g, y] > delta:
                    return False, f"indices: row {row} kv head {g}: block {y} chosen over " \
                        f"{x} (truth score gap {scores[row, g, x] - scores[row, g, y]:.3g} > " \
                        f"delta {delta:.3g})", differ
    return True, f"indices: {int(differ.sum())} (row, kv head) lists differ within ties", differ


def judge(c, mine, alpha, beta, names=None):
    """Judges the tensors `mine` (name -> array) of case c against its expected/ datasets.
    names: the tensors to judge (default: every expected tensor); a name absent from `mine` is
    reported as not checked. Returns (failures, notes, not_checked)."""
    failures, notes, not_checked = [], [], []
    if names is None:
        names = [n for n in c.expected if n != "score_gap"]
    names = [n for n in names if n in c.expected]
    differ = None
    if "indices" in names:
        if "indices" in mine:
            ok, msg, differ = check_indices(c, mine["indices"], alpha, beta)
            (notes if ok else failures).append(msg)
        else:
            not_checked.append("indices")
    for name in names:
        if name == "indices":
            continue
        if name not in mine:
            not_checked.append(name)
            continue
        skip = None
        if differ is not None and differ.any() and name in ("o_slc", "lse_slc", "o"):
            # Rows whose selection differs within ties are judged by the index rule alone.
            skip = np.repeat(differ, c.group, axis=1)
            if name != "lse_slc":
                skip = np.repeat(skip[..., None], c.d_v, axis=2)
        ok, msg = check_tensor(name, mine[name], c.expected[name], alpha, beta, skip)
        (notes if ok else failures).append(msg)
    return failures, notes, not_checked


def check_case(c, mine, alpha, beta):
    """The numpy forward's own outputs, every expected tensor (p_cmp and scores included)."""
    failures, notes, _ = judge(c, mine, alpha, beta)
    return failures, notes


def forward_selection(c):
    """The index lists the case's forward used: expected/indices when computed, else the given
    lists (zeros of the right shape when the selection branch is off)."""
    if "indices" in c.expected:
        return c.expected["indices"][()]
    if c.given:
        return c.given_indices
    return np.full((c.total_q, c.h_kv, c.top_n), -1, np.int32)


def judge_grads(c, grads, alpha, beta):
    """Judges gradient arrays (name -> array) against expected/grad/; returns (failures, notes,
    not_checked). A name the case does not have is a failure."""
    failures, notes, not_checked = [], [], []
    for name in grads:
        if name not in c.expected_grad:
            failures.append(f"grad/{name}: not a gradient of this case")
    for name, ds in c.expected_grad.items():
        if name not in grads:
            not_checked.append("grad/" + name)
            continue
        ok, msg = check_tensor("grad/" + name, grads[name], ds, alpha, beta)
        (notes if ok else failures).append(msg)
    return failures, notes, not_checked


# ---- reading a candidate file -------------------------------------------------------------------

def schema_float(ds):
    """The schema's name of a float dataset's type (fp16, bf16, fp32, fp64), or None."""
    t = ds.id.get_type()
    if t.get_class() != h5py.h5t.FLOAT:
        return None
    size, (spos, epos, esize, mpos, msize), ebias = t.get_size(), t.get_fields(), t.get_ebias()
    known = {(8, 52, 11): "fp64", (4, 23, 8): "fp32", (2, 10, 5, 15): "fp16",
             (2, 7, 8, 127): "bf16"}
    return known.get((size, msize, esize, ebias) if size == 2 else (size, msize, esize))


def read_output(ds, name):
    """A candidate's output tensor as float64 (indices as int32), or a string saying why not."""
    if name == "indices":
        t = ds.id.get_type()
        if t.get_class() != h5py.h5t.INTEGER or t.get_size() != 4 or \
                t.get_sign() != h5py.h5t.SGN_2:
            return f"indices: type {ds.dtype}, expected int32"
        return ds[()].astype(np.int32)
    kind = schema_float(ds)
    if kind is None:
        return f"{name}: type {ds.dtype}, expected a float type (fp32, fp64, fp16, bf16)"
    if kind == "bf16":
        bits = np.empty(ds.shape, np.uint16)
        if bits.size:
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=ds.id.get_type())
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return ds[()].astype(np.float64)


def judge_file(cand_path, c, f_cand, alpha, beta):
    """(failures, notes, not_checked) of golden case c against the candidate file, or None when
    the file holds no outputs for it."""
    grp = f_cand.get(f"cases/{c.name}")
    if grp is None:
        return None
    grp = grp.get("outputs", grp.get("expected"))
    if grp is None:
        return None
    mine, failures = {}, []
    names = [n for n in OUTPUTS + ("indices",) if n in c.expected]
    for name in names:
        if name in grp:
            x = read_output(grp[name], name)
            if isinstance(x, str):
                failures.append(x)
            else:
                mine[name] = x
    grads = {}
    for name, ds in grp.get("grad", {}).items():
        x = read_output(ds, "grad/" + name)
        if isinstance(x, str):
            failures.append(x)
        else:
            grads[name] = x
    if not mine and not grads and not failures:
        return None
    bad, notes, not_checked = judge(c, mine, alpha, beta, names) if mine or failures else \
        ([], [], list(names))
    if c.has_grad:
        gbad, gnotes, gnot = judge_grads(c, grads, alpha, beta)
        bad, notes, not_checked = bad + gbad, notes + gnotes, not_checked + gnot
    elif grads:
        not_checked += ["grad/" + n for n in grads]  # the golden case holds no gradients
    rejected = {m.split(":")[0] for m in failures}
    return failures + bad, notes, [n for n in not_checked if n not in rejected]


# ---- writing a candidate file for `nsa golden check` -------------------------------------------

def bf16_type():
    """The schema's bfloat16 HDF5 type: binary32 layout cut to 16 bits."""
    t = h5py.h5t.IEEE_F32LE.copy()
    t.set_fields(15, 7, 8, 0, 7)
    t.set_precision(16)
    t.set_size(2)
    t.set_ebias(127)
    return t


def write_output(group, name, x, dtype):
    """Stores an output tensor in the implementation's own dtype, as a kernel would return it."""
    if dtype == "bf16":
        f32 = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        bits = ((f32 + 0x7FFF + ((f32 >> 16) & 1)) >> 16).astype(np.uint16)  # nearest-even
        t = bf16_type()
        ds = h5py.h5d.create(group.id, name.encode(), t, h5py.h5s.create_simple(bits.shape))
        if bits.size:
            ds.write(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=t)
    else:
        group.create_dataset(name, data=x.astype(np.float16 if dtype == "fp16" else np.float32))


def write_candidate(out, results):
    """results: [(case, outputs, gradients or None)] -> /cases/<name>/outputs/<tensor> and
    outputs/grad/<gradient> in the case dtype (golden/SCHEMA.md)."""
    with h5py.File(out, "w") as f:
        for c, mine, grads in results:
            g = f.create_group(f"cases/{c.name}/outputs")
            for name in c.expected:
                if name.startswith("o"):
                    write_output(g, name, mine[name], c.dtype)
                elif name.startswith("lse_"):
                    g.create_dataset(name, data=mine[name].astype(np.float32))
                elif name == "indices":
                    g.create_dataset(name, data=mine[name].astype(np.int32))
            if grads:
                gg = g.create_group("grad")
                for name, x in grads.items():
                    write_output(gg, name, x, c.dtype)


def judge_main(argv):
    """--judge CANDIDATE.h5 GOLDEN.h5 [--alpha A] [--beta B]; exit 0 / 1 / 2 as nsa golden check."""
    opts, paths, i = {}, [], 0
    while i < len(argv):
        if argv[i] in ("--alpha", "--beta") and i + 1 < len(argv):
            try:
                opts[argv[i]] = float(argv[i + 1])
            except ValueError:
                print(f"{argv[i]} = '{argv[i + 1]}': expected a number")
                return 2
            i += 2
        else:
            paths.append(argv[i])
            i += 1
    if len(paths) != 2 or any(v < 0 for v in opts.values()):
        print(__doc__)
        return 2
    cand_path, golden_path = paths
    passed = failed = missing = tensors = 0
    try:
        with h5py.File(golden_path, "r") as f, h5py.File(cand_path, "r") as fc:
            version = int(f.attrs["schema_version"])
            if version not in SUPPORTED_SCHEMA:
                print(f"{golden_path}: schema_version {version}, this checker reads "
                      f"{SUPPORTED_SCHEMA}: nothing judged")
                return 2
            alpha = opts.get("--alpha", float(f.attrs["tolerance_alpha"]))
            beta = opts.get("--beta", float(f.attrs["tolerance_beta"]))
            for name in f["cases"]:
                c = Case(f["cases"][name])
                r = judge_file(cand_path, c, fc, alpha, beta)
                if r is None:
                    print(f"{name}: not checked (no outputs in {cand_path})")
                    missing += 1
                    continue
                bad, notes, not_checked = r
                tensors += len(bad) + len(notes)
                print(f"{name}: {'FAIL' if bad else 'pass'}")
                for m in bad:
                    print(f"    FAIL {m}")
                for m in not_checked:
                    print(f"    --   {m}: not checked")
                if bad:
                    failed += 1
                else:
                    passed += 1
    except (OSError, KeyError, ValueError, TypeError) as e:
        print(f"cannot judge: {e}")
        return 2
    print(f"\n{passed} cases passed, {failed} failed, {missing} not checked; {tensors} tensors "
          f"checked (alpha {alpha:g}, beta {beta:g})")
    if failed:
        return 1
    return 0 if tensors else 2


def main(argv):
    if argv and argv[0] == "--judge":
        return judge_main(argv[1:])
    candidate = None
    if len(argv) >= 2 and argv[0] == "--candidate":
        candidate, argv = argv[1], argv[2:]
    paths = argv
    if not paths or (candidate and len(paths) != 1):
        print(__doc__)
        return 2
    results = []
    total, failed, grad_total, grad_failed = 0, 0, 0, 0
    for path in paths:
        with h5py.File(path, "r") as f:
            version = int(f.attrs["schema_version"])
            if version not in SUPPORTED_SCHEMA:
                print(f"{path}: schema_version {version}, this checker reads {SUPPORTED_SCHEMA}")
                return 2
            alpha = float(f.attrs["tolerance_alpha"])
            beta = float(f.attrs["tolerance_beta"])
            for name in f["cases"]:
                c = Case(f["cases"][name])
                mine = forward_case(c)
                failures, notes = check_case(c, mine, alpha, beta)
                grads = None
                if c.has_grad:
                    grads = backward_case(c, forward_selection(c))
                    gfail, _, _ = judge_grads(c, grads, alpha, beta)
                    grad_total += 1
                    grad_failed += bool(gfail)
                    failures += gfail
                results.append((c, mine, grads))
                total += 1
                status = "FAIL" if failures else "pass"
                print(f"{path}: {name}: {status}" + (" (forward and backward)" if grads else ""))
                for m in failures:
                    print(f"    FAIL {m}")
                failed += bool(failures)
            if candidate:
                write_candidate(candidate, results)
                print(f"wrote the numpy outputs to {candidate} (check: nsa golden check "
                      f"{path} {candidate})")
    print(f"\nnumpy NSA: {total - failed}/{total} cases within tolerance; backward on "
          f"{grad_total} of them, {grad_total - grad_failed} within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
