// Convention knobs and small enums of the NSA semantics, with their canonical spellings.
// Every enum here round-trips through to_string / parse_* so that configs, golden files and
// reports all use the same words.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace nsa::ref {

enum class Dtype { f32, f16, bf16, f64 };
enum class Layout { padded, varlen };
enum class Phi { mean, linear, mlp };
enum class Activation { relu, silu };
enum class CmpVisibility { inclusive, strict };
enum class ScoreMapping { overlap, paper_eq9, identity };
enum class GroupReduce { sum, mean };
enum class ForcedMode { always, score_one };
enum class TieBreak { lower_index_first, higher_index_first };
enum class SlcCausal { token, none };
enum class IndexPolicy { strict, skip_invalid, multiset, negative_to_zero };
enum class WindowKeys { w, w_plus_one };
// How many blocks the selection keeps: exactly n, or n rounded up to a power of two (fla's
// parallel_nsa with an integer block_counts; docs/semantics.md, section 9).
enum class TopnRounding { none, next_power_of_two };
enum class Branch { cmp = 0, slc = 1, win = 2 };

// How an fp32-accumulating kernel orders the terms of its dot products and sums
// (docs/tolerance.md, "Summation orders"). Each is a model of a real way to reduce:
enum class SumOrder {
  sequential,         // one running fp32 sum, term after term (products fused: one rounding)
  pairwise,           // a balanced binary tree of fp32 additions over the rounded products
  lanes8,             // 8 strided fp32 partial sums (SIMD lanes), then a tree over the lanes
  blocked16,          // chunks of 16 summed exactly, each added to an fp32 running sum
  tensor_core,        // MMA, k = 16 per step, accumulator chained through the MMA: the chunk's
                      // products and the accumulator aligned to their largest exponent,
                      // truncated 26 bits below it, summed, truncated to fp32
  tensor_core_split,  // the same MMA on each 16-term chunk from a zero accumulator, chunks
                      // added by an IEEE fp32 add (this project's q·k split)
  largest_partials,   // sequential over the positive terms, then the negative ones: the
                      // running sum climbs to its largest value before any cancellation (the
                      // pessimistic end of any term order)
};

inline constexpr std::array<Branch, 3> kAllBranches{Branch::cmp, Branch::slc, Branch::win};

// The spelling table of one enum; the order of entries is the order of enumerators.
template <class E>
struct EnumNames;

#define NSA_ENUM_NAMES(E, ...)                                                    \
  template <>                                                                     \
  struct EnumNames<E> {                                                           \
    static constexpr auto names = std::to_array<std::string_view>({__VA_ARGS__}); \
  };

NSA_ENUM_NAMES(Dtype, "fp32", "fp16", "bf16", "fp64")
NSA_ENUM_NAMES(Layout, "padded", "varlen")
NSA_ENUM_NAMES(Phi, "mean", "linear", "mlp")
NSA_ENUM_NAMES(Activation, "relu", "silu")
NSA_ENUM_NAMES(CmpVisibility, "inclusive", "strict")
NSA_ENUM_NAMES(ScoreMapping, "overlap", "paper_eq9", "identity")
NSA_ENUM_NAMES(GroupReduce, "sum", "mean")
NSA_ENUM_NAMES(ForcedMode, "always", "score_one")
NSA_ENUM_NAMES(TieBreak, "lower_index_first", "higher_index_first")
NSA_ENUM_NAMES(SlcCausal, "token", "none")
NSA_ENUM_NAMES(IndexPolicy, "strict", "skip_invalid", "multiset", "negative_to_zero")
NSA_ENUM_NAMES(WindowKeys, "w", "w_plus_one")
NSA_ENUM_NAMES(TopnRounding, "none", "next_power_of_two")
NSA_ENUM_NAMES(Branch, "cmp", "slc", "win")
NSA_ENUM_NAMES(SumOrder, "sequential", "pairwise", "lanes8", "blocked16", "tensor_core",
               "tensor_core_split", "largest_partials")
#undef NSA_ENUM_NAMES

template <class E>
std::string_view to_string(E e) {
  const auto i = static_cast<std::size_t>(e);
  return i < EnumNames<E>::names.size() ? EnumNames<E>::names[i] : std::string_view{"<invalid>"};
}

// All accepted spellings joined by '|', for error messages ("one of mean|linear|mlp").
template <class E>
std::string allowed_values() {
  std::string s;
  for (auto n : EnumNames<E>::names) {
    if (!s.empty()) s += '|';
    s += n;
  }
  return s;
}

// Parses one spelling; returns false on anything else (the caller names the field).
template <class E>
bool parse_enum(std::string_view text, E& out) {
  const auto& names = EnumNames<E>::names;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == text) {
      out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace nsa::ref
