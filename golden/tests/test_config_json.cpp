// Config files: every field by name, profile first, and a ConfigError naming the field for every
// kind of bad input.
#include <catch2/catch.hpp>
#include <string>

#include "nsa/ref/config_json.hpp"

using namespace nsa::ref;

namespace {

// Field-by-field equality, written out so that it does not depend on the code under test.
void require_same(const Config& a, const Config& b) {
  CHECK(a.layout == b.layout);
  CHECK(a.batch == b.batch);
  CHECK(a.t_k == b.t_k);
  CHECK(a.t_q == b.t_q);
  CHECK(a.cu_seqlens_k == b.cu_seqlens_k);
  CHECK(a.cu_seqlens_q == b.cu_seqlens_q);
  CHECK(a.h_q == b.h_q);
  CHECK(a.h_kv == b.h_kv);
  CHECK(a.d_k == b.d_k);
  CHECK(a.d_v == b.d_v);
  CHECK(a.scale.has_value() == b.scale.has_value());
  if (a.scale && b.scale) CHECK(*a.scale == *b.scale);
  CHECK(a.cmp_block == b.cmp_block);
  CHECK(a.cmp_stride == b.cmp_stride);
  CHECK(a.slc_block == b.slc_block);
  CHECK(a.top_n == b.top_n);
  CHECK(a.n_init == b.n_init);
  CHECK(a.n_local == b.n_local);
  CHECK(a.window == b.window);
  CHECK(a.enable_cmp == b.enable_cmp);
  CHECK(a.enable_slc == b.enable_slc);
  CHECK(a.enable_win == b.enable_win);
  CHECK(a.phi == b.phi);
  CHECK(a.phi_hidden == b.phi_hidden);
  CHECK(a.phi_act == b.phi_act);
  CHECK(a.dtype == b.dtype);
  CHECK(a.shared_kv == b.shared_kv);
  CHECK(a.given_indices == b.given_indices);
  CHECK(a.cmp_visibility == b.cmp_visibility);
  CHECK(a.score_mapping == b.score_mapping);
  CHECK(a.group_reduce == b.group_reduce);
  CHECK(a.forced_mode == b.forced_mode);
  CHECK(a.tie_break == b.tie_break);
  CHECK(a.slc_causal == b.slc_causal);
  CHECK(a.index_policy == b.index_policy);
  CHECK(a.window_keys == b.window_keys);
  CHECK(a.profile == b.profile);
}

// Parses text expecting a ConfigError; returns it for inspection.
ConfigError rejected(const std::string& text) {
  try {
    config_from_json(text);
  } catch (const ConfigError& e) {
    return e;
  }
  FAIL("accepted: " << text);
  return ConfigError("", "", "");
}

}  // namespace

TEST_CASE("config json: every field is read by its name", "[config_json]") {
  const auto c = config_from_json(R"({
    "profile": "custom", "layout": "varlen", "batch": 7, "t_k": 0, "t_q": -1,
    "cu_seqlens_k": [0, 5, 9], "cu_seqlens_q": [0, 2, 3], "h_q": 8, "h_kv": 2, "d_k": 24,
    "d_v": 40, "scale": 0.25, "cmp_block": 48, "cmp_stride": 8, "slc_block": 32, "top_n": 9,
    "n_init": 2, "n_local": 3, "window": 17, "enable_cmp": false, "enable_slc": true,
    "enable_win": false, "phi": "mlp", "phi_hidden": 12, "phi_act": "silu", "dtype": "bf16",
    "shared_kv": true, "given_indices": true, "cmp_visibility": "strict",
    "score_mapping": "paper_eq9", "group_reduce": "mean", "forced_mode": "score_one",
    "tie_break": "higher_index_first", "slc_causal": "none", "index_policy": "multiset",
    "window_keys": "w_plus_one"})");
  CHECK(c.profile == "custom");
  CHECK(c.layout == Layout::varlen);
  CHECK(c.batch == 7);
  CHECK(c.t_q == -1);
  CHECK(c.cu_seqlens_k == std::vector<int64_t>{0, 5, 9});
  CHECK(c.cu_seqlens_q == std::vector<int64_t>{0, 2, 3});
  CHECK(c.h_q == 8);
  CHECK(c.h_kv == 2);
  CHECK(c.d_k == 24);
  CHECK(c.d_v == 40);
  REQUIRE(c.scale);
  CHECK(*c.scale == 0.25);
  CHECK(c.cmp_block == 48);
  CHECK(c.cmp_stride == 8);
  CHECK(c.slc_block == 32);
  CHECK(c.top_n == 9);
  CHECK(c.n_init == 2);
  CHECK(c.n_local == 3);
  CHECK(c.window == 17);
  CHECK(!c.enable_cmp);
  CHECK(c.enable_slc);
  CHECK(!c.enable_win);
  CHECK(c.phi == Phi::mlp);
  CHECK(c.phi_hidden == 12);
  CHECK(c.phi_act == Activation::silu);
  CHECK(c.dtype == Dtype::bf16);
  CHECK(c.shared_kv);
  CHECK(c.given_indices);
  CHECK(c.cmp_visibility == CmpVisibility::strict);
  CHECK(c.score_mapping == ScoreMapping::paper_eq9);
  CHECK(c.group_reduce == GroupReduce::mean);
  CHECK(c.forced_mode == ForcedMode::score_one);
  CHECK(c.tie_break == TieBreak::higher_index_first);
  CHECK(c.slc_causal == SlcCausal::none);
  CHECK(c.index_policy == IndexPolicy::multiset);
  CHECK(c.window_keys == WindowKeys::w_plus_one);
}

TEST_CASE("config json: an empty object is the default config", "[config_json]") {
  require_same(config_from_json("{}"), Config{});
  require_same(config_from_json(" \n{ }\t"), Config{});
}

TEST_CASE("config json: the profile is applied first, other keys override it", "[config_json]") {
  // fla fixes l = d = l' = 64; a key given in the file wins whatever its position.
  const auto c = config_from_json(R"({"slc_block": 32, "profile": "fla", "t_k": 100})");
  CHECK(c.profile == "fla");
  CHECK(c.score_mapping == ScoreMapping::identity);
  CHECK(c.forced_mode == ForcedMode::score_one);
  CHECK(c.group_reduce == GroupReduce::mean);
  CHECK(c.index_policy == IndexPolicy::multiset);
  CHECK(c.cmp_block == 64);
  CHECK(c.cmp_stride == 64);
  CHECK(c.slc_block == 32);
  CHECK(c.t_k == 100);
  const auto t = config_from_json(R"({"profile": "nsa_triton"})");
  CHECK(t.window_keys == WindowKeys::w_plus_one);
  CHECK(t.index_policy == IndexPolicy::negative_to_zero);
}

TEST_CASE("config json: round trip through config_to_json", "[config_json]") {
  Config c;
  SECTION("default") {}
  SECTION("every profile") {
    const auto name = GENERATE(as<std::string>{}, "canonical", "fla", "nsa_triton", "custom");
    apply_profile(c, name);
  }
  SECTION("non-default values everywhere") {
    c.profile = "custom";
    c.layout = Layout::varlen;
    c.batch = 3;
    c.t_k = 0;
    c.t_q = -1;
    c.cu_seqlens_k = {0, 1, 1, 4000000000};
    c.cu_seqlens_q = {0, 0, 1, 2};
    c.h_q = 12;
    c.h_kv = 3;
    c.d_k = 192;
    c.d_v = 128;
    c.scale = 0.1;  // not exactly representable: must survive as the same double
    c.cmp_block = 64;
    c.cmp_stride = 32;
    c.slc_block = 128;
    c.top_n = 5;
    c.n_init = 0;
    c.n_local = 0;
    c.window = 1;
    c.enable_win = false;
    c.phi = Phi::linear;
    c.dtype = Dtype::f16;
    c.shared_kv = true;
    c.cmp_visibility = CmpVisibility::strict;
    c.tie_break = TieBreak::higher_index_first;
    c.slc_causal = SlcCausal::none;
    c.index_policy = IndexPolicy::skip_invalid;
    c.window_keys = WindowKeys::w_plus_one;
  }
  SECTION("extreme integers") {
    c.t_k = std::numeric_limits<int64_t>::max();
    c.t_q = std::numeric_limits<int64_t>::min();
    c.scale = 5e-324;
  }
  const auto text = config_to_json(c);
  INFO(text);
  require_same(config_from_json(text), c);
}

TEST_CASE("config json: syntax errors name the position", "[config_json]") {
  for (const std::string& bad : std::vector<std::string>{
           "", "{", "{\"t_k\": }", "{\"t_k\": 1,}", "[1", "\xff\xfe", "nul",
           "{\"t_k\": 1} trailing", std::string("{\"t_k\"\0: 1}", 11), "{\"phi\": \"\xc3\x28\"}"}) {
    INFO(bad);
    const auto e = rejected(bad);
    CHECK(e.field() == "<json>");
    CHECK(std::string(e.what()).find("not valid JSON") != std::string::npos);
  }
}

TEST_CASE("config json: a document that is not an object is rejected", "[config_json]") {
  for (const std::string& bad :
       std::vector<std::string>{"[]", "1", "\"canonical\"", "null", "true"}) {
    INFO(bad);
    const auto e = rejected(bad);
    CHECK(e.field() == "<json>");
    CHECK(e.rule().find("JSON object") != std::string::npos);
  }
}

TEST_CASE("config json: deep nesting is cut off, not recursed into", "[config_json]") {
  const std::string deep = "{\"cu_seqlens_k\": " + std::string(100000, '[') + "]";
  const auto e = rejected(deep);
  CHECK(e.field() == "<json>");
  CHECK(e.rule().find("depth") != std::string::npos);
  CHECK(rejected(R"({"cu_seqlens_k": [[0]]})").field() == "<json>");
  CHECK(rejected(R"({"t_k": {"a": 1}})").field() == "t_k");
}

TEST_CASE("config json: unknown and duplicate keys are rejected", "[config_json]") {
  auto e = rejected(R"({"t_k": 5, "tk": 6})");
  CHECK(e.field() == "tk");
  CHECK(e.rule().find("window_keys") != std::string::npos);  // lists the known keys
  CHECK(rejected(R"({"T_K": 5})").field() == "T_K");
  e = rejected(R"({"t_k": 5, "t_k": 6})");
  CHECK(e.field() == "t_k");
  CHECK(e.value() == "given twice");
}

TEST_CASE("config json: wrong JSON types are rejected with the field and the expected type",
          "[config_json]") {
  struct Case {
    const char* text;
    const char* field;
    const char* expected;
  };
  const Case cases[] = {
      {R"({"t_k": "5"})", "t_k", "integer"},
      {R"({"t_k": 5.5})", "t_k", "non-integer"},
      {R"({"t_k": 5.0})", "t_k", "non-integer"},
      {R"({"t_k": true})", "t_k", "integer"},
      {R"({"t_k": null})", "t_k", "integer"},
      {R"({"h_q": [1]})", "h_q", "integer"},
      {R"({"enable_cmp": 1})", "enable_cmp", "true or false"},
      {R"({"enable_cmp": "true"})", "enable_cmp", "true or false"},
      {R"({"phi": "Mean"})", "phi", "mean|linear|mlp"},
      {R"({"phi": 0})", "phi", "mean|linear|mlp"},
      {R"({"dtype": "float32"})", "dtype", "fp32|fp16|bf16|fp64"},
      {R"({"window_keys": "w+1"})", "window_keys", "w|w_plus_one"},
      {R"({"score_mapping": null})", "score_mapping", "overlap|paper_eq9|identity"},
      {R"({"scale": "0.5"})", "scale", "number or null"},
      {R"({"scale": [0.5]})", "scale", "number or null"},
      {R"({"cu_seqlens_k": 5})", "cu_seqlens_k", "array of integers"},
      {R"({"cu_seqlens_k": [0, 1.5]})", "cu_seqlens_k[1]", "integer"},
      {R"({"cu_seqlens_q": [0, "1"]})", "cu_seqlens_q[1]", "integer"},
      {R"({"profile": 3})", "profile", "string"},
      {R"({"profile": "flash"})", "profile", "unknown profile"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    const auto e = rejected(c.text);
    CHECK(e.field() == c.field);
    CHECK(e.rule().find(c.expected) != std::string::npos);
  }
}

TEST_CASE("config json: integers outside int64 are rejected", "[config_json]") {
  CHECK(config_from_json(R"({"t_k": 9223372036854775807})").t_k ==
        std::numeric_limits<int64_t>::max());
  CHECK(config_from_json(R"({"t_q": -9223372036854775808})").t_q ==
        std::numeric_limits<int64_t>::min());
  for (const char* bad : {R"({"t_k": 9223372036854775808})", R"({"t_k": 18446744073709551615})",
                          R"({"t_k": 18446744073709551616})", R"({"t_k": -9223372036854775809})",
                          R"({"t_k": 1e300})"}) {
    INFO(bad);
    const auto e = rejected(bad);
    CHECK(e.field() == "t_k");
    CHECK(e.rule().find("out of range") != std::string::npos);
  }
  // A number too large for a double is a syntax-level error of the JSON parser.
  CHECK(rejected(R"({"scale": 1e400})").field() == "<json>");
}
