// `nsa bench` configurations: presets, flags and their validation (bench_table.hpp).
#include "bench_table.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>

#include "args.hpp"
#include "nsa/ref/config_json.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::bench {
namespace {

using nsa::cli::UsageError;
using nsa::ref::Config;

// One value of one axis: how it sets the config and how a case label shows it.
struct AxisValue {
  std::string label;
  std::function<void(Config&)> set;
};
using Axis = std::vector<AxisValue>;

// The axes in the order they are applied (G after h_q: it derives h_kv from it) and vary in the
// table (the first is the outermost loop).
enum AxisId {
  kDims,
  kTq,
  kTk,
  kBatch,
  kHq,
  kKv,
  kCmpBlock,
  kCmpStride,
  kSlcBlock,
  kTopN,
  kNInit,
  kNLocal,
  kWindow,
  kDtype,
  kPhi,
  kPhiHidden,
  kPhiAct,
  kAxisCount
};
// A product of axes; an absent axis keeps the base config's value.
using Product = std::array<std::optional<Axis>, kAxisCount>;

// Which branches read a flag's knob: a flag of branches that no case runs is not read at all.
enum class Owner { any, cmp_or_slc, slc, win };

struct IntFlag {
  const char* flag;
  AxisId axis;
  int64_t lo, hi;
  Owner owner;
  void (*set)(Config&, int64_t);
};

using nsa::ref::kMaxBatch;
using nsa::ref::kMaxBlock;
using nsa::ref::kMaxHeadDim;
using nsa::ref::kMaxHeads;
using nsa::ref::kMaxPhiHidden;
using nsa::ref::kMaxTokens;

// clang-format off
const IntFlag kIntFlags[] = {
    {"--t-q", kTq, 1, kMaxTokens, Owner::any, [](Config& c, int64_t x) { c.t_q = x; }},
    {"--t-k", kTk, 1, kMaxTokens, Owner::any, [](Config& c, int64_t x) { c.t_k = x; }},
    {"--batch", kBatch, 1, kMaxBatch, Owner::any, [](Config& c, int64_t x) { c.batch = x; }},
    {"--hq", kHq, 1, kMaxHeads, Owner::any, [](Config& c, int64_t x) { c.h_q = x; }},
    {"--hkv", kKv, 1, kMaxHeads, Owner::any, [](Config& c, int64_t x) { c.h_kv = x; }},
    {"--cmp-block", kCmpBlock, 1, kMaxBlock, Owner::cmp_or_slc,
     [](Config& c, int64_t x) { c.cmp_block = x; }},
    {"--cmp-stride", kCmpStride, 1, kMaxBlock, Owner::cmp_or_slc,
     [](Config& c, int64_t x) { c.cmp_stride = x; }},
    {"--slc-block", kSlcBlock, 1, kMaxBlock, Owner::slc, [](Config& c, int64_t x) { c.slc_block = x; }},
    {"--top-n", kTopN, 1, kMaxTokens, Owner::slc, [](Config& c, int64_t x) { c.top_n = x; }},
    {"--n-init", kNInit, 0, kMaxTokens, Owner::slc, [](Config& c, int64_t x) { c.n_init = x; }},
    {"--n-local", kNLocal, 0, kMaxTokens, Owner::slc, [](Config& c, int64_t x) { c.n_local = x; }},
    {"--window", kWindow, 1, kMaxTokens, Owner::win, [](Config& c, int64_t x) { c.window = x; }},
    {"--phi-hidden", kPhiHidden, 0, kMaxPhiHidden, Owner::cmp_or_slc,
     [](Config& c, int64_t x) { c.phi_hidden = x; }},
};
// clang-format on

// The config field a validation error names -> the flags that set it.
std::string flags_of_field(const std::string& field) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"t_q", "--t-q"},
      {"t_k", "--t-k"},
      {"batch", "--batch"},
      {"h_q", "--hq"},
      {"h_kv", "--hkv/--groups"},
      {"d_k", "--dk/--dims"},
      {"d_v", "--dv/--dims"},
      {"cmp_block", "--cmp-block"},
      {"cmp_stride", "--cmp-stride"},
      {"slc_block", "--slc-block"},
      {"top_n", "--top-n"},
      {"n_init", "--n-init"},
      {"n_local", "--n-local"},
      {"window", "--window"},
      {"phi_hidden", "--phi-hidden"},
      {"phi", "--phi"},
      {"dtype", "--dtype"},
      {"enable_cmp/enable_slc/enable_win", "--branches"}};
  for (const auto& [f, flags] : kMap)
    if (field == f) return flags;
  return "";
}

std::string range_text(int64_t lo, int64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// A comma-separated list, every item non-empty.
std::vector<std::string> split_list(const std::string& flag, const std::string& text) {
  std::vector<std::string> items;
  std::string item;
  std::stringstream ss(text);
  while (std::getline(ss, item, ',')) items.push_back(item);
  if (text.empty() || text.back() == ',') items.push_back("");
  for (const auto& i : items)
    if (i.empty())
      throw UsageError(flag + " = '" + text +
                       "': expected a comma-separated list, found an empty item");
  return items;
}

int64_t parse_int(const std::string& flag, const std::string& item, int64_t lo, int64_t hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(item.c_str(), &end, 10);
  if (item.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    throw UsageError(flag + " = '" + item + "': expected an integer in " + range_text(lo, hi));
  return v;
}

std::vector<int64_t> parse_ints(const std::string& flag, const std::string& text, int64_t lo,
                                int64_t hi) {
  std::vector<int64_t> out;
  for (const auto& item : split_list(flag, text)) out.push_back(parse_int(flag, item, lo, hi));
  return out;
}

template <class E>
Axis enum_axis(const std::string& flag, const std::string& text, E Config::*field) {
  Axis axis;
  for (const auto& item : split_list(flag, text)) {
    E e{};
    if (!nsa::ref::parse_enum(item, e))
      throw UsageError(flag + " = '" + item + "': expected one of " +
                       nsa::ref::allowed_values<E>());
    axis.push_back({flag.substr(2) + "=" + item, [field, e](Config& c) { c.*field = e; }});
  }
  return axis;
}

Axis int_axis(const IntFlag& f, const std::string& text) {
  Axis axis;
  for (int64_t x : parse_ints(f.flag, text, f.lo, f.hi)) {
    auto set = f.set;
    axis.push_back(
        {std::string(f.flag + 2) + "=" + std::to_string(x), [set, x](Config& c) { set(c, x); }});
  }
  return axis;
}

Axis group_axis(const std::vector<int64_t>& groups) {
  Axis axis;
  for (int64_t g : groups)
    axis.push_back({"G=" + std::to_string(g), [g](Config& c) {
                      if (c.h_q % g != 0)
                        throw UsageError("G = " + std::to_string(g) +
                                         " (--groups or the table's G axis): h_q = " +
                                         std::to_string(c.h_q) + " is not a multiple of G");
                      c.h_kv = c.h_q / g;
                    }});
  return axis;
}

Axis dims_axis(const std::vector<std::pair<int64_t, int64_t>>& dims) {
  Axis axis;
  for (auto [dk, dv] : dims)
    axis.push_back({"d=" + std::to_string(dk) + "x" + std::to_string(dv), [dk, dv](Config& c) {
                      c.d_k = dk;
                      c.d_v = dv;
                    }});
  return axis;
}

std::vector<std::pair<int64_t, int64_t>> parse_dims(const std::string& text) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& item : split_list("--dims", text)) {
    const auto x = item.find('x');
    if (x == std::string::npos)
      throw UsageError("--dims = '" + item + "': expected DKxDV, e.g. 128x128");
    try {
      out.push_back({parse_int("--dims", item.substr(0, x), 1, kMaxHeadDim),
                     parse_int("--dims", item.substr(x + 1), 1, kMaxHeadDim)});
    } catch (const UsageError&) {
      throw UsageError("--dims = '" + item + "': expected DKxDV with both in " +
                       range_text(1, kMaxHeadDim));
    }
  }
  return out;
}

// The bench's base configuration: the shape of the measurements.
Config bench_base() {
  Config c;
  c.batch = 1;
  c.t_k = 65536;
  c.h_q = 64;
  c.h_kv = 4;
  c.d_k = 128;
  c.d_v = 128;
  c.cmp_block = 32;
  c.cmp_stride = 16;
  c.slc_block = 64;
  c.top_n = 16;
  c.window = 512;
  c.dtype = nsa::ref::Dtype::bf16;
  c.shared_kv = true;
  return c;
}

Config read_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UsageError("--config = '" + path + "': cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nsa::ref::config_from_json(ss.str());
  } catch (const std::exception& e) {
    throw UsageError("--config = '" + path + "': " + e.what());
  }
}

std::vector<Product> default_table() {
  Product prefill{}, groups{};
  prefill[kTk] = int_axis(kIntFlags[1], "8192,16384,32768,65536");
  prefill[kDims] = dims_axis({{128, 128}, {192, 128}});
  prefill[kKv] = group_axis({16});
  groups[kTk] = int_axis(kIntFlags[1], "65536");
  groups[kDims] = dims_axis({{128, 128}});
  groups[kKv] = group_axis({1, 2, 4, 8});
  return {prefill, groups};
}

std::vector<Product> decode_table() {
  Product p{};
  p[kTq] = int_axis(kIntFlags[0], "1,4");
  p[kTk] = int_axis(kIntFlags[1], "8192,65536,131072");
  p[kBatch] = int_axis(kIntFlags[2], "1,16,64");
  p[kKv] = group_axis({16, 4, 1});
  return {p};
}

// The backward's table (issue targets): T_k = 65536, 128x128, G in {16, 4, 1}.
std::vector<Product> backward_table() {
  Product p{};
  p[kTk] = int_axis(kIntFlags[1], "65536");
  p[kDims] = dims_axis({{128, 128}});
  p[kKv] = group_axis({16, 4, 1});
  return {p};
}

std::vector<Product> quick_table() {
  Product p{};
  p[kTk] = int_axis(kIntFlags[1], "8192,16384");
  p[kDims] = dims_axis({{128, 128}});
  p[kKv] = group_axis({16});
  return {p};
}

// A disabled branch's knobs take values that validate() accepts, whatever the file or the
// defaults held: nothing reads them.
void neutralize_disabled(Config& c) {
  const Config def;
  const bool identity = c.score_mapping == nsa::ref::ScoreMapping::identity;
  const bool need_cmp = c.enable_cmp || c.enable_slc;
  if (!c.enable_win) c.window = def.window;
  if (!need_cmp) {
    c.phi = nsa::ref::Phi::mean;
    c.phi_hidden = 0;
    c.phi_act = def.phi_act;
    c.cmp_block = identity ? def.slc_block : def.cmp_block;
    c.cmp_stride = identity ? def.slc_block : def.cmp_stride;
  }
  if (!c.enable_slc) {
    c.top_n = def.top_n;
    c.n_init = def.n_init;
    c.n_local = def.n_local;
    c.slc_block = identity || def.slc_block % c.cmp_stride != 0 ? c.cmp_stride : def.slc_block;
  }
}

void parse_branches(const std::string& text, Config& c) {
  c.enable_cmp = c.enable_slc = c.enable_win = false;
  for (const auto& item : split_list("--branches", text)) {
    nsa::ref::Branch b{};
    if (!nsa::ref::parse_enum(item, b))
      throw UsageError("--branches = '" + item + "': expected a list of cmp, slc, win");
    bool& on = b == nsa::ref::Branch::cmp   ? c.enable_cmp
               : b == nsa::ref::Branch::slc ? c.enable_slc
                                            : c.enable_win;
    if (on) throw UsageError("--branches = '" + text + "': '" + item + "' given twice");
    on = true;
  }
}

bool owner_runs(Owner o, const Config& c) {
  switch (o) {
    case Owner::any:
      return true;
    case Owner::cmp_or_slc:
      return c.enable_cmp || c.enable_slc;
    case Owner::slc:
      return c.enable_slc;
    case Owner::win:
      return c.enable_win;
  }
  return true;
}

}  // namespace

std::string bench_usage() {
  return "usage: nsa bench [--decode | --quick | --backward] [--graph] [--config FILE.json "
         "[--profile P]]\n"
         "                 [flags] [--reps N] [--warmup N] [--dry-run]\n"
         "\n"
         "Tables (each flag below replaces that axis in every row of the table):\n"
         "  (default)   prefill, B=1, H_q=64: T_k in {8192,16384,32768,65536} x (d_k,d_v) in\n"
         "              {128x128,192x128} at G=16, plus T_k=65536, 128x128 at G in {1,2,4,8}\n"
         "  --decode    T_q in {1,4} x T_k in {8192,65536,131072} x B in {1,16,64} x G in "
         "{16,4,1},\n"
         "              the compressed cache given (--cmp-given 1)\n"
         "  --quick     T_k in {8192,16384}, 128x128, G=16, 3 reps\n"
         "  --backward  times nsa::cuda::backward per stage (the forward it runs for the index\n"
         "              lists, then query side, index, key side per branch, phi, finish); its\n"
         "              table: T_k=65536, 128x128, G in {16,4,1} (with --config: that case)\n"
         "  --config F  one case: the config file F (docs/config-format.md) instead of the base\n"
         "  --graph     also time replays of the forward captured in a CUDA graph (no host launch\n"
         "              overhead) and print the floor beside it (on with --decode)\n"
         "Base: bf16, d_k=d_v=128, l=32 d=16 l'=64 n=16 w=512, phi mean, all branches, shared "
         "K/V.\n"
         "\n"
         "Flags (LIST = comma-separated values; every combination is run):\n"
         "  --t-k LIST (alias --t)  keys per sequence      --t-q LIST  queries (the last T_q)\n"
         "  --batch LIST            sequences B            --hq LIST   query heads H_q\n"
         "  --hkv LIST | --groups LIST   KV heads H_kv, or G = H_q / H_kv\n"
         "  --dims DKxDV,... | --dk LIST --dv LIST   head dims\n"
         "  --cmp-block LIST (l)  --cmp-stride LIST (d)  --phi mean|linear|mlp  --phi-hidden LIST\n"
         "  --phi-act relu|silu   --slc-block LIST (l')  --top-n LIST (n)  --n-init LIST\n"
         "  --n-local LIST        --window LIST (w)      --dtype bf16|fp16|fp32\n"
         "  --branches LIST       of cmp, slc, win; a disabled branch's flags are not read\n"
         "  --cmp-given 0|1       the compressed keys/values are an input (a decode step's\n"
         "                        cache): phi is not run\n"
         "  --profile P           apply a profile (canonical, fla, nsa_triton) on top\n"
         "  --dry-run             print the resolved configurations, run nothing (no GPU needed)\n"
         "\n"
         "Exit codes: 0 every case ran; 1 a case failed on the device; 2 bad arguments or a\n"
         "configuration that does not validate; 77 no CUDA device (after checking everything).\n";
}

double device_bytes(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const double eb = c.dtype == nsa::ref::Dtype::f32 ? 4 : c.dtype == nsa::ref::Dtype::f64 ? 8 : 2;
  const auto s = nsa::ref::input_shapes(vc);
  const int kv_copies = c.shared_kv ? 1 : 3;
  const double elems =
      static_cast<double>(s.q) + kv_copies * static_cast<double>(s.k + s.v) +
      3.0 * static_cast<double>(s.gate) +
      static_cast<double>(s.phi_pos_k + s.phi_pos_v + s.phi_w1_k + s.phi_w1_v + 2 * s.phi_b1 +
                          s.phi_w2_k + s.phi_w2_v + s.phi_b2_k + s.phi_b2_v) +
      static_cast<double>(s.k_tilde + s.v_tilde) + static_cast<double>(vc.total_q * c.h_q * c.d_v);
  return elems * eb;
}

BenchPlan parse_bench_args(const std::vector<std::string>& argv) {
  std::set<std::string> with_value{"--config",   "--profile", "--t",      "--dims",     "--dk",
                                   "--dv",       "--groups",  "--dtype",  "--phi",      "--phi-act",
                                   "--branches", "--reps",    "--warmup", "--cmp-given"};
  for (const auto& f : kIntFlags) with_value.insert(f.flag);
  const nsa::cli::Args args(
      argv, with_value, {"--decode", "--quick", "--backward", "--graph", "--dry-run", "--help"});
  BenchPlan plan;
  for (const auto& p : args.positional()) {
    if (p == "-h") {
      plan.help = true;
      return plan;
    }
    throw UsageError("unexpected argument '" + p + "'");
  }
  if (args.has("--help")) {
    plan.help = true;
    return plan;
  }
  auto conflict = [&](const char* a, const char* b) {
    if (args.has(a) && args.has(b))
      throw UsageError(std::string(a) + " and " + b + " exclude each other");
  };
  conflict("--decode", "--quick");
  conflict("--backward", "--decode");
  conflict("--backward", "--quick");
  conflict("--t", "--t-k");
  conflict("--hkv", "--groups");
  conflict("--dims", "--dk");
  conflict("--dims", "--dv");
  if (args.has("--profile") && !args.has("--config"))
    throw UsageError("--profile applies to --config only (the base is canonical)");
  plan.reps = static_cast<int>(args.get_int("--reps", args.has("--quick") ? 3 : 10, 1, 100000));
  plan.warmup = static_cast<int>(args.get_int("--warmup", 2, 0, 100000));
  plan.dry_run = args.has("--dry-run");
  plan.backward = args.has("--backward");
  plan.graph = args.has("--graph") || args.has("--decode");
  conflict("--backward", "--graph");

  // The base, then the branches: they decide which flags are read at all.
  Config base = args.has("--config") ? read_config_file(args.get("--config")) : bench_base();
  if (args.has("--profile")) {
    try {
      nsa::ref::apply_profile(base, args.get("--profile"));
    } catch (const std::exception& e) {
      throw UsageError("--profile = '" + args.get("--profile") + "': " + e.what());
    }
  }
  if (args.has("--branches")) parse_branches(args.get("--branches"), base);
  // Decode steps read a compressed KV cache instead of recompressing every key (the decode
  // table's default); --cmp-given 0|1 says so for any table.
  if (args.has("--decode")) base.cmp_given = true;
  if (args.has("--cmp-given")) base.cmp_given = args.get_int("--cmp-given", 0, 0, 1) != 0;
  if (base.given_indices)
    throw UsageError("--config: given_indices = true: nsa bench generates no index lists");

  std::vector<Product> table = args.has("--decode")     ? decode_table()
                               : args.has("--quick")    ? quick_table()
                               : args.has("--config")   ? std::vector<Product>{Product{}}
                               : args.has("--backward") ? backward_table()
                                                        : default_table();
  Product given{};
  auto give = [&](const std::string& flag, AxisId id, Owner owner, auto make) {
    if (!args.has(flag)) return;
    if (!owner_runs(owner, base)) {
      plan.ignored.push_back(flag);
      return;
    }
    given[id] = make(args.get(flag));
  };
  for (const auto& f : kIntFlags)
    give(f.flag, f.axis, f.owner, [&](const std::string& v) { return int_axis(f, v); });
  give("--t", kTk, Owner::any, [&](const std::string& v) {
    IntFlag f = kIntFlags[1];
    f.flag = "--t";
    return int_axis(f, v);
  });
  give("--groups", kKv, Owner::any,
       [&](const std::string& v) { return group_axis(parse_ints("--groups", v, 1, kMaxHeads)); });
  give("--dims", kDims, Owner::any, [&](const std::string& v) { return dims_axis(parse_dims(v)); });
  if (args.has("--dk") || args.has("--dv")) {
    // --dk/--dv: the product of the two lists; an absent one keeps the base's head dim.
    const auto dks = args.has("--dk") ? parse_ints("--dk", args.get("--dk"), 1, kMaxHeadDim)
                                      : std::vector<int64_t>{base.d_k};
    const auto dvs = args.has("--dv") ? parse_ints("--dv", args.get("--dv"), 1, kMaxHeadDim)
                                      : std::vector<int64_t>{base.d_v};
    std::vector<std::pair<int64_t, int64_t>> dims;
    for (int64_t dk : dks)
      for (int64_t dv : dvs) dims.push_back({dk, dv});
    given[kDims] = dims_axis(dims);
  }
  give("--dtype", kDtype, Owner::any,
       [&](const std::string& v) { return enum_axis("--dtype", v, &Config::dtype); });
  give("--phi", kPhi, Owner::cmp_or_slc,
       [&](const std::string& v) { return enum_axis("--phi", v, &Config::phi); });
  give("--phi-act", kPhiAct, Owner::cmp_or_slc,
       [&](const std::string& v) { return enum_axis("--phi-act", v, &Config::phi_act); });
  if (base.layout == nsa::ref::Layout::varlen)
    for (const char* f : {"--t-k", "--t", "--t-q", "--batch"})
      if (args.has(f))
        throw UsageError(std::string(f) + ": the config file's layout is varlen (lengths come " +
                         "from its cu_seqlens); this flag applies to layout padded");

  std::set<std::string> seen;
  for (Product p : table) {
    for (int a = 0; a < kAxisCount; ++a)
      if (given[a]) p[a] = given[a];
    // Odometer over the product's axes, the first axis outermost.
    std::vector<int> axes;
    for (int a = 0; a < kAxisCount; ++a)
      if (p[a]) axes.push_back(a);
    std::vector<std::size_t> at(axes.size(), 0);
    while (true) {
      Config c = base;
      std::string label;
      for (std::size_t i = 0; i < axes.size(); ++i) {
        const auto& v = (*p[axes[i]])[at[i]];
        v.set(c);
        label += (label.empty() ? "" : " ") + v.label;
      }
      if (label.empty()) label = "the config";
      neutralize_disabled(c);
      BenchCase bc;
      try {
        bc.vc = nsa::ref::validate(c);
      } catch (const nsa::ref::ConfigError& e) {
        const auto flags = flags_of_field(e.field());
        throw UsageError("case " + label + ": " + e.what() +
                         (flags.empty() ? "" : " (flag " + flags + ")"));
      }
      bc.label = label;
      if (seen.insert(nsa::ref::describe(bc.vc.cfg)).second) plan.cases.push_back(std::move(bc));
      std::size_t i = axes.size();
      while (i > 0 && ++at[i - 1] == p[axes[i - 1]]->size()) at[--i] = 0;
      if (i == 0) break;
    }
  }
  return plan;
}

}  // namespace nsa::bench
