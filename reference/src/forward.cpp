// Instantiations of the one forward code path for each Precision.
#include "forward_impl.hpp"

namespace nsa::ref {

const char* to_string(Precision p) {
  switch (p) {
    case Precision::f64:
      return "f64";
    case Precision::f128:
      return "f128";
    case Precision::bin50:
      return "bin50";
    case Precision::baseline:
      return "baseline";
  }
  return "<invalid>";
}

Outputs forward(const ValidConfig& vc, const Inputs& in, Precision precision,
                const RowSelection& sel) {
  check_inputs(vc, in);
  const detail::Exact exact{vc.cfg.dtype};
  switch (precision) {
    case Precision::f64:
      return detail::run_forward<double>(vc, in, sel, exact);
    case Precision::f128:
      return detail::run_forward<detail::Quad>(vc, in, sel, exact);
    case Precision::bin50:
      return detail::run_forward<detail::Bin50>(vc, in, sel, exact);
    case Precision::baseline:
      return detail::run_forward<float>(vc, in, sel,
                                        detail::DtypeFaithful{vc.cfg.dtype, {kBaselineOrders[0]}});
  }
  throw std::invalid_argument("forward: unknown precision");
}

Outputs forward_model(const ValidConfig& vc, const Inputs& in, const KernelModel& model,
                      const RowSelection& sel) {
  if (model.accumulator == Dtype::f64)
    throw std::invalid_argument(
        "forward_model: accumulator fp64 is not modelled (the models compute in fp32; use "
        "Precision::f64 for a double-precision candidate)");
  check_inputs(vc, in);
  return detail::run_forward<float>(vc, in, sel, detail::DtypeFaithful{vc.cfg.dtype, model});
}

std::vector<Outputs> forward_baselines(const ValidConfig& vc, const Inputs& in,
                                       const RowSelection& sel) {
  check_inputs(vc, in);
  std::vector<Outputs> runs;
  for (SumOrder order : kBaselineOrders)
    runs.push_back(
        detail::run_forward<float>(vc, in, sel, detail::DtypeFaithful{vc.cfg.dtype, {order}}));
  return runs;
}

}  // namespace nsa::ref
