// Mutated and truncated golden HDF5 files (docs/fuzzing.md, target "golden_reader"):
// nsa::golden::read_golden either returns a file whose every case is consistent (config valid,
// input and expected tensor sizes matching the config, so nothing downstream can read out of
// bounds) or throws GoldenError. Any other exception, a crash, a leak or UB in our code is a
// finding. The reader takes a path, so each input is written to a per-process temporary file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "finding.hpp"
#include "nsa/golden/golden_file.hpp"

namespace {

using namespace nsa::ref;

// Removed at exit (fork-mode fuzzing starts many processes; a crashed one leaves its file).
struct TempFile {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("nsa_fuzz_golden_" + std::to_string(static_cast<long>(getpid())) + ".h5"))
                         .string();
  ~TempFile() { std::remove(path.c_str()); }
};

const std::string& temp_path() {
  static const TempFile file;
  return file.path;
}

void check_sizes(const nsa::golden::GoldenCase& gc) {
  const ValidConfig& vc = gc.vc;
  const auto& c = vc.cfg;
  const std::string where = "case '" + gc.name + "': ";
  try {
    (void)validate(c);
  } catch (const std::exception& e) {
    nsa::fuzz::finding(where + "read_golden returned a config that does not validate: " + e.what());
  }
  const auto s = input_shapes(vc);
  const auto& in = gc.inputs;
  NSA_FUZZ_EXPECT(static_cast<int64_t>(in.q.size()) == s.q, where + "q size");
  for (Branch b : kAllBranches) {
    const auto i = static_cast<std::size_t>(b);
    // Tensors a config does not need may be absent (empty); present ones must be full.
    NSA_FUZZ_EXPECT(in.k[i].empty() || static_cast<int64_t>(in.k[i].size()) == s.k,
                    where + "k size");
    NSA_FUZZ_EXPECT(in.v[i].empty() || static_cast<int64_t>(in.v[i].size()) == s.v,
                    where + "v size");
    NSA_FUZZ_EXPECT(in.gate[i].empty() || static_cast<int64_t>(in.gate[i].size()) == s.gate,
                    where + "gate size");
  }
  NSA_FUZZ_EXPECT(static_cast<int64_t>(in.indices.size()) == s.indices, where + "indices size");
  const auto& t = gc.truth;
  const auto per_head = static_cast<std::size_t>(vc.total_q * c.h_q);
  NSA_FUZZ_EXPECT(t.o.size() == per_head * static_cast<std::size_t>(c.d_v),
                  where + "expected o size");
  for (Branch b : kAllBranches) {
    const auto i = static_cast<std::size_t>(b);
    NSA_FUZZ_EXPECT(
        t.o_branch[i].empty() || t.o_branch[i].size() == per_head * static_cast<std::size_t>(c.d_v),
        where + "expected o_" + std::string(to_string(b)) + " size");
    NSA_FUZZ_EXPECT(t.lse[i].empty() || t.lse[i].size() == per_head,
                    where + "expected lse_" + std::string(to_string(b)) + " size");
  }
  const auto per_group = static_cast<std::size_t>(vc.total_q * c.h_kv);
  NSA_FUZZ_EXPECT(
      t.indices.empty() || t.indices.size() == per_group * static_cast<std::size_t>(c.top_n),
      where + "expected indices size");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(temp_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto file = nsa::golden::read_golden(temp_path());
    for (const auto& gc : file.cases) check_sizes(gc);
  } catch (const nsa::golden::GoldenError& e) {
    NSA_FUZZ_EXPECT(std::string(e.what()).size() > 0, "GoldenError without a message");
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("read_golden threw a non-GoldenError: ") + e.what());
  }
  return 0;
}
