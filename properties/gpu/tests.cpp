// GPU TEST_CASEs: configs the kernels support, built directly (fp64 becomes a kernel dtype; no
// filtering), across dtypes, shapes, G, n, phi and profiles.
#include <catch2/catch.hpp>

#include "../harness.hpp"

namespace nsa::props {
namespace {

enum class Queries { some, none };

// Moves a case onto a batch with (Queries::some) or without (Queries::none) any query row, so
// that a problem with no queries is its own property and a failure on it does not hide others.
void set_queries(nsa::ref::Config& c, Queries want) {
  const auto v = nsa::ref::validate(c);
  if ((v.total_q > 0) == (want == Queries::some)) return;
  c.layout = nsa::ref::Layout::padded;
  c.cu_seqlens_k.clear();
  c.cu_seqlens_q.clear();
  c.batch = 1;
  c.t_k = want == Queries::some ? std::max<int64_t>(v.max_t_k, 1) : v.max_t_k;
  c.t_q = want == Queries::some ? c.t_k : 0;
}

// The kernels take fp32/fp16/bf16; fp64 cases are moved onto one of them by the seed.
rc::Gen<Case> kernel_cases(GenOptions opt, bool adversarial, Queries queries = Queries::some) {
  return rc::gen::map(gen_case(opt), [adversarial, queries](Case c) {
    set_queries(c.cfg, queries);
    if (c.cfg.dtype == nsa::ref::Dtype::f64) {
      static const nsa::ref::Dtype kernel_dtypes[] = {nsa::ref::Dtype::f32, nsa::ref::Dtype::f16,
                                                      nsa::ref::Dtype::bf16};
      c.cfg.dtype = kernel_dtypes[c.seed % 3];
    }
    // The nsa_triton profile reads given lists under negative_to_zero, which the kernels do not
    // take (nsa::cuda::unsupported); its computed lists are unaffected by the policy.
    if (c.cfg.given_indices && c.cfg.index_policy == nsa::ref::IndexPolicy::negative_to_zero)
      c.cfg.given_indices = false;
    if (adversarial) {
      make_custom(c.cfg);
      c.cfg.enable_slc = true;
      c.cfg.given_indices = true;
      c.cfg.index_policy =
          c.seed % 4 == 0 ? nsa::ref::IndexPolicy::skip_invalid : nsa::ref::IndexPolicy::multiset;
    }
    return c;
  });
}

GenOptions gpu_options() {
  GenOptions o;
  o.max_tokens = 160;
  o.allow_given_indices = true;
  return o;
}

}  // namespace

TEST_CASE("kernel_matches_reference", "[properties][gpu]") {
  check_property("kernel_matches_reference", kernel_cases(gpu_options(), false));
}

TEST_CASE("kernel_adversarial_indices", "[properties][gpu]") {
  check_property("kernel_adversarial_indices", kernel_cases(gpu_options(), true));
}

}  // namespace nsa::props

namespace nsa::props {

TEST_CASE("kernel_no_query_rows", "[properties][gpu]") {
  check_property("kernel_matches_reference", kernel_cases(gpu_options(), false, Queries::none));
}

}  // namespace nsa::props
