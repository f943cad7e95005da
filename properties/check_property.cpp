// check_property(): the RapidCheck + Catch side of the harness, compiled into the test
// executables only (it needs Catch's runner).
#include <rapidcheck/catch.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "harness.hpp"

namespace nsa::props {

void check_property(const std::string& name, const rc::Gen<Case>& gen, int cost) {
  const Property* p = find_property(name);
  REQUIRE(p != nullptr);
  const PropertyFn fn = p->fn;
  auto property = [name, fn, gen] {
    const Case c = *gen;
    if (std::getenv("NSA_PROPS_STATS"))
      RC_TAG(nsa::ref::validate(c.cfg).max_t_k / 16 * 16,
             nsa::ref::validate(c.cfg).total_q / 32 * 32);
    const std::string failure = run_case(name, fn, c);
    if (!failure.empty()) RC_FAIL(failure);
  };
  if (cost <= 1) {
    rc::prop(name, property);
    return;
  }
  // rc::prop with a smaller case count: the same checking and report, other parameters as
  // configured.
  SECTION(name) {
    auto params = rc::detail::configuration().testParams;
    params.maxSuccess = std::max(1, params.maxSuccess / cost);
    const rc::detail::TestMetadata meta{name, name};
    const auto result = rc::detail::checkTestable(property, meta, params);
    if (result.is<rc::detail::SuccessResult>()) {
      SUCCEED();
    } else {
      std::ostringstream ss;
      rc::detail::printResultMessage(result, ss);
      INFO(ss.str() << "\n");
      FAIL();
    }
  }
}

}  // namespace nsa::props
