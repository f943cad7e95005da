// Config files and their validation (docs/fuzzing.md, target "config"). For any byte string:
//  - config_from_json returns a Config or throws ConfigError (nothing else, no crash);
//  - a parsed config round-trips: config_from_json(config_to_json(c)) writes back identically;
//  - validate returns a ValidConfig or throws ConfigError; an accepted config obeys every rule
//    of docs/semantics.md (checked here independently), is normalized (scale set, t_q set,
//    cu_seqlens filled) and validating it again changes nothing;
//  - a valid config small enough to hold (size cap below) runs through the generator and the
//    reference forward on its first and last query rows. Validation accepts configs describing
//    tensors of up to 2^52 elements, so the cap is what keeps the fuzzer from allocating them.
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "finding.hpp"
#include "nsa/ref/config_json.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"

namespace {

using namespace nsa::ref;

constexpr int64_t kCapElements = int64_t{1} << 14;  // per input tensor
constexpr int64_t kCapTokens = 4096;                // longest sequence, and top_n

void check_rules(const ValidConfig& vc, const std::string& text) {
  const Config& c = vc.cfg;
  auto rule = [&](bool ok, const char* what) {
    NSA_FUZZ_EXPECT(ok, std::string("validate() accepted a config breaking: ") + what +
                            " (input: " + text.substr(0, 400) + ")");
  };
  rule(c.h_q >= 1 && c.h_kv >= 1 && c.h_q % c.h_kv == 0, "G = h_q / h_kv integer >= 1");
  rule(vc.group == c.h_q / c.h_kv, "group = h_q / h_kv");
  rule(c.d_k >= 1 && c.d_v >= 1, "head dims >= 1");
  rule(c.scale.has_value() && std::isfinite(*c.scale) && *c.scale > 0 && *c.scale == vc.scale,
       "scale set, finite, > 0");
  rule(c.cmp_stride >= 1 && c.cmp_block >= c.cmp_stride && c.cmp_block % c.cmp_stride == 0,
       "d >= 1, l >= d, l % d == 0");
  rule(c.slc_block >= 1 && c.slc_block % c.cmp_stride == 0, "l' % d == 0");
  rule(c.n_init >= 0 && c.n_local >= 0 && c.top_n >= 1 && c.top_n >= c.n_init + c.n_local,
       "n >= n_init + n_local");
  rule(c.window >= 1, "w >= 1");
  rule(c.score_mapping != ScoreMapping::identity ||
           (c.cmp_block == c.cmp_stride && c.cmp_stride == c.slc_block),
       "identity needs l = d = l'");
  rule(c.enable_cmp || c.enable_slc || c.enable_win, "a branch enabled");
  rule(c.phi == Phi::mlp ? c.phi_hidden >= 1 : c.phi_hidden == 0, "phi_hidden only for mlp");
  rule(c.cu_seqlens_k.size() >= 2 && c.cu_seqlens_k.size() == c.cu_seqlens_q.size() &&
           c.cu_seqlens_k.front() == 0 && c.cu_seqlens_q.front() == 0,
       "cu_seqlens filled, B+1 entries from 0");
  rule(vc.seqs.size() + 1 == c.cu_seqlens_k.size(), "one sequence per cu_seqlens step");
  int64_t max_t_k = 0;
  for (std::size_t b = 0; b < vc.seqs.size(); ++b) {
    const auto& s = vc.seqs[b];
    rule(s.k_begin == c.cu_seqlens_k[b] && s.q_begin == c.cu_seqlens_q[b], "sequence offsets");
    rule(s.t_k == c.cu_seqlens_k[b + 1] - c.cu_seqlens_k[b] &&
             s.t_q == c.cu_seqlens_q[b + 1] - c.cu_seqlens_q[b],
         "sequence lengths");
    rule(s.t_q >= 0 && s.t_q <= s.t_k && s.t_k <= kMaxTokens, "0 <= T_q <= T_k <= 2^31");
    max_t_k = std::max(max_t_k, s.t_k);
  }
  rule(vc.max_t_k == max_t_k, "max_t_k");
  rule(vc.total_k == c.cu_seqlens_k.back() && vc.total_q == c.cu_seqlens_q.back(), "totals");
  if (c.layout == Layout::padded)
    rule(c.t_q >= 0 && c.t_q <= c.t_k && vc.total_k == c.batch * c.t_k, "padded shape");
}

bool small_enough(const ValidConfig& vc) {
  if (vc.max_t_k > kCapTokens || vc.cfg.top_n > kCapTokens) return false;
  if (vc.total_q > kCapTokens || vc.total_k > kCapTokens) return false;
  const auto s = input_shapes(vc);
  for (int64_t n : {s.q, s.k, s.v, s.gate, s.phi_pos_k, s.phi_pos_v, s.phi_w1_k, s.phi_w1_v,
                    s.phi_b1, s.phi_w2_k, s.phi_w2_v, s.phi_b2_k, s.phi_b2_v, s.indices})
    if (n > kCapElements) return false;
  // Outputs: p_cmp and scores rows for the two computed rows, times heads.
  return vc.cfg.h_q * (vc.max_cmp_blocks() + 1) <= kCapElements;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Config cfg;
  try {
    cfg = config_from_json(text);
  } catch (const ConfigError& e) {
    // The field may be "" (an empty key is a legal JSON key, rejected as unknown); the message
    // must still name it, completely (what() is a C string: a NUL in the field would cut it).
    NSA_FUZZ_EXPECT(
        e.field().find('\0') == std::string::npos &&
            std::string_view(e.what()).find("field '" + e.field() + "'") != std::string_view::npos,
        std::string("ConfigError message does not name its field: ") + e.what());
    return 0;
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("config_from_json threw a non-ConfigError: ") + e.what());
  }

  const std::string json = config_to_json(cfg);
  try {
    const std::string again = config_to_json(config_from_json(json));
    NSA_FUZZ_EXPECT(again == json,
                    "config_to_json/config_from_json round trip changed the "
                    "config:\n" +
                        json + "\nbecame\n" + again);
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("config_from_json rejected config_to_json's output: ") +
                       e.what() + "\n" + json);
  }

  ValidConfig vc;
  try {
    vc = validate(cfg);
  } catch (const ConfigError& e) {
    NSA_FUZZ_EXPECT(!e.field().empty(),
                    std::string("validate() threw a ConfigError without a field: ") + e.what());
    return 0;
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("validate threw a non-ConfigError: ") + e.what() + "\n" + json);
  }
  check_rules(vc, text);
  try {
    const ValidConfig again = validate(vc.cfg);
    // Offsets compared as vectors, the rest through JSON (long offset tables are slow to print).
    auto scalars = [](Config c) {
      c.cu_seqlens_k.clear();
      c.cu_seqlens_q.clear();
      return config_to_json(c);
    };
    NSA_FUZZ_EXPECT(again.cfg.cu_seqlens_k == vc.cfg.cu_seqlens_k &&
                        again.cfg.cu_seqlens_q == vc.cfg.cu_seqlens_q &&
                        scalars(again.cfg) == scalars(vc.cfg),
                    "validate() is not idempotent on its normalized config:\n" + json);
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("validate() rejected its own normalized config: ") + e.what() +
                       "\n" + json);
  }

  if (!small_enough(vc) || vc.total_q == 0) return 0;
  const Inputs in = generate_inputs(vc, 1);
  RowSelection sel;
  sel.threads = 1;
  sel.rows = {0, vc.total_q - 1};
  try {
    const Outputs out = forward(vc, in, Precision::f64, sel);
    for (double x : out.o) NSA_FUZZ_EXPECT(std::isfinite(x), "non-finite output o\n" + json);
  } catch (const std::exception& e) {
    nsa::fuzz::finding(std::string("forward failed on a valid config with generated inputs: ") +
                       e.what() + "\n" + json);
  }
  return 0;
}
