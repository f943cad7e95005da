// The summation orders of sum_order.hpp. Every order keeps one accumulator (or one set of
// partial sums) per output and walks the terms in its own sequence; the loops run over the
// outputs innermost, so each output's order is exactly the model's and the compiler may
// vectorize across outputs without reordering any one sum.
//
// Products: a[k] * b[...] of two floats is exact in double, so "fused" accumulation is
// computed as float(double product + double accumulator): the product is never rounded on its
// own (an FMA; the double sum rounds at most once more, and only in a near-tie of the float
// rounding). The tree orders round each product to float first, as a tree reduction of stored
// products does.
#include "sum_order.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "nsa/ref/generate.hpp"

namespace nsa::ref::detail {
namespace {

// Bits kept below the leading bit of a tensor-core chunk: products (and, chained, the
// accumulator) are aligned to the chunk's largest exponent e and truncated to multiples of
// 2^(e - 26). 26 reproduces the H200 kernel's lse of fuzz finding 7 to all printed digits
// (docs/fuzzing.md).
constexpr int kTensorCoreBits = 26;
constexpr int64_t kChunk = 16;  // k of one MMA step (m16n8k16)
constexpr int kLanes = 8;

// The sequence in which the terms are visited: 0..K-1, or a fixed pseudo-random permutation.
class TermSequence {
 public:
  TermSequence(uint64_t seed, int64_t k) {
    if (seed == 0) return;
    perm_.resize(static_cast<std::size_t>(k));
    for (int64_t i = 0; i < k; ++i) perm_[i] = i;
    for (int64_t i = k - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(
          random_bits(seed, static_cast<uint64_t>(k), static_cast<uint64_t>(i)) %
          static_cast<uint64_t>(i + 1));
      std::swap(perm_[i], perm_[j]);
    }
  }
  int64_t operator[](int64_t i) const { return perm_.empty() ? i : perm_[i]; }

 private:
  std::vector<int64_t> perm_;
};

// Rounds every accumulator to the model's accumulator dtype (no-op for fp32).
void narrow(Dtype acc, float* x, int64_t n) {
  if (acc == Dtype::f32) return;
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(round_to(x[i], acc));
}

// acc[n] += a * row[n] with one rounding (see the file comment).
void fused_step(double a, const float* row, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    acc[i] = static_cast<float>(a * static_cast<double>(row[i]) + static_cast<double>(acc[i]));
}

void sequential(const KernelModel& m, const float* a, const float* b, int64_t K, int64_t N,
                int64_t ldb, float* out) {
  const TermSequence seq(m.permutation, K);
  std::fill(out, out + N, 0.0f);
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = seq[i];
    fused_step(a ? a[k] : 1.0, b + k * ldb, out, N);
    narrow(m.accumulator, out, N);
  }
}

void lanes(const KernelModel& m, const float* a, const float* b, int64_t K, int64_t N, int64_t ldb,
           float* out) {
  const TermSequence seq(m.permutation, K);
  std::vector<float> lane(static_cast<std::size_t>(kLanes * N), 0.0f);
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = seq[i];
    float* acc = lane.data() + (i % kLanes) * N;
    fused_step(a ? a[k] : 1.0, b + k * ldb, acc, N);
    narrow(m.accumulator, acc, N);
  }
  for (int off = kLanes / 2; off >= 1; off /= 2)
    for (int j = 0; j < off; ++j) {
      float* x = lane.data() + j * N;
      const float* y = lane.data() + (j + off) * N;
      for (int64_t n = 0; n < N; ++n) x[n] += y[n];
      narrow(m.accumulator, x, N);
    }
  std::copy(lane.begin(), lane.begin() + N, out);
}

// A binary-counter tree: each new leaf merges with the subtree of equal size before it, so
// the tree is balanced over every power-of-two prefix; the unequal subtrees left at the end
// are added last to first.
void pairwise(const KernelModel& m, const float* a, const float* b, int64_t K, int64_t N,
              int64_t ldb, float* out) {
  const TermSequence seq(m.permutation, K);
  std::fill(out, out + N, 0.0f);
  if (K == 0) return;
  std::vector<float> stack(static_cast<std::size_t>(66 * N));
  std::vector<int64_t> sizes;
  auto row = [&](std::size_t s) { return stack.data() + static_cast<int64_t>(s) * N; };
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = seq[i];
    const double ak = a ? a[k] : 1.0;
    const float* src = b + k * ldb;
    float* leaf = row(sizes.size());
    for (int64_t n = 0; n < N; ++n) leaf[n] = static_cast<float>(ak * static_cast<double>(src[n]));
    narrow(m.accumulator, leaf, N);
    sizes.push_back(1);
    while (sizes.size() >= 2 && sizes[sizes.size() - 1] == sizes[sizes.size() - 2]) {
      float* left = row(sizes.size() - 2);
      const float* right = row(sizes.size() - 1);
      for (int64_t n = 0; n < N; ++n) left[n] += right[n];
      narrow(m.accumulator, left, N);
      sizes[sizes.size() - 2] *= 2;
      sizes.pop_back();
    }
  }
  while (sizes.size() >= 2) {
    float* left = row(sizes.size() - 2);
    const float* right = row(sizes.size() - 1);
    for (int64_t n = 0; n < N; ++n) left[n] += right[n];
    narrow(m.accumulator, left, N);
    sizes[sizes.size() - 2] += sizes.back();
    sizes.pop_back();
  }
  std::copy(row(0), row(0) + N, out);
}

void blocked(const KernelModel& m, const float* a, const float* b, int64_t K, int64_t N,
             int64_t ldb, float* out) {
  const TermSequence seq(m.permutation, K);
  std::fill(out, out + N, 0.0f);
  std::vector<double> chunk(static_cast<std::size_t>(N));
  for (int64_t c = 0; c < K; c += kChunk) {
    std::fill(chunk.begin(), chunk.end(), 0.0);
    for (int64_t i = c; i < std::min(K, c + kChunk); ++i) {
      const int64_t k = seq[i];
      const double ak = a ? a[k] : 1.0;
      const float* src = b + k * ldb;
      for (int64_t n = 0; n < N; ++n) chunk[n] += ak * static_cast<double>(src[n]);
    }
    for (int64_t n = 0; n < N; ++n)
      out[n] = static_cast<float>(static_cast<double>(out[n]) + chunk[n]);
    narrow(m.accumulator, out, N);
  }
}

// Exponent of a normal, non-zero double (products of floats and floats widened to double are
// always normal doubles).
int exponent_of(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return static_cast<int>((u >> 52) & 0x7ff) - 1023;
}

double pow2(int e) {  // 2^e for a normal double exponent
  const uint64_t u = static_cast<uint64_t>(e + 1023) << 52;
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// x rounded toward zero to float.
float to_float_toward_zero(double x) {
  float f = static_cast<float>(x);
  if (std::abs(static_cast<double>(f)) > std::abs(x)) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    --u;  // one step toward zero in magnitude (f != 0 here)
    std::memcpy(&f, &u, sizeof f);
  }
  return f;
}

void tensor_core(const KernelModel& m, bool chained, const float* a, const float* b, int64_t K,
                 int64_t N, int64_t ldb, float* out) {
  const TermSequence seq(m.permutation, K);
  std::fill(out, out + N, 0.0f);
  std::vector<double> prod(static_cast<std::size_t>(kChunk * N));
  for (int64_t c = 0; c < K; c += kChunk) {
    const int64_t len = std::min(kChunk, K - c);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t k = seq[c + j];
      const double ak = a[k];
      const float* src = b + k * ldb;
      double* p = prod.data() + j * N;
      for (int64_t n = 0; n < N; ++n) p[n] = ak * static_cast<double>(src[n]);
    }
    for (int64_t n = 0; n < N; ++n) {
      const double acc = chained ? static_cast<double>(out[n]) : 0.0;
      int e = INT_MIN;
      if (acc != 0) e = exponent_of(acc);
      for (int64_t j = 0; j < len; ++j)
        if (const double p = prod[j * N + n]; p != 0) e = std::max(e, exponent_of(p));
      if (e == INT_MIN) continue;  // every term and the accumulator are 0: nothing changes
      const double up = pow2(kTensorCoreBits - e), down = pow2(e - kTensorCoreBits);
      // Each aligned term is below 2^27 units, so the truncated sum is exact in int64.
      int64_t units = chained ? static_cast<int64_t>(acc * up) : 0;
      for (int64_t j = 0; j < len; ++j) units += static_cast<int64_t>(prod[j * N + n] * up);
      const float step = to_float_toward_zero(static_cast<double>(units) * down);
      out[n] = chained ? step : out[n] + step;
    }
    narrow(m.accumulator, out, N);
  }
}

// Per output: the positive terms first, then the negative ones, each sign in term order,
// summed sequentially (fused). The running sum climbs to the sum of all positive terms before
// any cancellation, so every step rounds at about the largest magnitude the terms allow: the
// pessimistic end of what a term order does to a sequential sum. (Adding an exact 0 leaves the
// accumulator unchanged, so both passes run over all terms with the other sign zeroed.)
void largest_partials(const KernelModel& m, const float* a, const float* b, int64_t K, int64_t N,
                      int64_t ldb, float* out) {
  const TermSequence seq(m.permutation, K);
  std::fill(out, out + N, 0.0f);
  for (const bool positive : {true, false})
    for (int64_t i = 0; i < K; ++i) {
      const int64_t k = seq[i];
      const double ak = a ? a[k] : 1.0;
      const float* row = b + k * ldb;
      for (int64_t n = 0; n < N; ++n) {
        const double t = ak * static_cast<double>(row[n]);
        const double keep = positive ? (t > 0 ? t : 0.0) : (t < 0 ? t : 0.0);
        out[n] = static_cast<float>(keep + static_cast<double>(out[n]));
      }
      narrow(m.accumulator, out, N);
    }
}

}  // namespace

void reduce_terms(const KernelModel& model, const float* a, const float* b, int64_t K, int64_t N,
                  int64_t ldb, float* out) {
  switch (model.order) {
    case SumOrder::sequential:
      return sequential(model, a, b, K, N, ldb, out);
    case SumOrder::pairwise:
      return pairwise(model, a, b, K, N, ldb, out);
    case SumOrder::lanes8:
      return lanes(model, a, b, K, N, ldb, out);
    case SumOrder::blocked16:
      return blocked(model, a, b, K, N, ldb, out);
    case SumOrder::largest_partials:
      return largest_partials(model, a, b, K, N, ldb, out);
    case SumOrder::tensor_core:
    case SumOrder::tensor_core_split:
      if (!a) return sequential(model, a, b, K, N, ldb, out);  // plain sums: fp32 registers
      return tensor_core(model, model.order == SumOrder::tensor_core, a, b, K, N, ldb, out);
  }
  throw std::invalid_argument("reduce_terms: unknown summation order");
}

}  // namespace nsa::ref::detail
