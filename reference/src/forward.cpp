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
      return detail::run_forward<float>(vc, in, sel, detail::DtypeFaithful{vc.cfg.dtype});
  }
  throw std::invalid_argument("forward: unknown precision");
}

}  // namespace nsa::ref
