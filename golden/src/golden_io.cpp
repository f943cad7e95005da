// The golden file schema (golden/SCHEMA.md), version 3: writer and checking reader (which also
// reads version 2, without given compressed caches, and version 1, forward only).
#include <algorithm>
#include <cmath>
#include <limits>

#include "h5.hpp"
#include "half.hpp"
#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/config_json.hpp"

namespace nsa::golden {

using nsa::ref::Branch;
using nsa::ref::Dtype;
using nsa::ref::Outputs;
using nsa::ref::ValidConfig;

namespace {

const char* kProducer = "nsa_verify golden writer";

// One stored tensor of a case: its path below the case group and its shape.
struct Spec {
  std::string name;
  std::vector<int64_t> dims;
};

bool wants_cmp_scores(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  return c.enable_cmp || (c.enable_slc && !c.given_indices);
}

bool computes_topn(const ValidConfig& vc) { return vc.cfg.enable_slc && !vc.cfg.given_indices; }

// Input float tensors with their shapes, and a pointer to the data in `in`.
struct InputTensor {
  Spec spec;
  const std::vector<double>* data;
};

std::vector<InputTensor> input_tensors(const ValidConfig& vc, const nsa::ref::Inputs& in) {
  const auto& c = vc.cfg;
  const int64_t tq = vc.total_q, tk = vc.total_k, l = c.cmp_block, m = c.phi_hidden;
  std::vector<InputTensor> out;
  out.push_back({{"q", {tq, c.h_q, c.d_k}}, &in.q});
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string s(nsa::ref::to_string(b));
    const int i = static_cast<int>(b);
    // A given compressed cache replaces K_cmp/V_cmp (under shared_kv they are the shared K/V).
    if (b == Branch::cmp && c.cmp_given && !c.shared_kv) continue;
    out.push_back({{"k_" + s, {tk, c.h_kv, c.d_k}}, &in.k[i]});
    out.push_back({{"v_" + s, {tk, c.h_kv, c.d_v}}, &in.v[i]});
  }
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string s(nsa::ref::to_string(b));
    out.push_back({{"g_" + s, {tq, c.h_q}}, &in.gate[static_cast<int>(b)]});
  }
  if (c.cmp_given) {  // phi is not run: the cache instead of its parameters
    out.push_back({{"k_tilde", {vc.total_cmp, c.h_kv, c.d_k}}, &in.k_tilde});
    out.push_back({{"v_tilde", {vc.total_cmp, c.h_kv, c.d_v}}, &in.v_tilde});
    return out;
  }
  auto phi = [&](const char* which, const nsa::ref::PhiParams& p, int64_t D) {
    const std::string pre = std::string("phi_") + which + "_";
    if (c.phi == nsa::ref::Phi::linear) {
      out.push_back({{pre + "pos", {c.h_kv, l, D}}, &p.pos});
      out.push_back({{pre + "w1", {c.h_kv, l * D, D}}, &p.w1});
    } else if (c.phi == nsa::ref::Phi::mlp) {
      out.push_back({{pre + "pos", {c.h_kv, l, D}}, &p.pos});
      out.push_back({{pre + "w1", {c.h_kv, l * D, m}}, &p.w1});
      out.push_back({{pre + "b1", {c.h_kv, m}}, &p.b1});
      out.push_back({{pre + "w2", {c.h_kv, m, D}}, &p.w2});
      out.push_back({{pre + "b2", {c.h_kv, D}}, &p.b2});
    }
  };
  phi("k", in.phi_k, c.d_k);
  phi("v", in.phi_v, c.d_v);
  return out;
}

// Expected float tensors: name, shape, the dtype whose ulp the tolerance rule uses.
struct ExpectedTensor {
  Spec spec;
  std::string ulp_dtype;
};

std::vector<ExpectedTensor> expected_float_tensors(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  const int64_t tq = vc.total_q;
  const std::string dt(nsa::ref::to_string(c.dtype));
  std::vector<ExpectedTensor> out;
  for (Branch b : nsa::ref::kAllBranches) {
    if (!c.enabled(b)) continue;
    const std::string s(nsa::ref::to_string(b));
    out.push_back({{"o_" + s, {tq, c.h_q, c.d_v}}, dt});
    out.push_back({{"lse_" + s, {tq, c.h_q}}, "fp32"});
  }
  out.push_back({{"o", {tq, c.h_q, c.d_v}}, dt});
  if (wants_cmp_scores(vc)) out.push_back({{"p_cmp", {tq, c.h_q, vc.max_cmp_blocks()}}, "fp32"});
  if (computes_topn(vc)) {
    out.push_back({{"scores", {tq, c.h_kv, vc.max_slc_blocks()}}, "fp32"});
    out.push_back({{"score_gap", {tq, c.h_kv}}, "fp32"});
  }
  return out;
}

std::vector<double>* expected_data(Outputs& o, const std::string& name) { return o.tensor(name); }

// The gradients a case stores (grad_tensor_names) with their shapes: dq like q, dk_* / dv_* like
// the keys / values, dg_* like the gates, dphi_<k|v>_<slot> like the phi input phi_<k|v>_<slot>.
std::vector<Spec> grad_specs(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  std::map<std::string, std::vector<int64_t>> phi_dims;
  const nsa::ref::Inputs none;
  for (const auto& t : input_tensors(vc, none)) phi_dims[t.spec.name] = t.spec.dims;
  std::vector<Spec> out;
  for (const auto& name : nsa::ref::grad_tensor_names(vc)) {
    std::vector<int64_t> dims;
    if (name == "dq")
      dims = {vc.total_q, c.h_q, c.d_k};
    else if (name == "dk_tilde" || name == "dv_tilde")
      dims = phi_dims.at(name.substr(1));  // dk_tilde -> k_tilde
    else if (name.rfind("dg_", 0) == 0)
      dims = {vc.total_q, c.h_q};
    else if (name.rfind("dk_", 0) == 0)
      dims = {vc.total_k, c.h_kv, c.d_k};
    else if (name.rfind("dv_", 0) == 0)
      dims = {vc.total_k, c.h_kv, c.d_v};
    else
      dims = phi_dims.at(name.substr(1));  // dphi_k_w1 -> phi_k_w1
    out.push_back({name, dims});
  }
  return out;
}

int64_t count(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

void write_input(hid_t grp, const std::string& name, const std::vector<double>& x,
                 const std::vector<int64_t>& dims, Dtype dt) {
  if (static_cast<int64_t>(x.size()) != count(dims))
    throw GoldenError("input " + name + " has " + std::to_string(x.size()) + " elements, shape " +
                      h5::shape_string(dims) + " needs " + std::to_string(count(dims)));
  const auto type = h5::file_type_of(dt);
  if (dt == Dtype::f16 || dt == Dtype::bf16) {
    const HalfFormat f = dt == Dtype::f16 ? kFp16 : kBf16;
    std::vector<uint16_t> bits(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) bits[i] = encode_half(x[i], f);
    h5::write_dataset(grp, name, type, type, bits.data(), dims);
  } else if (dt == Dtype::f32) {
    std::vector<float> f(x.begin(), x.end());
    h5::write_dataset(grp, name, type, H5T_NATIVE_FLOAT, f.data(), dims);
  } else {
    h5::write_dataset(grp, name, type, H5T_NATIVE_DOUBLE, x.data(), dims);
  }
  const auto ds = h5::open_dataset(grp, name, "inputs");
  h5::write_attr(ds, "dtype", std::string(nsa::ref::to_string(dt)));
}

void write_int32(hid_t grp, const std::string& name, const std::vector<int32_t>& x,
                 const std::vector<int64_t>& dims) {
  if (static_cast<int64_t>(x.size()) != count(dims))
    throw GoldenError("tensor " + name + " has " + std::to_string(x.size()) + " elements, shape " +
                      h5::shape_string(dims) + " needs " + std::to_string(count(dims)));
  h5::write_dataset(grp, name, H5T_STD_I32LE, H5T_NATIVE_INT32, x.data(), dims);
}

std::vector<int32_t> to_int32(const std::vector<int64_t>& x) {
  return std::vector<int32_t>(x.begin(), x.end());
}

// The individual config attributes: the same content as config_json, one attribute per field,
// for readers that do not want to parse JSON.
void write_config_attrs(hid_t g, const ValidConfig& vc) {
  const auto& c = vc.cfg;
  using nsa::ref::to_string;
  h5::write_attr(g, "profile", c.profile);
  h5::write_attr(g, "layout", std::string(to_string(c.layout)));
  h5::write_attr(g, "batch", c.batch);
  h5::write_attr(g, "h_q", c.h_q);
  h5::write_attr(g, "h_kv", c.h_kv);
  h5::write_attr(g, "d_k", c.d_k);
  h5::write_attr(g, "d_v", c.d_v);
  h5::write_attr(g, "scale", vc.scale);
  h5::write_attr(g, "cmp_block", c.cmp_block);
  h5::write_attr(g, "cmp_stride", c.cmp_stride);
  h5::write_attr(g, "slc_block", c.slc_block);
  h5::write_attr(g, "top_n", c.top_n);
  h5::write_attr(g, "n_init", c.n_init);
  h5::write_attr(g, "n_local", c.n_local);
  h5::write_attr(g, "window", c.window);
  h5::write_attr(g, "enable_cmp", int64_t{c.enable_cmp});
  h5::write_attr(g, "enable_slc", int64_t{c.enable_slc});
  h5::write_attr(g, "enable_win", int64_t{c.enable_win});
  h5::write_attr(g, "phi", std::string(to_string(c.phi)));
  h5::write_attr(g, "phi_hidden", c.phi_hidden);
  h5::write_attr(g, "phi_act", std::string(to_string(c.phi_act)));
  h5::write_attr(g, "dtype", std::string(to_string(c.dtype)));
  h5::write_attr(g, "shared_kv", int64_t{c.shared_kv});
  h5::write_attr(g, "given_indices", int64_t{c.given_indices});
  h5::write_attr(g, "cmp_given", int64_t{c.cmp_given});
  h5::write_attr(g, "cmp_visibility", std::string(to_string(c.cmp_visibility)));
  h5::write_attr(g, "score_mapping", std::string(to_string(c.score_mapping)));
  h5::write_attr(g, "group_reduce", std::string(to_string(c.group_reduce)));
  h5::write_attr(g, "forced_mode", std::string(to_string(c.forced_mode)));
  h5::write_attr(g, "tie_break", std::string(to_string(c.tie_break)));
  h5::write_attr(g, "slc_causal", std::string(to_string(c.slc_causal)));
  h5::write_attr(g, "index_policy", std::string(to_string(c.index_policy)));
  h5::write_attr(g, "window_keys", std::string(to_string(c.window_keys)));
  h5::write_attr(g, "topn_rounding", std::string(to_string(c.topn_rounding)));
  h5::write_attr(g, "total_q", vc.total_q);
  h5::write_attr(g, "total_k", vc.total_k);
  h5::write_attr(g, "num_cmp_blocks_max", vc.max_cmp_blocks());
  h5::write_attr(g, "num_slc_blocks_max", vc.max_slc_blocks());
}

void write_case(hid_t cases, const GoldenCase& gc) {
  const auto& vc = gc.vc;
  const auto& c = vc.cfg;
  const auto g = h5::create_group(cases, gc.name, "case " + gc.name);
  h5::write_attr(g, "config_json", nsa::ref::config_to_json(c));
  write_config_attrs(g, vc);
  h5::write_attr_u64(g, "seed", gc.seed);
  h5::write_attr(g, "regime", std::string(nsa::ref::to_string(gc.regime)));
  h5::write_attr(g, "reference_precision", std::string(nsa::ref::to_string(gc.precision)));
  h5::write_attr(g, "generator_version", int64_t{gc.generator_version});
  h5::write_attr(g, "backward", int64_t{gc.has_grad});

  const auto in = h5::create_group(g, "inputs", "case " + gc.name);
  for (const auto& t : input_tensors(vc, gc.inputs)) {
    const auto& n = t.spec.name;
    const bool copy = n.size() == 5 && (n[0] == 'k' || n[0] == 'v') && n.substr(2) != "cmp";
    if (c.shared_kv && copy) {
      // Shared K/V: one dataset under three names (HDF5 hard links), stored once.
      const std::string src = n.substr(0, 2) + "cmp";
      const auto& first = gc.inputs.k[0];
      const auto& same = n[0] == 'k' ? first : gc.inputs.v[0];
      if (*t.data != same)
        throw GoldenError("input " + n + " differs from " + src + " although shared_kv is set");
      h5::check(H5Lcreate_hard(in, src.c_str(), in, n.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                "cannot link " + n);
      continue;
    }
    write_input(in, n, *t.data, t.spec.dims, c.dtype);
  }
  const int64_t b1 = static_cast<int64_t>(c.cu_seqlens_q.size());
  write_int32(in, "cu_seqlens_q", to_int32(c.cu_seqlens_q), {b1});
  write_int32(in, "cu_seqlens_k", to_int32(c.cu_seqlens_k), {b1});
  if (c.given_indices) write_int32(in, "indices", gc.inputs.indices, {vc.total_q, c.h_kv, c.top_n});
  if (gc.has_grad) write_input(in, "do", gc.d_o, {vc.total_q, c.h_q, c.d_v}, c.dtype);

  const auto ex = h5::create_group(g, "expected", "case " + gc.name);
  Outputs truth = gc.truth;  // copy: expected_data hands out non-const pointers
  for (const auto& t : expected_float_tensors(vc)) {
    const auto* data = expected_data(truth, t.spec.name);
    if (static_cast<int64_t>(data->size()) != count(t.spec.dims))
      throw GoldenError("case " + gc.name + ": truth " + t.spec.name + " has " +
                        std::to_string(data->size()) + " elements, expected shape " +
                        h5::shape_string(t.spec.dims));
    h5::write_dataset(ex, t.spec.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data->data(),
                      t.spec.dims);
    const auto ds = h5::open_dataset(ex, t.spec.name, "expected");
    const auto it = gc.baseline_err.find(t.spec.name);
    if (it == gc.baseline_err.end())
      throw GoldenError("case " + gc.name + ": no baseline error for " + t.spec.name);
    h5::write_attr(ds, "baseline_max_abs_err", it->second);
    h5::write_attr(ds, "ulp_dtype", t.ulp_dtype);
  }
  if (computes_topn(vc))
    write_int32(ex, "indices", gc.truth.indices, {vc.total_q, c.h_kv, c.top_n});
  if (!gc.has_grad) return;
  const auto gg = h5::create_group(ex, "grad", "case " + gc.name);
  const std::string dt(nsa::ref::to_string(c.dtype));
  for (const auto& t : grad_specs(vc)) {
    const auto it = gc.grad_baseline_err.find(t.name);
    if (it == gc.grad_baseline_err.end())
      throw GoldenError("case " + gc.name + ": no baseline error for gradient " + t.name);
    const auto& data = nsa::ref::grad_tensor(vc, gc.grad_truth, t.name);
    if (static_cast<int64_t>(data.size()) != count(t.dims))
      throw GoldenError("case " + gc.name + ": truth gradient " + t.name + " has " +
                        std::to_string(data.size()) + " elements, expected shape " +
                        h5::shape_string(t.dims));
    h5::write_dataset(gg, t.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data.data(), t.dims);
    const auto ds = h5::open_dataset(gg, t.name, "expected/grad");
    h5::write_attr(ds, "baseline_max_abs_err", it->second);
    h5::write_attr(ds, "ulp_dtype", dt);
  }
}

// ---- reading ---------------------------------------------------------------------------------

struct Reader {
  std::string file;
  int64_t version = kSchemaVersion;

  std::string where(const std::string& cs) const { return file + ": case " + cs; }

  h5::Handle dataset(hid_t grp, const std::string& cs, const std::string& path,
                     const std::vector<int64_t>& dims) const {
    auto ds = h5::open_dataset(grp, path, where(cs));
    const auto have = h5::shape_of(ds);
    if (have != dims)
      throw GoldenError(where(cs) + ": dataset " + path + " has shape " + h5::shape_string(have) +
                        ", expected " + h5::shape_string(dims));
    return ds;
  }

  std::vector<double> input(hid_t grp, const std::string& cs, const std::string& name,
                            const std::vector<int64_t>& dims, Dtype dt) const {
    const auto path = "inputs/" + name;
    const auto ds = dataset(grp, cs, path, dims);
    const auto type = h5::type_name(ds);
    const std::string want(nsa::ref::to_string(dt));
    if (type != want)
      throw GoldenError(where(cs) + ": dataset " + path + " has type " + type + ", expected " +
                        want + " (the case's dtype)");
    const auto attr = h5::read_attr_string(ds, "dtype", where(cs) + ": dataset " + path);
    if (attr != want)
      throw GoldenError(where(cs) + ": dataset " + path + " has dtype attribute '" + attr +
                        "', expected '" + want + "'");
    return h5::read_floats(ds, where(cs) + ": dataset " + path);
  }

  std::vector<double> expected(hid_t grp, const std::string& cs, const std::string& name,
                               const std::vector<int64_t>& dims, double* base_err) const {
    const auto path = "expected/" + name;
    const auto ds = dataset(grp, cs, path, dims);
    const auto type = h5::type_name(ds);
    if (type != "fp64")
      throw GoldenError(where(cs) + ": dataset " + path + " has type " + type + ", expected fp64");
    *base_err = h5::read_attr_double(ds, "baseline_max_abs_err", where(cs) + ": dataset " + path);
    return h5::read_floats(ds, where(cs) + ": dataset " + path);
  }

  std::vector<int32_t> ints(hid_t grp, const std::string& cs, const std::string& path,
                            const std::vector<int64_t>& dims) const {
    const auto ds = dataset(grp, cs, path, dims);
    return h5::read_int32(ds, where(cs) + ": dataset " + path);
  }

  GoldenCase read_case(hid_t cases, const std::string& name) const {
    GoldenCase gc;
    gc.name = name;
    const auto g = h5::open_group(cases, name, file);
    const auto w = where(name);
    const auto json = h5::read_attr_string(g, "config_json", w);
    try {
      gc.vc = nsa::ref::validate(nsa::ref::config_from_json(json));
    } catch (const std::exception& e) {
      throw GoldenError(w + ": attribute config_json: " + e.what());
    }
    if (version < 3 && gc.vc.cfg.cmp_given)
      throw GoldenError(w +
                        ": attribute config_json: cmp_given = true needs schema_version 3 "
                        "(the file says " +
                        std::to_string(version) + ")");
    gc.seed = h5::read_attr_u64(g, "seed", w);
    const auto regime = h5::read_attr_string(g, "regime", w);
    if (!nsa::ref::parse_regime(regime, gc.regime))
      throw GoldenError(w + ": attribute regime = '" + regime +
                        "', expected typical|peaked|ties|extreme");
    const auto prec = h5::read_attr_string(g, "reference_precision", w);
    bool found = false;
    for (auto p :
         {nsa::ref::Precision::f64, nsa::ref::Precision::f128, nsa::ref::Precision::bin50}) {
      if (prec == nsa::ref::to_string(p)) {
        gc.precision = p;
        found = true;
      }
    }
    if (!found)
      throw GoldenError(w + ": attribute reference_precision = '" + prec +
                        "', expected f64|f128|bin50");
    gc.generator_version = static_cast<int>(h5::read_attr_int(g, "generator_version", w));

    const auto& vc = gc.vc;
    const auto& c = vc.cfg;
    // Inputs: read into a scratch Inputs, then check sizes and values with the reference.
    nsa::ref::Inputs in;
    for (const auto& t : input_tensors(vc, in)) {
      auto* dst = const_cast<std::vector<double>*>(t.data);
      *dst = input(g, name, t.spec.name, t.spec.dims, c.dtype);
    }
    const int64_t b1 = static_cast<int64_t>(c.cu_seqlens_q.size());
    for (const char* cu : {"cu_seqlens_q", "cu_seqlens_k"}) {
      const auto have = ints(g, name, std::string("inputs/") + cu, {b1});
      const auto& want = std::string(cu) == "cu_seqlens_q" ? c.cu_seqlens_q : c.cu_seqlens_k;
      if (have != to_int32(want))
        throw GoldenError(w + ": dataset inputs/" + cu + " disagrees with config_json");
    }
    if (c.given_indices)
      in.indices = ints(g, name, "inputs/indices", {vc.total_q, c.h_kv, c.top_n});
    try {
      nsa::ref::check_inputs(vc, in);
    } catch (const std::exception& e) {
      throw GoldenError(w + ": inputs: " + e.what());
    }
    const auto in_indices = in.indices;
    gc.inputs = std::move(in);

    // Expected: rebuild a full Outputs as forward() returns it.
    Outputs& o = gc.truth;
    const int64_t nr = vc.total_q, nh = c.h_q, ng = c.h_kv;
    for (int64_t r = 0; r < nr; ++r) o.rows.push_back(r);
    for (int64_t h = 0; h < nh; ++h) o.heads.push_back(h);
    for (int64_t k = 0; k < ng; ++k) o.groups.push_back(k);
    o.d_v = c.d_v;
    o.top_n = c.top_n;
    o.nc_max = vc.max_cmp_blocks();
    o.ns_max = vc.max_slc_blocks();
    const double inf = std::numeric_limits<double>::infinity();
    for (int b = 0; b < 3; ++b) {
      o.o_branch[b].assign(static_cast<std::size_t>(nr * nh * c.d_v), 0.0);
      o.lse[b].assign(static_cast<std::size_t>(nr * nh), -inf);
    }
    o.p_cmp.assign(static_cast<std::size_t>(nr * nh * o.nc_max), 0.0);
    o.scores.assign(static_cast<std::size_t>(nr * ng * o.ns_max), -inf);
    o.score_gap.assign(static_cast<std::size_t>(nr * ng), inf);
    o.indices.assign(static_cast<std::size_t>(nr * ng * c.top_n), -1);
    for (const auto& t : expected_float_tensors(vc)) {
      double err = 0;
      *expected_data(o, t.spec.name) = expected(g, name, t.spec.name, t.spec.dims, &err);
      gc.baseline_err[t.spec.name] = err;
    }
    if (computes_topn(vc)) {
      o.indices = ints(g, name, "expected/indices", {nr, ng, c.top_n});
    } else if (c.enable_slc) {
      o.indices = in_indices;  // given indices: the reference echoes its input
    }
    if (version >= 2 && h5::read_attr_int(g, "backward", w) != 0) read_grad(g, gc);
    return gc;
  }

  // Schema 2: inputs/do and expected/grad/<name>.
  void read_grad(hid_t g, GoldenCase& gc) const {
    const auto& vc = gc.vc;
    const auto& c = vc.cfg;
    gc.has_grad = true;
    gc.d_o = input(g, gc.name, "do", {vc.total_q, c.h_q, c.d_v}, c.dtype);
    try {
      nsa::ref::check_grad_output(vc, gc.d_o);
    } catch (const std::exception& e) {
      throw GoldenError(where(gc.name) + ": inputs/do: " + e.what());
    }
    auto& t = gc.grad_truth;
    for (int64_t r = 0; r < vc.total_q; ++r) t.rows.push_back(r);
    for (int64_t k = 0; k < vc.total_k; ++k) t.keys.push_back(k);
    for (const auto& spec : grad_specs(vc)) {
      double err = 0;
      nsa::ref::grad_tensor(vc, t, spec.name) =
          expected(g, gc.name, "grad/" + spec.name, spec.dims, &err);
      gc.grad_baseline_err[spec.name] = err;
    }
    // A disabled branch's gradients are exactly zero (docs/semantics.md, "Backward").
    for (Branch b : nsa::ref::kAllBranches) {
      if (c.enabled(b)) continue;
      const int i = static_cast<int>(b);
      t.dk[i].assign(static_cast<std::size_t>(vc.total_k * c.h_kv * c.d_k), 0.0);
      t.dv[i].assign(static_cast<std::size_t>(vc.total_k * c.h_kv * c.d_v), 0.0);
      t.dg[i].assign(static_cast<std::size_t>(vc.total_q * c.h_q), 0.0);
    }
  }
};

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::vector<std::string> member_names(hid_t grp, const std::string& context) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  if (H5Literate(grp, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &names) < 0)
    h5::fail(context + ": cannot list members (damaged file?)");
  return names;
}

}  // namespace

std::vector<std::string> expected_tensor_names(const ValidConfig& vc) {
  std::vector<std::string> names;
  for (const auto& t : expected_float_tensors(vc)) names.push_back(t.spec.name);
  if (computes_topn(vc)) names.push_back("indices");
  return names;
}

namespace {
GoldenFile read_golden_checked(const std::string& path);
}  // namespace

void write_golden(const std::string& path, const GoldenFile& file) {
  const auto f = h5::create_file(path);
  h5::write_attr(f, "schema_version", int64_t{kSchemaVersion});
  h5::write_attr(f, "suite", file.suite);
  h5::write_attr(f, "producer", std::string(kProducer));
  h5::write_attr(f, "generator_version", int64_t{nsa::ref::kGeneratorVersion});
  h5::write_attr(f, "num_cases", static_cast<int64_t>(file.cases.size()));
  h5::write_attr(f, "tolerance_alpha", 2.0);
  h5::write_attr(f, "tolerance_beta", 2.0);
  const auto cases = h5::create_group(f, "cases", path);
  for (const auto& gc : file.cases) {
    try {
      write_case(cases, gc);
    } catch (const GoldenError& e) {
      throw GoldenError(path + ": case " + gc.name + ": " + e.what());
    }
  }
  if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) h5::fail(path + ": cannot flush");
}

GoldenFile read_golden(const std::string& path) {
  try {
    return read_golden_checked(path);
  } catch (const GoldenError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw GoldenError(path + ": out of memory while reading (sizes of a damaged file?)");
  } catch (const std::exception& e) {
    throw GoldenError(path + ": " + e.what());
  }
}

namespace {

GoldenFile read_golden_checked(const std::string& path) {
  const auto f = h5::open_file(path);
  const auto version = h5::read_attr_int(f, "schema_version", path);
  if (version < kOldestReadableSchema || version > kSchemaVersion)
    throw GoldenError(
        path + ": schema_version " + std::to_string(version) + ", this program reads versions " +
        std::to_string(kOldestReadableSchema) + " (forward only), 2 (forward and backward) and " +
        std::to_string(kSchemaVersion) + " (also given compressed caches) (golden/SCHEMA.md)");
  GoldenFile out;
  out.schema_version = static_cast<int>(version);
  out.suite = h5::read_attr_string(f, "suite", path);
  const auto num = h5::read_attr_int(f, "num_cases", path);
  const auto cases = h5::open_group(f, "cases", path);
  const auto names = member_names(cases, path + ": group cases");
  if (static_cast<int64_t>(names.size()) != num)
    throw GoldenError(path + ": group cases holds " + std::to_string(names.size()) +
                      " cases, attribute num_cases says " + std::to_string(num));
  const Reader reader{path, version};
  for (const auto& n : names) out.cases.push_back(reader.read_case(cases, n));
  return out;
}

}  // namespace

namespace {

// Why a candidate dataset at path p cannot be judged (its shape or type), "" when it can.
std::string unjudgeable(hid_t ds, const std::string& p, const std::vector<int64_t>& dims,
                        bool is_int) {
  const auto have = h5::shape_of(ds);
  const auto type = h5::type_name(ds);
  if (have != dims)
    return "dataset " + p + " has shape " + h5::shape_string(have) + ", expected " +
           h5::shape_string(dims);
  if (is_int ? type != "int32"
             : type != "fp32" && type != "fp64" && type != "fp16" && type != "bf16")
    return "dataset " + p + " has type " + type + ", expected " +
           (is_int ? "int32" : "a float type (fp32, fp64, fp16, bf16)");
  return "";
}

// outputs/grad/<name> of one candidate case. A dataset that is no gradient of this case (a
// disabled branch's, a parameter phi lacks, a per-branch one of a shared_kv case, an unknown
// name) or that has the wrong shape or type is rejected, as the forward's tensors are.
void read_candidate_grads(hid_t og, const std::string& grp_name, const std::string& w,
                          const ValidConfig& vc, CandidateCase& cc) {
  const auto gg = h5::open_group(og, "grad", w);
  const auto specs = grad_specs(vc);
  for (const auto& name : member_names(gg, w + ": group " + grp_name + "/grad")) {
    const auto p = grp_name + "/grad/" + name;
    const auto key = "grad/" + name;
    const auto it =
        std::find_if(specs.begin(), specs.end(), [&](const Spec& s) { return s.name == name; });
    if (it == specs.end()) {
      std::string why = vc.cfg.shared_kv ? "the case shares K/V between the branches "
                                           "(shared_kv = 1): its K and V gradients are "
                                           "dk_shared and dv_shared"
                                         : "this case has no such gradient";
      try {
        (void)nsa::ref::grad_tensor(vc, cc.grads, name);
      } catch (const std::invalid_argument& e) {
        why = e.what();  // names the disabled branch or the missing parameter
      }
      cc.rejected.emplace(key, "dataset " + p + ": " + why);
      continue;
    }
    const auto ds = h5::open_dataset(gg, name, w);
    const auto why = unjudgeable(ds, p, it->dims, false);
    if (!why.empty()) {
      cc.rejected.emplace(key, why);
      continue;
    }
    nsa::ref::grad_tensor(vc, cc.grads, name) = h5::read_floats(ds, w + ": dataset " + p);
    cc.present.push_back(key);
  }
}

}  // namespace

namespace {

bool any_grad(const std::string& name) { return name.rfind("grad/", 0) == 0; }

}  // namespace

bool CandidateCase::has_grads() const {
  return std::any_of(present.begin(), present.end(), any_grad) ||
         std::any_of(rejected.begin(), rejected.end(),
                     [](const auto& r) { return any_grad(r.first); });
}

bool CandidateCase::has_forward() const {
  return std::any_of(present.begin(), present.end(),
                     [](const std::string& p) { return !any_grad(p); }) ||
         std::any_of(rejected.begin(), rejected.end(),
                     [](const auto& r) { return !any_grad(r.first); });
}

std::map<std::string, CandidateCase> read_candidate(const std::string& path,
                                                    const GoldenFile& golden) {
  const auto f = h5::open_file(path);
  std::map<std::string, CandidateCase> out;
  if (!h5::exists(f, "cases")) throw GoldenError(path + ": group cases is missing");
  const auto cases = h5::open_group(f, "cases", path);
  for (const auto& gc : golden.cases) {
    if (!h5::exists(cases, gc.name)) continue;
    const auto g = h5::open_group(cases, gc.name, path);
    const auto w = path + ": case " + gc.name;
    // A candidate writes outputs/; a golden file's expected/ is accepted too, so that any golden
    // file is a valid candidate for itself.
    const char* grp_name = h5::exists(g, "outputs") ? "outputs" : "expected";
    if (!h5::exists(g, grp_name)) continue;
    const auto og = h5::open_group(g, grp_name, w);
    CandidateCase cc;
    const auto& vc = gc.vc;
    const auto& c = vc.cfg;
    // A dataset of the wrong shape or type is the candidate's failure, recorded per tensor so
    // that the other tensors are still judged; a dataset that cannot be read is damage (throws).
    auto accept = [&](const std::string& name, hid_t ds, const std::vector<int64_t>& dims,
                      bool is_int) {
      const auto why = unjudgeable(ds, std::string(grp_name) + "/" + name, dims, is_int);
      if (why.empty()) return true;
      cc.rejected.emplace(name, why);
      return false;
    };
    for (const auto& t : expected_float_tensors(vc)) {
      const bool is_output = t.spec.name.rfind("o", 0) == 0 || t.spec.name.rfind("lse_", 0) == 0;
      if (!is_output || !h5::exists(og, t.spec.name)) continue;
      const auto ds = h5::open_dataset(og, t.spec.name, w);
      if (!accept(t.spec.name, ds, t.spec.dims, false)) continue;
      *expected_data(cc.outputs, t.spec.name) =
          h5::read_floats(ds, w + ": dataset " + grp_name + "/" + t.spec.name);
      cc.present.push_back(t.spec.name);
    }
    if (computes_topn(vc) && h5::exists(og, "indices")) {
      const auto ds = h5::open_dataset(og, "indices", w);
      if (accept("indices", ds, {vc.total_q, c.h_kv, c.top_n}, true)) {
        cc.outputs.indices = h5::read_int32(ds, w + ": dataset " + grp_name + "/indices");
        cc.present.push_back("indices");
      }
    }
    if (h5::exists(og, "grad")) read_candidate_grads(og, grp_name, w, vc, cc);
    out.emplace(gc.name, std::move(cc));
  }
  return out;
}

void write_candidate(const std::string& path,
                     const std::vector<std::pair<std::string, Outputs>>& cases,
                     const GoldenFile& golden,
                     const std::map<std::string, nsa::ref::Gradients>& grads) {
  const auto f = h5::create_file(path);
  const auto cg = h5::create_group(f, "cases", path);
  for (const auto& [name, outputs] : cases) {
    const GoldenCase* gc = nullptr;
    for (const auto& x : golden.cases)
      if (x.name == name) gc = &x;
    if (!gc) throw GoldenError(path + ": no golden case named " + name);
    const auto g = h5::create_group(cg, name, path);
    const auto og = h5::create_group(g, "outputs", path);
    Outputs o = outputs;
    for (const auto& t : expected_float_tensors(gc->vc)) {
      const auto* d = expected_data(o, t.spec.name);
      const bool is_output = t.spec.name.rfind("o", 0) == 0 || t.spec.name.rfind("lse_", 0) == 0;
      if (!is_output || d->empty()) continue;
      h5::write_dataset(og, t.spec.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, d->data(), t.spec.dims);
    }
    if (computes_topn(gc->vc) && !o.indices.empty())
      write_int32(og, "indices", o.indices, {gc->vc.total_q, gc->vc.cfg.h_kv, gc->vc.cfg.top_n});
    const auto git = grads.find(name);
    if (git == grads.end()) continue;
    const auto gg = h5::create_group(og, "grad", path);
    for (const auto& t : grad_specs(gc->vc)) {
      const auto& d = nsa::ref::grad_tensor(gc->vc, git->second, t.name);
      if (d.empty()) continue;
      if (static_cast<int64_t>(d.size()) != count(t.dims))
        throw GoldenError(path + ": case " + name + ": gradient " + t.name + " has " +
                          std::to_string(d.size()) + " elements, shape " +
                          h5::shape_string(t.dims) + " needs " + std::to_string(count(t.dims)));
      h5::write_dataset(gg, t.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, d.data(), t.dims);
    }
  }
}

}  // namespace nsa::golden
