#!/usr/bin/env python3
"""The numpy checker's judging side (golden/examples/nsa_numpy.py) fed wrong and right candidates:
for every rule it implements, a candidate that breaks exactly that rule by the smallest margin
must fail and the one just inside must pass. Bounds come from the stored attributes and a ulp
written here (not nsa_numpy.ulp). Where the `nsa` program is given, the file-level rows are
judged by `nsa golden check` too, which must agree on the exit status.

    test_numpy_judge.py SMOKE.h5 CANONICAL.h5 [NSA]     exit 0 all rows held, 1 a row failed,
                                                        77 h5py or numpy missing
"""
import contextlib
import io
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - ctest treats 77 as skipped
    print(f"skipping: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import nsa_numpy as nn  # noqa: E402

ALPHA, BETA = 3.0, 0.5  # alpha != beta: a mixed-up term shows
OUTPUTS = ("o_cmp", "lse_cmp", "o_slc", "lse_slc", "o_win", "lse_win", "o")
results = []


def spacing(x, dtype):
    """ulp_τ(x) = 2^(max(⌊log2 |x|⌋, e_min) − p), the exponent read from the float64 bits."""
    p, e_min = {"fp32": (23, -126), "fp16": (10, -14), "bf16": (7, -126), "fp64": (52, -1022)}[dtype]
    a = abs(x)
    e = e_min
    if a > 0 and math.isfinite(a):
        bits = struct.unpack("<Q", struct.pack("<d", a))[0]
        e = max(((bits >> 52) & 0x7FF) - 1023, e_min)
    return math.ldexp(1.0, e - p)


def bound_of(ds, alpha=ALPHA, beta=BETA):
    truth = ds[()]
    fin = truth[np.isfinite(truth)]
    top = float(np.max(np.abs(fin))) if fin.size else 0.0
    return alpha * float(ds.attrs["baseline_max_abs_err"]) + \
        beta * spacing(top, nn.attr(ds, "ulp_dtype"))


def just_outside(t, b):
    x = t + b
    while not abs(x - t) > b:
        x = math.nextafter(x, math.inf)
    return x


def just_inside(t, b):
    x = t + b
    while abs(x - t) > b:
        x = math.nextafter(x, -math.inf)
    return x


def truth_outputs(c):
    return {n: c.expected[n][()].astype(np.float64 if n != "indices" else np.int32)
            for n in OUTPUTS + ("indices",) if n in c.expected}


def record(rule, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {rule}" + (f"  [{detail}]" if detail and not ok else ""))


def expect(rule, c, mine, must_fail, tensor, note="", alpha=ALPHA, beta=BETA, names=None):
    """Judges `mine`; must_fail: exactly `tensor` fails, for the reason `note`; else everything
    passes."""
    names = names or [n for n in OUTPUTS + ("indices",) if n in c.expected]
    failures, _, _ = nn.judge(c, mine, alpha, beta, names)
    if must_fail:
        ok = len(failures) == 1 and failures[0].startswith(tensor) and note in failures[0]
    else:
        ok = not failures
    record(f"{c.name} {tensor}: {rule} ({'must fail' if must_fail else 'must pass'})", ok,
           "; ".join(failures) or "passed")


def first(mask):
    idx = np.argwhere(mask)
    return tuple(idx[len(idx) // 2]) if len(idx) else None


def tensor_rows(c):
    for tensor in OUTPUTS:
        if tensor not in c.expected:
            continue
        ds = c.expected[tensor]
        truth = ds[()]
        b = bound_of(ds)
        at = first(np.isfinite(truth))
        for outside in (True, False):
            mine = truth_outputs(c)
            mine[tensor][at] = (just_outside if outside else just_inside)(truth[at], b)
            expect(f"bound alpha {ALPHA} e_b + beta {BETA} ulp_{nn.attr(ds, 'ulp_dtype')}", c,
                   mine, outside, tensor, "max err")
        # Structural rules: NaN, +-inf where the truth is finite; -inf placement.
        for what, bad, note in (("NaN", np.nan, "NaN"), ("+inf", np.inf, "Inf where"),
                                ("-inf", -np.inf, "Inf where")):
            mine = truth_outputs(c)
            mine[tensor][at] = bad
            expect(f"{what} where the truth is finite", c, mine, True, tensor, note)
        mine = truth_outputs(c)
        mine[tensor].reshape(-1)[-1] = np.nan
        expect("an unwritten (NaN-poisoned) last element", c, mine, True, tensor, "NaN")
        neg = first(truth == -np.inf)
        if neg is not None:
            for what, bad, note in (("the most negative double", -np.finfo(np.float64).max,
                                     "infinities differ"), ("NaN", np.nan, "NaN"),
                                    ("+inf", np.inf, "infinities differ")):
                mine = truth_outputs(c)
                mine[tensor][neg] = bad
                expect(f"{what} where the truth is -inf", c, mine, True, tensor, note)
            expect("-inf where the truth is -inf", c, truth_outputs(c), False, tensor)
        mine = truth_outputs(c)
        mine[tensor] = mine[tensor][..., :-1] if mine[tensor].ndim > 1 else mine[tensor][:-1]
        expect("a tensor of another shape", c, mine, True, tensor, "shape")
        mine = truth_outputs(c)
        del mine[tensor]
        failures, _, not_checked = nn.judge(c, mine, ALPHA, BETA, list(OUTPUTS))
        record(f"{c.name} {tensor}: a missing tensor is not checked, not failed",
               not failures and tensor in not_checked)


def truth_grads(c):
    return {n: ds[()].astype(np.float64) for n, ds in c.expected_grad.items()}


def expect_grads(rule, c, grads, must_fail, tensor, note=""):
    """Judges gradient arrays; must_fail: exactly grad/`tensor` fails for the reason `note`."""
    failures, _, not_checked = nn.judge_grads(c, grads, ALPHA, BETA)
    if must_fail:
        ok = len(failures) == 1 and failures[0].startswith("grad/" + tensor) and note in failures[0]
    else:
        ok = not failures
    record(f"{c.name} grad/{tensor}: {rule} ({'must fail' if must_fail else 'must pass'})", ok,
           "; ".join(failures) or "passed")
    return not_checked


def grad_rows(c):
    """The gradient rules (expected/grad/): the per-tensor bound, NaN/Inf, shape, a name the case
    does not have, absence."""
    assert c.has_grad, c.name
    for tensor in ("dq", "dk_slc", "dv_win", "dg_cmp"):
        ds = c.expected_grad[tensor]
        truth = ds[()]
        b = bound_of(ds)
        at = first(np.abs(truth) > 0)
        for outside in (True, False):
            mine = truth_grads(c)
            mine[tensor][at] = (just_outside if outside else just_inside)(truth[at], b)
            expect_grads(f"bound alpha {ALPHA} e_b + beta {BETA} ulp_{nn.attr(ds, 'ulp_dtype')}",
                         c, mine, outside, tensor, "max err")
        for what, bad in (("NaN", np.nan), ("+inf", np.inf)):
            mine = truth_grads(c)
            mine[tensor][at] = bad
            expect_grads(f"{what} where the truth is finite", c, mine, True, tensor)
        mine = truth_grads(c)
        mine[tensor] = mine[tensor][..., :-1]
        expect_grads("a tensor of another shape", c, mine, True, tensor, "shape")
        mine = truth_grads(c)
        del mine[tensor]
        not_checked = expect_grads("a missing gradient is not checked, not failed", c, mine, False,
                                   tensor)
        record(f"{c.name} grad/{tensor}: listed as not checked", "grad/" + tensor in not_checked)
    mine = truth_grads(c)
    mine["dk_shared"] = mine["dk_slc"]
    expect_grads("a gradient the case does not have", c, mine, True, "dk_shared",
                 "not a gradient of this case")


def lists(c):
    """(row, kv head, list) of the truth with n_cand(row)."""
    return c.expected["indices"][()]


def find_row(c, pred):
    idx = lists(c)
    for row in range(idx.shape[0]):
        t = int(c.pos[row])
        n_cand = t // c.slc_block + 1
        if pred(t, n_cand):
            return row, t, n_cand
    raise AssertionError(f"{c.name}: no row for the index rule")


def index_rows(c):
    """Well-formedness clause by clause, forced blocks, and the tie margin delta."""
    n = c.top_n
    big = 1e12  # a delta that accepts any swap, so that only the rule under test can fail

    def with_list(row, g, lst):
        mine = truth_outputs(c)
        mine["indices"][row, g] = np.array(list(lst) + [-1] * (n - len(lst)), np.int32)
        return mine

    full_row, _, full_cand = find_row(c, lambda t, k: k > n)
    short_row, _, short_cand = find_row(c, lambda t, k: 1 < k < n)
    full = [int(x) for x in lists(c)[full_row, 0]]
    short = [int(x) for x in lists(c)[short_row, 0] if x >= 0]
    t_full = int(c.pos[full_row])
    free_sel = [j for j in full if j >= 0 and j not in nn.forced_set(c, t_full, full_cand)]
    rows = [
        ("two entries swapped (not ascending)",
         with_list(full_row, 0, [full[1], full[0]] + full[2:]), "ascending"),
        ("a block listed twice", with_list(full_row, 0, [full[0], full[0]] + full[2:]),
         "ascending"),
        ("block floor(t/l')+1, not a candidate", with_list(short_row, 0, short + [short_cand]),
         "not a candidate"),
        ("a negative entry other than -1", with_list(short_row, 0, [-2] + short[1:]),
         "not a candidate"),
        ("-1 before the end", with_list(short_row, 0, [-1] + short), "after -1 padding"),
        ("one block too few of n (a free one dropped)",
         with_list(full_row, 0, [j for j in full if j != free_sel[0]]), "blocks selected"),
        ("one block too few of the candidates", with_list(short_row, 0, short[:-1]),
         "blocks selected"),
    ]
    for rule, mine, note in rows:
        expect(f"index list: {rule}", c, mine, True, "indices", note, alpha=big)
    expect("index list: the truth's own lists", c, truth_outputs(c), False, "indices", alpha=big)
    # Forced blocks: the current block swapped for a free unselected one fails under any delta;
    # a free block swapped passes under a delta that accepts the swap.
    t = int(c.pos[full_row])
    forced = nn.forced_set(c, t, full_cand)
    free_in = [j for j in full if j >= 0 and j not in forced]
    free_out = [j for j in range(full_cand) if j not in full and j not in forced]
    cur = t // c.slc_block
    expect("index list: the current (forced) block dropped for a free one", c,
           with_list(full_row, 0, sorted([j for j in full if j != cur] + free_out[:1])), True,
           "indices", "forced block", alpha=big)
    expect("index list: a free block swapped for another free one", c,
           with_list(full_row, 0, sorted([j for j in full if j != free_in[0]] + free_out[:1])),
           False, "indices", alpha=big)
    # The tie margin: delta = alpha * e_s (beta 0) just below and at the truth score gap.
    scores = c.expected["scores"][()]
    e_s = float(c.expected["scores"].attrs["baseline_max_abs_err"])
    a_blk, b_blk = free_in[0], free_out[0]
    gap = scores[full_row, 0, a_blk] - scores[full_row, 0, b_blk]
    assert gap > 0 and e_s > 0, (gap, e_s)
    swapped = with_list(full_row, 0, sorted([j for j in full if j != a_blk] + [b_blk]))
    a_fail = gap / e_s
    while a_fail * e_s >= gap:
        a_fail = math.nextafter(a_fail, 0)
    a_pass = gap / e_s
    while a_pass * e_s < gap:
        a_pass = math.nextafter(a_pass, math.inf)
    names = ["indices"]
    expect(f"tie margin (alpha e_s): gap {gap:.3g} just over delta", c, swapped, True, "indices",
           "chosen over", alpha=a_fail, beta=0.0, names=names)
    expect(f"tie margin (alpha e_s): gap {gap:.3g} at delta", c, swapped, False, "indices",
           alpha=a_pass, beta=0.0, names=names)
    # The same with beta alone: delta = beta ulp_fp32(max |scores|), in fp32 whatever the case
    # dtype (this case is fp16: its ulp would accept a gap 2^13 times larger).
    u = spacing(float(np.max(np.abs(scores[np.isfinite(scores)]))), "fp32")
    b_fail = gap / u
    while b_fail * u >= gap:
        b_fail = math.nextafter(b_fail, 0)
    b_pass = gap / u
    while b_pass * u < gap:
        b_pass = math.nextafter(b_pass, math.inf)
    expect(f"tie margin (beta ulp_fp32): gap {gap:.3g} just over delta", c, swapped, True,
           "indices", "chosen over", alpha=0.0, beta=b_fail, names=names)
    expect(f"tie margin (beta ulp_fp32): gap {gap:.3g} at delta", c, swapped, False, "indices",
           alpha=0.0, beta=b_pass, names=names)
    return swapped, a_fail, a_pass


def write_cand(path, c, mine, stores=None):
    """A candidate file for case c; stores: tensor -> 'fp64' | 'fp32' | 'fp16' | 'bf16' | 'int32'
    | 'int64' (default fp64 for floats, int32 for indices)."""
    stores = stores or {}
    with h5py.File(path, "w") as f:
        g = f.create_group(f"cases/{c.name}/outputs")
        for name, x in mine.items():  # "grad/dq" lands in outputs/grad/dq
            kind = stores.get(name, "int32" if name == "indices" else "fp64")
            if kind == "bf16":
                parent, _, leaf = name.rpartition("/")
                nn.write_output(g.require_group(parent) if parent else g, leaf, x, "bf16")
            else:
                g.create_dataset(name, data=x.astype({"fp64": np.float64, "fp32": np.float32,
                                                      "fp16": np.float16, "int32": np.int32,
                                                      "int64": np.int64}[kind]))


def judge_exit(cand, golden, extra=()):
    with contextlib.redirect_stdout(io.StringIO()):
        return nn.judge_main([cand, golden] + list(extra))


def nsa_exit(nsa, golden, cand, extra=()):
    r = subprocess.run([nsa, "golden", "check", golden, cand] + list(extra),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode


def file_rows(smoke, canonical_case, tie, nsa, tmp):
    """Candidate files, judged by --judge and (if given) by nsa golden check: same exit codes."""
    with h5py.File(smoke, "r") as f:
        c = nn.Case(f["cases"][sorted(f["cases"])[1]])  # varlen bf16
        truth = truth_outputs(c)
        b = bound_of(c.expected["lse_slc"])
        at = first(np.isfinite(truth["lse_slc"]))
        rows = []

        def add(rule, mine, stores, code, golden=smoke, extra=()):
            path = os.path.join(tmp, f"cand{len(rows)}.h5")
            write_cand(path, c if golden == smoke else canonical_case, mine, stores)
            rows.append((rule, path, code, golden, extra))

        add("the truth in the case dtype (o bf16, lse fp32)", truth,
            {n: "bf16" if n.startswith("o") else "fp32" for n in truth if n != "indices"}, 0)
        bad = dict(truth, lse_slc=truth["lse_slc"].copy())
        bad["lse_slc"][at] = just_outside(truth["lse_slc"][at], b)
        add("lse_slc just past its fp32 bound", bad, {}, 1,
            extra=("--alpha", str(ALPHA), "--beta", str(BETA)))
        good = dict(truth, lse_slc=truth["lse_slc"].copy())
        good["lse_slc"][at] = just_inside(truth["lse_slc"][at], b)
        add("lse_slc at its fp32 bound", good, {}, 0,
            extra=("--alpha", str(ALPHA), "--beta", str(BETA)))
        add("lse stored in bf16 (lse is judged in fp32 ulps)", {"lse_win": truth["lse_win"]},
            {"lse_win": "bf16"}, 1)
        add("o stored as int32", {"o": truth["o"]}, {"o": "int32"}, 1)
        add("indices stored as int64", {"indices": truth["indices"]}, {"indices": "int64"}, 1)
        add("o one column short", {"o": truth["o"][..., :-1]}, {}, 1)
        gtruth = {"grad/" + n: x for n, x in truth_grads(c).items()}
        gb = bound_of(c.expected_grad["dq"])
        gat = first(np.abs(gtruth["grad/dq"]) > 0)
        add("every gradient, the truth in fp64", gtruth, {}, 0)
        add("the gradients in the case dtype (bf16)", gtruth, {n: "bf16" for n in gtruth}, 0,
            extra=("--alpha", str(ALPHA), "--beta", str(BETA)))
        for outside, code in ((True, 1), (False, 0)):
            g = dict(gtruth, **{"grad/dq": gtruth["grad/dq"].copy()})
            g["grad/dq"][gat] = (just_outside if outside else just_inside)(gtruth["grad/dq"][gat], gb)
            add(f"dq {'just past' if outside else 'at'} its bound", g, {}, code,
                extra=("--alpha", str(ALPHA), "--beta", str(BETA)))
        add("a gradient the case does not have (dk_shared)", {"grad/dk_shared": gtruth["grad/dk_slc"]},
            {}, 1)
        add("dq stored as int32", {"grad/dq": gtruth["grad/dq"]}, {"grad/dq": "int32"}, 1)
        swapped, a_fail, a_pass = tie
        sw = {"indices": swapped["indices"]}
        add("index swap just past delta", sw, {}, 1, canonical_case.path,
            ("--alpha", repr(a_fail), "--beta", "0"))
        add("index swap at delta", sw, {}, 0, canonical_case.path,
            ("--alpha", repr(a_pass), "--beta", "0"))
    nothing = os.path.join(tmp, "nothing.h5")
    with h5py.File(nothing, "w") as f:
        f.create_group("cases/no_such_case/outputs")
    rows.append(("no output of any golden case", nothing, 2, smoke, ()))
    newer = os.path.join(tmp, "newer.h5")
    shutil.copy(smoke, newer)
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = np.int64(max(nn.SUPPORTED_SCHEMA) + 1)
    rows.append(("a golden file of another schema version", smoke, 2, newer, ()))
    text = os.path.join(tmp, "text.h5")
    with open(text, "w") as f:
        f.write("not HDF5\n")
    rows.append(("a candidate that is not HDF5", text, 2, smoke, ()))
    rows.append(("a missing candidate", text + ".absent", 2, smoke, ()))
    for rule, path, code, golden, extra in rows:
        got = judge_exit(path, golden, extra)
        record(f"--judge: {rule}: exit {code}", got == code, f"exit {got}")
        if nsa:
            got = nsa_exit(nsa, golden, path, extra)
            record(f"nsa golden check: {rule}: exit {code}", got == code, f"exit {got}")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    smoke, canonical = argv[0], argv[1]
    nsa = argv[2] if len(argv) > 2 else None
    with h5py.File(smoke, "r") as f:
        for name in sorted(f["cases"])[:3]:  # padded fp32, varlen bf16, fp16 with a suffix
            tensor_rows(nn.Case(f["cases"][name]))
            grad_rows(nn.Case(f["cases"][name]))
    with h5py.File(canonical, "r") as f:
        name = next(n for n in f["cases"] if n.endswith("top_n_4"))
        c = nn.Case(f["cases"][name])
        c.path = canonical
        tie = index_rows(c)
        with tempfile.TemporaryDirectory() as tmp:
            file_rows(smoke, c, tie, nsa, tmp)
    failed = results.count(False)
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
