// A program outside NSA Verify, built against its installed CMake package (CMakeLists.txt beside
// it). It reads a committed golden file from the installed data directory, runs the reference on
// one case, and judges two candidates with the installed judge (nsa::golden::check_case):
//   - correct: the reference's own outputs in double precision, which must pass;
//   - wrong: the outputs of the reference with the window convention flipped (w vs w + 1 keys), a
//     typical bug of another implementation, which must fail on o_win.
// With the CUDA kernels in the package and a device present it judges their outputs too (must
// pass). Exit status: 0 when every verdict is as expected, 1 when one is not, 2 for a bad command
// line or an error (an unreadable golden file, an unknown case).
//
// Usage: nsa_consumer [GOLDEN.h5 [CASE]]   (default: the installed smoke.h5, its first case)
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "nsa/golden/check.hpp"
#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/forward.hpp"
#ifdef NSA_CONSUMER_CUDA
#include "nsa/cuda/forward.hpp"
#endif

namespace {

const nsa::golden::GoldenCase& find_case(const nsa::golden::GoldenFile& file,
                                         const std::string& name) {
  for (const auto& gc : file.cases)
    if (name.empty() || gc.name == name) return gc;
  throw std::invalid_argument("no case '" + name + "' in the golden file");
}

// Prints the verdict and returns whether it is the expected one.
bool report(const char* what, const nsa::ref::Verdict& v, bool must_pass) {
  std::printf("%s: %s (must %s)\n%s", what, v.pass() ? "PASS" : "FAIL", must_pass ? "pass" : "fail",
              v.table().c_str());
  return v.pass() == must_pass;
}

int run(const std::string& path, const std::string& case_name) {
  const nsa::golden::GoldenFile file = nsa::golden::read_golden(path);
  const nsa::golden::GoldenCase& gc = find_case(file, case_name);
  std::printf("golden file %s: suite %s, %zu cases; case %s, %s\n\n", path.c_str(),
              file.suite.c_str(), file.cases.size(), gc.name.c_str(),
              nsa::ref::describe(gc.vc.cfg).c_str());
  bool as_expected = true;

  const nsa::ref::Outputs correct = nsa::ref::forward(gc.vc, gc.inputs, nsa::ref::Precision::f64);
  const nsa::ref::Verdict good = nsa::golden::check_case(gc, correct);
  as_expected &= report("correct candidate (reference, f64)", good, true);

  // A convention bug of the kind the judge exists to catch: the window branch attends to one key
  // more (or less) than the case's convention says (window_keys w vs w_plus_one).
  nsa::ref::Config off_by_one = gc.vc.cfg;
  off_by_one.profile = "custom";  // a named profile fixes window_keys
  off_by_one.window_keys = off_by_one.window_keys == nsa::ref::WindowKeys::w
                               ? nsa::ref::WindowKeys::w_plus_one
                               : nsa::ref::WindowKeys::w;
  const nsa::ref::Outputs wrong =
      nsa::ref::forward(nsa::ref::validate(off_by_one), gc.inputs, nsa::ref::Precision::f64);
  std::printf("\n");
  const nsa::ref::Verdict bad = nsa::golden::check_case(gc, wrong);
  as_expected &= report("wrong candidate (window of the other window_keys convention)", bad, false);
  const nsa::ref::TensorVerdict* o_win = bad.find("o_win");
  if (o_win == nullptr) throw std::invalid_argument("case " + gc.name + " has no window branch");
  if (o_win->pass) {
    std::printf("the judge did not fail o_win\n");
    as_expected = false;
  }

#ifdef NSA_CONSUMER_CUDA
  if (!nsa::cuda::device_available()) {
    std::printf("\nCUDA kernels: in the package, no device here (not run)\n");
  } else if (const std::string why = nsa::cuda::unsupported(gc.vc); !why.empty()) {
    std::printf("\nCUDA kernels: case unsupported (%s)\n", why.c_str());
  } else {
    as_expected &= report("\nCUDA kernels",
                          nsa::golden::check_case(gc, nsa::cuda::forward(gc.vc, gc.inputs)), true);
  }
#endif

  std::printf("\nnsa_consumer: %s\n",
              as_expected ? "every verdict as expected" : "a verdict was NOT as expected");
  return as_expected ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 3) {
    std::fprintf(stderr, "usage: nsa_consumer [GOLDEN.h5 [CASE]]\n");
    return 2;
  }
  const std::string path = argc > 1 ? argv[1] : std::string(NSA_GOLDEN_DIR) + "/smoke.h5";
  try {
    return run(path, argc > 2 ? argv[2] : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nsa_consumer: %s: %s\n", path.c_str(), e.what());
    return 2;
  }
}
