// Writes small golden files (a few KiB each) into a directory, as seeds for the golden_reader
// target: the committed golden set is larger than a fuzzer's inputs should be, so the seeds
// cover the schema's variants (padded/varlen, given indices, mlp phi, fp16/bf16) on tiny shapes.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "nsa/golden/suites.hpp"
#include "nsa/ref/config.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  using namespace nsa::ref;
  std::vector<nsa::golden::CaseSpec> specs;
  auto tiny = [] {
    Config c;
    c.t_k = 9;
    c.d_k = c.d_v = 2;
    c.cmp_block = 4;
    c.cmp_stride = 2;
    c.slc_block = 4;
    c.top_n = 3;
    c.window = 3;
    return c;
  };
  {
    Config c = tiny();
    c.dtype = Dtype::bf16;
    specs.push_back({"padded_bf16", c, 1, Regime::typical});
  }
  {
    Config c = tiny();
    c.layout = Layout::varlen;
    c.t_k = 0;
    c.cu_seqlens_k = {0, 0, 5, 11};
    c.h_q = 2;
    c.dtype = Dtype::f16;
    specs.push_back({"varlen_fp16_gqa", c, 2, Regime::ties});
  }
  {
    Config c = tiny();
    c.profile = "custom";
    c.given_indices = true;
    c.index_policy = IndexPolicy::multiset;
    c.phi = Phi::mlp;
    c.phi_hidden = 2;
    c.t_q = 2;
    specs.push_back({"given_mlp", c, 3, Regime::extreme});
  }
  std::filesystem::create_directories(argv[1]);
  for (const auto& spec : specs) {
    nsa::golden::GoldenFile file;
    file.suite = "config";
    file.cases.push_back(nsa::golden::make_case(spec, Precision::f64, 1));
    const auto path = std::filesystem::path(argv[1]) / (spec.name + ".h5");
    nsa::golden::write_golden(path.string(), file);
    std::printf("%s\n", path.string().c_str());
  }
  return 0;
}
