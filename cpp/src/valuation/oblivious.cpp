// Oblivious tree evaluation. A block of rows is turned feature-major; trees
// run outer so a tree's leaf table stays in L1 while the block's rows look
// it up. With AVX-512, 16 rows take a level in one compare and a masked OR,
// and their leaves in a few permutes (or a gather): no walk, no branch.
#include "autolien/valuation/oblivious.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "autolien/common/thread_pool.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autolien::valuation {

namespace {

// Leaves are summed in float32 (as onnxruntime does), flushed to the double
// total every kFlush trees so rounding does not build up over thousands.
constexpr std::size_t kFlush = 64;

// Every kernel adds trees [t0, t1) into acc for n rows (a multiple of 16)
// stored feature-major, stride floats apart.
using Kernel = void (*)(const float* cols, std::size_t stride, std::size_t n, std::size_t depth,
                        const std::int32_t* feature, const float* threshold, const float* leaf,
                        std::size_t t0, std::size_t t1, float* acc);

// The portable kernel: 4 rows a step in a GCC/Clang vector type, which
// lowers to whatever SIMD the target has (SSE2, NEON), so the compares stay
// in registers; the leaf lookups are scalar loads. 3-4x the per-level array
// passes it replaced; 16 rows a step spilled and ran slower, and 8 under AVX2
// trailed the gather kernel.
using F4 = float __attribute__((vector_size(16)));
using I4 = std::int32_t __attribute__((vector_size(16)));

void sum_portable(const float* cols, std::size_t stride, std::size_t n, std::size_t depth,
                  const std::int32_t* feature, const float* threshold, const float* leaf, std::size_t t0,
                  std::size_t t1, float* acc) {
    for (std::size_t t = t0; t < t1; ++t) {
        const float* col[16];
        float th[16];
        for (std::size_t d = 0; d < depth; ++d) {
            col[d] = cols + static_cast<std::size_t>(feature[t * depth + d]) * stride;
            th[d] = threshold[t * depth + d];
        }
        const float* lv = leaf + (t << depth);
        for (std::size_t r = 0; r < n; r += 4) {
            I4 idx = {};
            for (std::size_t d = 0; d < depth; ++d) {
                F4 v;
                std::memcpy(&v, col[d] + r, sizeof v);
                // a true lane compares to -1 (all bits): keep its level bit
                idx |= (v > th[d]) & static_cast<std::int32_t>(1U << d);
            }
            for (std::size_t k = 0; k < 4; ++k)
                acc[r + k] += lv[idx[k]];
        }
    }
}

#if defined(__x86_64__)
bool has_avx512() noexcept {
    return __builtin_cpu_supports("avx512f");
}
bool has_avx2() noexcept {
    return __builtin_cpu_supports("avx2");
}

// n is a multiple of 16 here: the block's padding rows are scored and dropped.
// Trees of depth <= 8 keep their leaves in registers: the first five levels
// index 32-entry tables (one two-register permute each) and the deeper
// levels' compare masks pick among the tables by blends. That is 2.7x faster
// than a gather at depth 7, where the gather alone costs 0.45 ns a row.
template <std::size_t D>
__attribute__((target("avx512f"))) void sum_permute(const float* cols, std::size_t stride, std::size_t n,
                                                    std::size_t /*depth*/, const std::int32_t* feature,
                                                    const float* threshold, const float* leaf, std::size_t t0,
                                                    std::size_t t1, float* acc) {
    constexpr std::size_t kIndexed = D < 5 ? D : 5;            // levels that index a table
    constexpr std::size_t kPairs = D <= 5 ? 1 : 1U << (D - 5); // two-register tables
    for (std::size_t t = t0; t < t1; ++t) {
        const float* col[D];
        __m512 th[D];
        for (std::size_t d = 0; d < D; ++d) {
            col[d] = cols + static_cast<std::size_t>(feature[t * D + d]) * stride;
            th[d] = _mm512_set1_ps(threshold[t * D + d]);
        }
        const float* lv = leaf + (t << D);
        // below depth 4 a tree has fewer than 16 leaves: load only those
        constexpr std::size_t kLeaves = std::size_t{1} << D;
        constexpr auto kHead = static_cast<__mmask16>(kLeaves >= 16 ? 0xFFFF : (1U << kLeaves) - 1);
        __m512 table[2 * kPairs];
        for (std::size_t p = 0; p < 2 * kPairs; ++p)
            table[p] = 16 * p < kLeaves ? _mm512_maskz_loadu_ps(kHead, lv + 16 * p) : _mm512_setzero_ps();
        for (std::size_t r = 0; r < n; r += 16) {
            __m512i idx = _mm512_setzero_si512();
            for (std::size_t d = 0; d < kIndexed; ++d) {
                const __mmask16 gt = _mm512_cmp_ps_mask(_mm512_loadu_ps(col[d] + r), th[d], _CMP_GT_OQ);
                idx = _mm512_mask_or_epi32(idx, gt, idx, _mm512_set1_epi32(1 << d));
            }
            __m512 v[kPairs];
            for (std::size_t p = 0; p < kPairs; ++p)
                v[p] = _mm512_permutex2var_ps(table[2 * p], idx, table[2 * p + 1]);
            for (std::size_t d = kIndexed, w = kPairs; d < D; ++d, w /= 2) {
                const __mmask16 gt = _mm512_cmp_ps_mask(_mm512_loadu_ps(col[d] + r), th[d], _CMP_GT_OQ);
                for (std::size_t q = 0; q < w / 2; ++q)
                    v[q] = _mm512_mask_blend_ps(gt, v[2 * q], v[2 * q + 1]);
            }
            _mm512_storeu_ps(acc + r, _mm512_add_ps(_mm512_loadu_ps(acc + r), v[0]));
        }
    }
}

// Deeper trees gather their leaves (D = 0: any depth, read at run time).
template <std::size_t D>
__attribute__((target("avx512f"))) void sum_gather(const float* cols, std::size_t stride, std::size_t n,
                                                   std::size_t depth, const std::int32_t* feature,
                                                   const float* threshold, const float* leaf, std::size_t t0,
                                                   std::size_t t1, float* acc) {
    const std::size_t levels = D ? D : depth;
    for (std::size_t t = t0; t < t1; ++t) {
        const float* col[16];
        __m512 th[16];
        for (std::size_t d = 0; d < levels; ++d) {
            col[d] = cols + static_cast<std::size_t>(feature[t * levels + d]) * stride;
            th[d] = _mm512_set1_ps(threshold[t * levels + d]);
        }
        const float* lv = leaf + (t << levels);
        for (std::size_t r = 0; r < n; r += 16) {
            __m512i idx = _mm512_setzero_si512();
            for (std::size_t d = 0; d < levels; ++d) {
                const __mmask16 gt = _mm512_cmp_ps_mask(_mm512_loadu_ps(col[d] + r), th[d], _CMP_GT_OQ);
                idx = _mm512_mask_or_epi32(idx, gt, idx, _mm512_set1_epi32(1 << d));
            }
            // the masked form: the plain one trips GCC 12's maybe-uninitialized
            const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, idx, lv, 4);
            _mm512_storeu_ps(acc + r, _mm512_add_ps(_mm512_loadu_ps(acc + r), v));
        }
    }
}

// AVX2: 8 rows a step, leaves by gather (any depth).
__attribute__((target("avx2"))) void sum_avx2(const float* cols, std::size_t stride, std::size_t n,
                                              std::size_t depth, const std::int32_t* feature,
                                              const float* threshold, const float* leaf, std::size_t t0,
                                              std::size_t t1, float* acc) {
    const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (std::size_t t = t0; t < t1; ++t) {
        const float* col[16];
        __m256 th[16];
        for (std::size_t d = 0; d < depth; ++d) {
            col[d] = cols + static_cast<std::size_t>(feature[t * depth + d]) * stride;
            th[d] = _mm256_set1_ps(threshold[t * depth + d]);
        }
        const float* lv = leaf + (t << depth);
        for (std::size_t r = 0; r < n; r += 8) {
            __m256i idx = _mm256_setzero_si256();
            for (std::size_t d = 0; d < depth; ++d) {
                const __m256 gt = _mm256_cmp_ps(_mm256_loadu_ps(col[d] + r), th[d], _CMP_GT_OQ);
                idx = _mm256_or_si256(idx,
                                      _mm256_and_si256(_mm256_castps_si256(gt), _mm256_set1_epi32(1 << d)));
            }
            const __m256 v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), lv, idx, all, 4);
            _mm256_storeu_ps(acc + r, _mm256_add_ps(_mm256_loadu_ps(acc + r), v));
        }
    }
}

template <std::size_t D> constexpr Kernel avx512_kernel() {
    if constexpr (D >= 1 && D <= 8)
        return &sum_permute<D>;
    else
        return &sum_gather<D>;
}
template <std::size_t... D>
constexpr std::array<Kernel, sizeof...(D)> avx512_table(std::index_sequence<D...>) {
    return {avx512_kernel<D>()...};
}
// Depths 1..12 unrolled (CatBoost's usual 6-10 among them); deeper ones loop.
constexpr auto kAvx512 = avx512_table(std::make_index_sequence<13>{});
#endif

Kernel kernel_for(ObliviousEnsemble::Isa isa, [[maybe_unused]] std::size_t depth) {
    // depth picks an unrolled AVX-512 kernel; other targets have one kernel.
    switch (isa) {
#if defined(__x86_64__)
    case ObliviousEnsemble::Isa::Avx512:
        return depth < kAvx512.size() ? kAvx512[depth] : kAvx512[0];
    case ObliviousEnsemble::Isa::Avx2:
        return &sum_avx2;
#endif
    default:
        return &sum_portable;
    }
}

#if !defined(__x86_64__)
bool has_avx512() noexcept {
    return false;
}
bool has_avx2() noexcept {
    return false;
}
#endif

} // namespace

ObliviousEnsemble::ObliviousEnsemble(std::size_t depth, std::vector<std::int32_t> feature,
                                     std::vector<float> threshold, std::vector<float> leaf, double base,
                                     std::size_t n_features)
    : depth_(depth), n_trees_(0), feature_(std::move(feature)), threshold_(std::move(threshold)),
      leaf_(std::move(leaf)), base_(base), n_features_(n_features) {
    if (depth < 1 || depth > 16)
        throw std::invalid_argument("oblivious trees need a depth of 1..16");
    if (n_features == 0)
        throw std::invalid_argument("a model needs at least one feature");
    if (feature_.size() % depth != 0)
        throw std::invalid_argument("feature must hold depth entries per tree");
    n_trees_ = feature_.size() / depth;
    if (threshold_.size() != feature_.size())
        throw std::invalid_argument("threshold must hold depth entries per tree");
    if (leaf_.size() != (n_trees_ << depth))
        throw std::invalid_argument("leaf must hold 2^depth values per tree");
    for (std::size_t i = 0; i < feature_.size(); ++i)
        if (feature_[i] < 0 || static_cast<std::size_t>(feature_[i]) >= n_features)
            throw std::invalid_argument("split " + std::to_string(i) + " reads a feature the model lacks");
}

bool ObliviousEnsemble::supports(Isa isa) noexcept {
    switch (isa) {
    case Isa::Avx512:
        return has_avx512();
    case Isa::Avx2:
        return has_avx2();
    default:
        return true;
    }
}

ObliviousEnsemble::Isa ObliviousEnsemble::best_isa() noexcept {
    return has_avx512() ? Isa::Avx512 : has_avx2() ? Isa::Avx2 : Isa::Portable;
}

void ObliviousEnsemble::block(const float* cols, std::size_t n, double* out, Isa isa) const {
    static_assert(kBlock % 16 == 0); // kernels step 16 rows; the padding rows are dropped
    alignas(64) float acc[kBlock];
    const Kernel sum = kernel_for(isa, depth_);
    const std::size_t padded = (n + 15) / 16 * 16;
    for (std::size_t i = 0; i < n; ++i)
        out[i] = base_;
    for (std::size_t t0 = 0; t0 < n_trees_; t0 += kFlush) {
        const std::size_t t1 = std::min(n_trees_, t0 + kFlush);
        std::fill_n(acc, kBlock, 0.0F);
        sum(cols, kBlock, padded, depth_, feature_.data(), threshold_.data(), leaf_.data(), t0, t1, acc);
        for (std::size_t i = 0; i < n; ++i)
            out[i] += static_cast<double>(acc[i]);
    }
}

void ObliviousEnsemble::predict(std::span<const float> rows, std::span<double> out, Isa isa) const {
    if (rows.size() != out.size() * n_features_)
        throw std::invalid_argument("rows must hold n_features values per output");
    if (isa == Isa::Auto)
        isa = best_isa();
    else if (!supports(isa))
        throw std::invalid_argument("this CPU lacks the instruction set asked for");
    const std::size_t n = out.size();
    const std::size_t nf = n_features_;
    const std::size_t blocks = (n + kBlock - 1) / kBlock;
    global_pool()->parallel_for(blocks, 1, [&](std::size_t lo, std::size_t hi) {
        std::vector<float> cols(nf * kBlock, 0.0F);
        for (std::size_t b = lo; b < hi; ++b) {
            const std::size_t a = b * kBlock;
            const std::size_t m = std::min(kBlock, n - a);
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t f = 0; f < nf; ++f)
                    cols[f * kBlock + i] = rows[(a + i) * nf + f];
            block(cols.data(), m, out.data() + a, isa);
        }
    });
}

} // namespace autolien::valuation
