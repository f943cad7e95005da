"""The NSA backward in plain numpy, a second implementation of docs/semantics.md section 10
("Backward"), written from that text only. nsa_numpy.py runs it on every golden case that holds
gradients (schema 2, case attribute backward = 1) and judges it against expected/grad/.

The backward of a golden case takes the selection as its forward fixed it: the truth's
expected/indices (computed selections) or inputs/indices (given lists). Indices are constants of
the backward, so no tie-break of this implementation can move its gradients off the case's.
"""
import numpy as np

BRANCHES = ("cmp", "slc", "win")


def _activation(h, act):
    """act(h) and act'(h) for relu (relu'(0) = 0) and silu."""
    if act == "relu":
        return np.maximum(h, 0.0), (h > 0).astype(np.float64)
    sig = 1.0 / (1.0 + np.exp(-h))
    return h * sig, sig * (1.0 + h * (1.0 - sig))


def _phi_forward(block, params, kind, act, g):
    """phi of one block X [l, D]; also what its backward needs (vec, hidden pre-activation)."""
    if kind == "mean":
        return block.mean(axis=0), None, None
    vec = (block + params["pos"][g]).reshape(-1)  # token-major: element [j, c] at j * D + c
    if kind == "linear":
        return vec @ params["w1"][g], vec, None
    h = vec @ params["w1"][g] + params["b1"][g]
    a, _ = _activation(h, act)
    return a @ params["w2"][g] + params["b2"][g], vec, h


def _phi_backward(dy, vec, h, params, kind, act, g, l, grads):
    """d(block) [l, D] for the block's output gradient dy; adds phi's parameter gradients."""
    dim = dy.shape[0]
    if kind == "mean":
        return np.tile(dy / l, (l, 1))
    if kind == "linear":
        grads["w1"][g] += np.outer(vec, dy)
        dvec = params["w1"][g] @ dy
    else:
        a, da_dh = _activation(h, act)
        grads["b2"][g] += dy
        grads["w2"][g] += np.outer(a, dy)
        dh = (params["w2"][g] @ dy) * da_dh
        grads["b1"][g] += dh
        grads["w1"][g] += np.outer(vec, dh)
        dvec = params["w1"][g] @ dh
    dblock = dvec.reshape(l, dim)
    grads["pos"][g] += dblock
    return dblock


def _softmax_backward(q, keys, values, d_o_b, scale):
    """For one query's G heads over a key list (rows may repeat): (dq, dk rows, dv rows, o).
    P_j = softmax weights, dP_j = <dO_b, v_j>, D = <dO_b, o>, dS_j = P_j (dP_j - D)."""
    if keys.shape[0] == 0:
        zero = np.zeros((q.shape[0], values.shape[1]))
        return np.zeros_like(q), np.zeros((0, q.shape[1])), np.zeros((0, values.shape[1])), zero
    z = scale * (q @ keys.T)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    o = p @ values
    dp = d_o_b @ values.T
    ds = p * (dp - (d_o_b * o).sum(axis=1, keepdims=True))
    return scale * ds @ keys, scale * ds.T @ q, p.T @ d_o_b, o


def backward_case(c, selection):
    """Every gradient of case c (dq, dk_*/dv_* or dk_shared/dv_shared, dg_*, dphi_*), named as in
    expected/grad/. `selection` [total_q, h_kv, top_n] is the index list the forward used."""
    nq, nk, hq, hkv, G = c.total_q, c.total_k, c.h_q, c.h_kv, c.group
    l, stride, lsel = c.cmp_block, c.cmp_stride, c.slc_block
    d_o = c.do
    dq = np.zeros((nq, hq, c.d_k))
    dk = {b: np.zeros((nk, hkv, c.d_k)) for b in BRANCHES}
    dv = {b: np.zeros((nk, hkv, c.d_v)) for b in BRANCHES}
    dg = {b: np.zeros((nq, hq)) for b in BRANCHES}
    dphi = {w: {n: np.zeros_like(x) for n, x in p.items()}
            for w, p in (("k", c.phi_k), ("v", c.phi_v))}
    # A given compressed cache (cmp_given) receives the compressed blocks' gradients as they are.
    nc_total = c.k_tilde.shape[0] if c.cmp_given else 0
    dk_tilde, dv_tilde = np.zeros((nc_total, hkv, c.d_k)), np.zeros((nc_total, hkv, c.d_v))
    c0 = 0
    for s in range(len(c.cu_k) - 1):
        k0, k1, q0, q1 = c.cu_k[s], c.cu_k[s + 1], c.cu_q[s], c.cu_q[s + 1]
        t_k, t_q = k1 - k0, q1 - q0
        n_c = 0 if t_k < l else (t_k - l) // stride + 1
        for g in range(hkv):
            heads = slice(g * G, (g + 1) * G)
            K = {b: c.k[b][k0:k1, g] for b in c.k}
            V = {b: c.v[b][k0:k1, g] for b in c.v}
            if c.cmp_given:
                kc, vc = c.k_tilde[c0:c0 + n_c, g], c.v_tilde[c0:c0 + n_c, g]
            else:
                # The compressed blocks, with what their backward needs.
                kfw = [_phi_forward(K["cmp"][i * stride:i * stride + l], c.phi_k, c.phi,
                                    c.phi_act, g) for i in range(n_c)]
                vfw = [_phi_forward(V["cmp"][i * stride:i * stride + l], c.phi_v, c.phi,
                                    c.phi_act, g) for i in range(n_c)]
                kc = np.array([f[0] for f in kfw]).reshape(n_c, c.d_k)
                vc = np.array([f[0] for f in vfw]).reshape(n_c, c.d_v)
            dkc, dvc = np.zeros_like(kc), np.zeros_like(vc)
            for i in range(t_q):
                row, t = q0 + i, t_k - t_q + i
                q = c.q[row, heads]
                for b in BRANCHES:
                    if not c.enabled[b]:
                        continue
                    if b == "cmp":
                        rows = np.arange(_visible(c, t))
                        keys, vals = kc, vc
                    elif b == "slc":
                        rows = np.array(_selected_tokens(c, selection[row, g], t, t_k), np.int64)
                        keys, vals = K["slc"], V["slc"]
                    else:
                        span = c.window if c.window_keys == "w" else c.window + 1
                        rows = np.arange(max(0, t - span + 1), t + 1)
                        keys, vals = K["win"], V["win"]
                    d_o_b = c.gate[b][row, heads][:, None] * d_o[row, heads]
                    g_q, g_k, g_v, o = _softmax_backward(q, keys[rows], vals[rows], d_o_b,
                                                         c.scale)
                    dq[row, heads] += g_q
                    dg[b][row, heads] = (d_o[row, heads] * o).sum(axis=1)
                    # A key listed twice (multiset) receives both terms: np.add.at accumulates.
                    if b == "cmp":
                        np.add.at(dkc, rows, g_k)
                        np.add.at(dvc, rows, g_v)
                    else:
                        np.add.at(dk[b][:, g], k0 + rows, g_k)
                        np.add.at(dv[b][:, g], k0 + rows, g_v)
            if c.enabled["cmp"] and c.cmp_given:
                dk_tilde[c0:c0 + n_c, g], dv_tilde[c0:c0 + n_c, g] = dkc, dvc
            elif c.enabled["cmp"]:
                for i in range(n_c):
                    a = k0 + i * stride  # a token in several blocks receives from each
                    dk["cmp"][a:a + l, g] += _phi_backward(dkc[i], kfw[i][1], kfw[i][2], c.phi_k,
                                                           c.phi, c.phi_act, g, l, dphi["k"])
                    dv["cmp"][a:a + l, g] += _phi_backward(dvc[i], vfw[i][1], vfw[i][2], c.phi_v,
                                                           c.phi, c.phi_act, g, l, dphi["v"])
        c0 += n_c
    out = {"dq": dq}
    for b in BRANCHES:
        if not c.enabled[b]:
            continue
        if b == "cmp" and c.cmp_given:
            out["dk_tilde"], out["dv_tilde"] = dk_tilde, dv_tilde
        elif not c.shared_kv:
            out["dk_" + b], out["dv_" + b] = dk[b], dv[b]
        out["dg_" + b] = dg[b]
    if c.shared_kv:  # with a given cache, K_cmp is not read: dk["cmp"] stays 0
        out["dk_shared"] = sum(dk[b] for b in BRANCHES if c.enabled[b])
        out["dv_shared"] = sum(dv[b] for b in BRANCHES if c.enabled[b])
    if c.enabled["cmp"] and not c.cmp_given:
        for w in ("k", "v"):
            for name, x in dphi[w].items():
                out[f"dphi_{w}_{name}"] = x
    return out


def _visible(c, t):
    last = t + 1 if c.cmp_visibility == "inclusive" else t
    return 0 if last < c.cmp_block else (last - c.cmp_block) // c.cmp_stride + 1


def _selected_tokens(c, row_list, t, t_k):
    """The key tokens of one index list, a token once per listing of its block: computed lists
    and skip_invalid / negative_to_zero as a set of blocks, multiset as listed; entries that are
    -1, negative (negative_to_zero: block 0) or beyond the candidates skipped."""
    cur = t // c.slc_block
    entries = [int(j) for j in row_list]
    if c.given and c.index_policy == "negative_to_zero":
        entries = [0 if j < 0 else j for j in entries]
    blocks = [j for j in entries if 0 <= j <= cur]
    if not (c.given and c.index_policy == "multiset"):
        blocks = sorted(set(blocks))
    end = t + 1 if c.slc_causal == "token" else t_k
    return [u for j in blocks for u in range(j * c.slc_block, min((j + 1) * c.slc_block, end))]
