// check_property(): the RapidCheck + Catch side of the harness, compiled into the test
// executables only (it needs Catch's runner).
#include <rapidcheck/catch.h>

#include <cstdlib>

#include "harness.hpp"

namespace nsa::props {

void check_property(const std::string& name, const rc::Gen<Case>& gen) {
  const Property* p = find_property(name);
  REQUIRE(p != nullptr);
  const PropertyFn fn = p->fn;
  rc::prop(name, [name, fn, gen] {
    const Case c = *gen;
    if (std::getenv("NSA_PROPS_STATS"))
      RC_TAG(nsa::ref::validate(c.cfg).max_t_k / 16 * 16,
             nsa::ref::validate(c.cfg).total_q / 32 * 32);
    const std::string failure = run_case(name, fn, c);
    if (!failure.empty()) RC_FAIL(failure);
  });
}

}  // namespace nsa::props
