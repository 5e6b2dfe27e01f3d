// Count-based measures: ordinal patterns, permutation and Shannon entropy,
// their rolling forms and the numpy-compatible histogram.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autolien/entropy/entropy.hpp"
#include "autolien/kernels/entropy_fixed.hpp"

namespace autolien::entropy {

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr int factorial[max_order + 1] = {1, 1, 2, 6, 24, 120, 720, 5040};

void check_order_delay(int order, int delay) {
    if (order < 2 || order > max_order)
        throw std::invalid_argument("order must be in 2.." + std::to_string(max_order) + ", got " +
                                    std::to_string(order));
    if (delay < 1)
        throw std::invalid_argument("delay must be >= 1, got " + std::to_string(delay));
}

// -sum p log2 p from counts, in the order antropy sums (p = c / total).
double bits_of(const std::int64_t* c, std::size_t k) {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < k; ++i)
        total += c[i];
    if (total == 0)
        return nan;
    const double t = static_cast<double>(total);
    double h = 0;
    for (std::size_t i = 0; i < k; ++i)
        if (c[i] > 0) {
            const double p = static_cast<double>(c[i]) / t;
            h -= p * std::log2(p);
        }
    return h;
}

// Entropy of a multiset of codes under add/remove. S = sum c*log2(c) is kept
// as an integer in units of 2^-40 (each term rounded once), so a long stream
// of updates returns exactly to the value a fresh count gives.
__extension__ typedef __int128 i128;

class CountEntropy {
  public:
    CountEntropy(std::size_t slots, std::size_t max_count) : counts_(slots, 0) {
        table_.resize(std::min<std::size_t>(max_count, 1U << 16) + 1);
        for (std::size_t c = 0; c < table_.size(); ++c)
            table_[c] = term(c);
    }
    void add(std::int32_t k) {
        auto& c = counts_[static_cast<std::size_t>(k)];
        s_ += lookup(c + 1) - lookup(c);
        ++c;
        ++total_;
    }
    void remove(std::int32_t k) {
        auto& c = counts_[static_cast<std::size_t>(k)];
        s_ += lookup(c - 1) - lookup(c);
        --c;
        --total_;
    }
    [[nodiscard]] double bits() const {
        if (total_ == 0)
            return nan;
        const double n = static_cast<double>(total_);
        const double h = std::log2(n) - static_cast<double>(s_) / scale / n;
        return h < 0 ? 0.0 : h; // only rounding can take it below zero
    }

  private:
    static constexpr double scale = 1099511627776.0; // 2^40
    static i128 term(std::size_t c) {
        if (c < 2)
            return 0;
        // Whole and fractional parts apart: v * 2^40 overflows int64 for large c.
        const long double v = static_cast<long double>(c) * std::log2(static_cast<long double>(c));
        const long double whole = std::floor(v);
        const auto frac = static_cast<i128>(std::llround((v - whole) * 1099511627776.0L));
        return (static_cast<i128>(static_cast<std::int64_t>(whole)) << 40) + frac;
    }
    [[nodiscard]] i128 lookup(std::int64_t c) const {
        const auto u = static_cast<std::size_t>(c);
        return u < table_.size() ? table_[u] : term(u);
    }
    std::vector<std::int64_t> counts_;
    std::vector<i128> table_;
    i128 s_ = 0;
    std::int64_t total_ = 0;
};

// The fixed-point variant (kernels/entropy_fixed.hpp): integer counts, the
// shared T(c) = c*log2(c) table and an integer result, bit-identical to the GPU
// kernel. The table is built once per call and shared by every group.
class CountEntropyFixed {
  public:
    CountEntropyFixed(std::size_t slots, std::span<const std::uint64_t> table)
        : counts_(slots, 0), table_(table) {}
    void add(std::int32_t k) {
        auto& c = counts_[static_cast<std::size_t>(k)];
        s_ += table_[c + 1] - table_[c];
        ++c;
        ++total_;
    }
    void remove(std::int32_t k) {
        auto& c = counts_[static_cast<std::size_t>(k)];
        s_ -= table_[c] - table_[c - 1];
        --c;
        --total_;
    }
    [[nodiscard]] double bits() const {
        if (total_ == 0)
            return nan;
        return static_cast<double>(kernels::entropy_fixed(table_[total_], s_, total_)) * kFixedUnit;
    }

  private:
    static constexpr double kFixedUnit = 1.0 / 4294967296.0; // 2^-32 (kEntropyFracBits)
    std::vector<std::uint32_t> counts_;
    std::span<const std::uint64_t> table_;
    std::uint64_t s_ = 0;
    std::uint32_t total_ = 0;
};

void check_starts(std::span<const std::int64_t> start, std::size_t n) {
    if (start.size() != n)
        throw std::invalid_argument("start must have one entry per sample");
    std::int64_t prev = 0;
    for (std::size_t t = 0; t < n; ++t) {
        const std::int64_t s = start[t];
        if (s < -1 || s > static_cast<std::int64_t>(t))
            throw std::invalid_argument("window start out of range at sample " + std::to_string(t));
        if (s >= 0) {
            if (s < prev)
                throw std::invalid_argument("window starts must not decrease");
            prev = s;
        }
    }
}

// The shared sliding loop: item p (covering samples p .. p+span-1) enters
// the window ending at t once p + span - 1 <= t and leaves once p < start[t].
template <typename Counter>
std::vector<double> slide(std::span<const std::int32_t> codes, std::size_t span,
                          std::span<const std::int64_t> start, std::size_t n, Counter h) {
    std::vector<double> out(n, nan);
    std::size_t lo = 0;
    std::size_t hi = 0;
    for (std::size_t t = 0; t < n; ++t) {
        if (start[t] < 0)
            continue;
        const auto a = static_cast<std::size_t>(start[t]);
        const std::size_t b = std::max(a, std::min(codes.size(), t + 2 >= span ? t + 2 - span : 0));
        for (; lo < a && lo < hi; ++lo)
            if (codes[lo] >= 0)
                h.remove(codes[lo]);
        if (lo < a)
            lo = hi = a;
        for (; hi < b; ++hi)
            if (codes[hi] >= 0)
                h.add(codes[hi]);
        out[t] = h.bits();
    }
    return out;
}

// Picks the counter: the double-sum one, or the fixed-point one when a
// table is given.
std::vector<double> rolling_codes(std::span<const std::int32_t> codes, std::size_t slots, std::size_t span,
                                  std::span<const std::int64_t> start, std::size_t n,
                                  std::span<const std::uint64_t> fixed_table) {
    check_starts(start, n);
    std::size_t widest = 0;
    for (std::size_t t = 0; t < n; ++t)
        if (start[t] >= 0)
            widest = std::max(widest, t + 1 - static_cast<std::size_t>(start[t]));
    if (fixed_table.empty())
        return slide(codes, span, start, n, CountEntropy(slots, widest));
    if (widest >= fixed_table.size())
        throw std::invalid_argument("fixed-point entropy: a window of " + std::to_string(widest) +
                                    " samples exceeds the table (" + std::to_string(fixed_table.size() - 1) +
                                    ")");
    return slide(codes, span, start, n, CountEntropyFixed(slots, fixed_table));
}

} // namespace

double std_pop(std::span<const double> x) {
    if (x.empty())
        return nan;
    long double s = 0;
    for (double v : x)
        s += v;
    const long double mean = s / static_cast<long double>(x.size());
    long double q = 0;
    for (double v : x)
        q += (v - mean) * (v - mean);
    return static_cast<double>(std::sqrt(q / static_cast<long double>(x.size())));
}

std::vector<std::int32_t> ordinal_patterns(std::span<const double> x, int order, int delay) {
    check_order_delay(order, delay);
    const std::size_t span = static_cast<std::size_t>(order - 1) * static_cast<std::size_t>(delay);
    if (x.size() <= span)
        return {};
    const std::size_t np = x.size() - span;
    std::vector<std::int32_t> out(np);
    const auto d = static_cast<std::size_t>(delay);
    for (std::size_t p = 0; p < np; ++p) {
        double v[max_order];
        bool bad = false;
        for (int i = 0; i < order; ++i) {
            v[i] = x[p + static_cast<std::size_t>(i) * d];
            bad |= std::isnan(v[i]);
        }
        if (bad) {
            out[p] = -1;
            continue;
        }
        // Lehmer code: for each i, how many earlier samples rank above it. An
        // equal earlier sample ranks below (stable argsort).
        int code = 0;
        for (int i = 1; i < order; ++i) {
            int c = 0;
            for (int j = 0; j < i; ++j)
                c += v[j] > v[i];
            code += c * factorial[i];
        }
        out[p] = code;
    }
    return out;
}

double perm_entropy(std::span<const double> x, int order, int delay, bool normalize) {
    const auto codes = ordinal_patterns(x, order, delay);
    std::vector<std::int64_t> counts(static_cast<std::size_t>(factorial[order]), 0);
    for (auto c : codes)
        if (c >= 0)
            ++counts[static_cast<std::size_t>(c)];
    double h = bits_of(counts.data(), counts.size());
    if (normalize)
        h /= std::log2(static_cast<double>(factorial[order]));
    return h;
}

std::vector<double> equal_edges(double lo, double hi, std::size_t bins) {
    if (bins == 0)
        throw std::invalid_argument("bins must be >= 1");
    if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
        throw std::invalid_argument("histogram range must be finite with lo <= hi");
    if (lo == hi) { // numpy widens an empty range by half a unit each side
        lo -= 0.5;
        hi += 0.5;
    }
    std::vector<double> e(bins + 1);
    const double step = (hi - lo) / static_cast<double>(bins);
    for (std::size_t k = 0; k <= bins; ++k)
        e[k] = static_cast<double>(k) * step + lo;
    e[bins] = hi;
    return e;
}

std::vector<std::int32_t> bin_index(std::span<const double> x, std::span<const double> edges) {
    if (edges.size() < 2)
        throw std::invalid_argument("need at least two bin edges");
    for (std::size_t i = 0; i < edges.size(); ++i) {
        if (!std::isfinite(edges[i]))
            throw std::invalid_argument("bin edges must be finite");
        if (i && edges[i] < edges[i - 1])
            throw std::invalid_argument("bin edges must increase monotonically");
    }
    const auto nb = static_cast<std::int32_t>(edges.size() - 1);
    std::vector<std::int32_t> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double v = x[i];
        if (!(v >= edges.front() && v <= edges.back())) { // NaN fails both
            out[i] = -1;
            continue;
        }
        auto k =
            static_cast<std::int32_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin()) - 1;
        out[i] = std::min(k, nb - 1);
    }
    return out;
}

std::vector<std::int64_t> histogram(std::span<const double> x, std::span<const double> edges,
                                    std::size_t* skipped) {
    const auto idx = bin_index(x, edges);
    std::vector<std::int64_t> counts(edges.size() - 1, 0);
    std::size_t miss = 0;
    for (auto k : idx) {
        if (k < 0)
            ++miss;
        else
            ++counts[static_cast<std::size_t>(k)];
    }
    if (skipped)
        *skipped += miss;
    return counts;
}

double shannon_bits(std::span<const std::int64_t> counts) {
    for (auto c : counts)
        if (c < 0)
            throw std::invalid_argument("counts must be >= 0");
    return bits_of(counts.data(), counts.size());
}

std::vector<std::int64_t> count_window_starts(std::size_t n, std::size_t window) {
    if (window == 0)
        throw std::invalid_argument("window must be >= 1");
    std::vector<std::int64_t> s(n);
    for (std::size_t t = 0; t < n; ++t)
        s[t] = t + 1 >= window ? static_cast<std::int64_t>(t + 1 - window) : -1;
    return s;
}

std::vector<std::int64_t> time_window_starts(std::span<const double> t, double span) {
    if (!(span > 0) || !std::isfinite(span))
        throw std::invalid_argument("time window must be a positive, finite span");
    std::vector<std::int64_t> s(t.size());
    std::size_t lo = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (!std::isfinite(t[i]))
            throw std::invalid_argument("times must be finite (sample " + std::to_string(i) + ")");
        if (i && t[i] < t[i - 1])
            throw std::invalid_argument("times must not decrease (sample " + std::to_string(i) + ")");
        while (t[lo] <= t[i] - span)
            ++lo;
        s[i] = static_cast<std::int64_t>(lo);
    }
    return s;
}

std::vector<std::uint64_t> fixed_entropy_table(std::size_t max_count) {
    if (max_count > kernels::kEntropyMaxCount)
        throw std::invalid_argument("fixed-point entropy holds windows up to " +
                                    std::to_string(kernels::kEntropyMaxCount) + " samples, got " +
                                    std::to_string(max_count));
    std::vector<std::uint64_t> table(max_count + 1);
    for (std::size_t c = 0; c <= max_count; ++c)
        table[c] = kernels::nlog2n_fixed(static_cast<std::uint32_t>(c));
    return table;
}

std::vector<double> rolling_perm_entropy(std::span<const double> x, std::span<const std::int64_t> start,
                                         int order, int delay, bool normalize,
                                         std::span<const std::uint64_t> fixed_table) {
    const auto codes = ordinal_patterns(x, order, delay);
    const std::size_t span = static_cast<std::size_t>(order - 1) * static_cast<std::size_t>(delay) + 1;
    auto out =
        rolling_codes(codes, static_cast<std::size_t>(factorial[order]), span, start, x.size(), fixed_table);
    if (normalize) {
        const double norm = std::log2(static_cast<double>(factorial[order]));
        for (auto& v : out)
            v /= norm;
    }
    return out;
}

std::vector<double> rolling_shannon(std::span<const std::int32_t> codes, std::size_t nbins,
                                    std::span<const std::int64_t> start,
                                    std::span<const std::uint64_t> fixed_table) {
    for (auto c : codes)
        if (c >= static_cast<std::int64_t>(nbins))
            throw std::invalid_argument("bin code out of range");
    return rolling_codes(codes, nbins, 1, start, codes.size(), fixed_table);
}

} // namespace autolien::entropy
