// Instantiations of the one backward code path for each Precision, the check of dO, and the
// names of the gradient tensors.
#include "nsa/ref/backward.hpp"

#include <algorithm>
#include <stdexcept>

#include "backward_impl.hpp"

namespace nsa::ref {
namespace {

const char* const kPhiSlots[] = {"pos", "w1", "b1", "w2", "b2"};

// The parameters phi has: linear P, W; mlp P, W1, b1, W2, b2.
std::vector<std::string> phi_slots(const Config& c) {
  if (c.phi == Phi::linear) return {"pos", "w1"};
  if (c.phi == Phi::mlp) return {"pos", "w1", "b1", "w2", "b2"};
  return {};
}

template <class P>
auto& phi_slot(P& params, const std::string& slot) {
  if (slot == "pos") return params.pos;
  if (slot == "w1") return params.w1;
  if (slot == "b1") return params.b1;
  if (slot == "w2") return params.w2;
  return params.b2;
}

template <class G>
auto& lookup(const ValidConfig& vc, G& g, const std::string& name) {
  const auto& c = vc.cfg;
  auto fail = [&](const std::string& why) -> std::invalid_argument {
    return std::invalid_argument("gradient '" + name + "': " + why);
  };
  if (name == "dq") return g.dq;
  if (name == "dk_tilde" || name == "dv_tilde") {
    if (!c.cmp_given) throw fail("only with cmp_given (else phi's output is not an input)");
    if (!c.enable_cmp)
      throw fail("branch cmp is disabled (enable_cmp = false): it has no gradients");
    return name == "dk_tilde" ? g.dk_tilde : g.dv_tilde;
  }
  if (c.cmp_given && (name == "dk_cmp" || name == "dv_cmp"))
    throw fail("cmp_given: K_cmp/V_cmp are not inputs (the gradient goes to " + name.substr(0, 2) +
               "_tilde)");
  if ((name == "dk_shared" || name == "dv_shared")) {
    if (!c.shared_kv) throw fail("only with shared_kv (the branches have their own K/V)");
    return name == "dk_shared" ? g.dk_shared : g.dv_shared;
  }
  for (Branch b : kAllBranches) {
    const std::string s(to_string(b));
    const int i = static_cast<int>(b);
    if (name != "dk_" + s && name != "dv_" + s && name != "dg_" + s) continue;
    if (!c.enabled(b))
      throw fail("branch " + s + " is disabled (enable_" + s + " = false): it has no gradients");
    return name[1] == 'k' ? g.dk[i] : name[1] == 'v' ? g.dv[i] : g.dg[i];
  }
  for (const char* t : {"k", "v"})
    for (const char* slot : kPhiSlots) {
      if (name != std::string("dphi_") + t + "_" + slot) continue;
      const auto slots = phi_slots(c);
      if (std::find(slots.begin(), slots.end(), slot) == slots.end())
        throw fail("phi " + std::string(to_string(c.phi)) + " has no parameter '" + slot + "'");
      if (!c.enable_cmp)
        throw fail("branch cmp is disabled (enable_cmp = false): it has no gradients");
      if (c.cmp_given) throw fail("cmp_given: phi is not run, its parameters have no gradients");
      return phi_slot(*t == 'k' ? g.dphi_k : g.dphi_v, slot);
    }
  throw fail(
      "unknown gradient tensor (expected one of dq, dk_<b>, dv_<b>, dg_<b>, dk_shared, "
      "dv_shared, dk_tilde, dv_tilde, dphi_<k|v>_<pos|w1|b1|w2|b2>)");
}

}  // namespace

std::vector<std::string> grad_tensor_names(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  std::vector<std::string> names{"dq"};
  for (Branch b : kAllBranches) {
    if (!c.enabled(b)) continue;
    const std::string s(to_string(b));
    // With shared K/V there is one K and one V tensor: only their gradients are inputs' gradients.
    // A given compressed cache replaces K_cmp/V_cmp (and phi) as the compression's input.
    if (b == Branch::cmp && c.cmp_given)
      names.insert(names.end(), {"dk_tilde", "dv_tilde"});
    else if (!c.shared_kv)
      names.insert(names.end(), {"dk_" + s, "dv_" + s});
    names.push_back("dg_" + s);
  }
  if (c.shared_kv) names.insert(names.end(), {"dk_shared", "dv_shared"});
  if (c.enable_cmp && !c.cmp_given)
    for (const char* t : {"k", "v"})
      for (const auto& slot : phi_slots(c)) names.push_back(std::string("dphi_") + t + "_" + slot);
  return names;
}

const std::vector<double>& grad_tensor(const ValidConfig& vc, const Gradients& g,
                                       const std::string& name) {
  return lookup(vc, g, name);
}

std::vector<double>& grad_tensor(const ValidConfig& vc, Gradients& g, const std::string& name) {
  return lookup(vc, g, name);
}

void check_grad_output(const ValidConfig& vc, const std::vector<double>& d_o) {
  check_input_tensor("do", d_o, vc.total_q * vc.cfg.h_q * vc.cfg.d_v, vc.cfg.dtype);
}

Gradients backward(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                   Precision precision, const GradSelection& sel) {
  check_inputs(vc, in);
  check_grad_output(vc, d_o);
  const detail::Exact exact{vc.cfg.dtype};
  switch (precision) {
    case Precision::f64:
      return detail::run_backward<double>(vc, in, d_o, sel, exact);
    case Precision::f128:
      return detail::run_backward<detail::Quad>(vc, in, d_o, sel, exact);
    case Precision::bin50:
      return detail::run_backward<detail::Bin50>(vc, in, d_o, sel, exact);
    case Precision::baseline:
      return detail::run_backward<float>(vc, in, d_o, sel,
                                         detail::DtypeFaithful{vc.cfg.dtype, {kBaselineOrders[0]}});
  }
  throw std::invalid_argument("backward: unknown precision");
}

std::vector<Gradients> backward_baselines(const ValidConfig& vc, const Inputs& in,
                                          const std::vector<double>& d_o,
                                          const GradSelection& sel) {
  check_inputs(vc, in);
  check_grad_output(vc, d_o);
  std::vector<Gradients> runs;
  for (SumOrder order : kBaselineOrders)
    runs.push_back(detail::run_backward<float>(vc, in, d_o, sel,
                                               detail::DtypeFaithful{vc.cfg.dtype, {order}}));
  return runs;
}

}  // namespace nsa::ref
