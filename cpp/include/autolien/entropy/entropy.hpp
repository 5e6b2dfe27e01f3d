// Entropy measures of a series, batch and rolling. Definitions, log bases and
// defaults follow antropy 0.2.3 (docs/entropy.md lists every choice and where
// EntropyHub or nolds differ).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace autolien::entropy {

// Orders 2..7 (antropy allows any; 7! = 5040 pattern slots bound the tables).
inline constexpr int max_order = 7;

enum class Metric : std::uint8_t { chebyshev, euclidean };
enum class Spectral : std::uint8_t { fft, welch };

// Population standard deviation (ddof=0), the scale antropy's r multiplies.
double std_pop(std::span<const double> x);

// Ordinal pattern of each start p = 0..n-(order-1)*delay-1 as a Lehmer code in
// [0, order!); ties go to the earlier sample (antropy's stable argsort). A
// pattern that touches a NaN is -1.
std::vector<std::int32_t> ordinal_patterns(std::span<const double> x, int order, int delay);

// Permutation entropy in bits; normalised by log2(order!). Patterns touching a
// NaN are left out; NaN when no pattern is left.
double perm_entropy(std::span<const double> x, int order, int delay, bool normalize);

// Sample entropy -ln(A/B) with r absolute. `strict` counts d < r (antropy's
// numba path) instead of d <= r (its KDTree path). +inf when A == 0 and B > 0,
// NaN when B == 0 or x holds a NaN.
double sample_entropy(std::span<const double> x, int order, double r, Metric metric, bool strict);

// Approximate entropy phi_m - phi_{m+1}, self-matches counted, d <= r.
double app_entropy(std::span<const double> x, int order, double r, Metric metric);

// SVD entropy in bits of the delay embedding; normalised by log2(order).
double svd_entropy(std::span<const double> x, int order, int delay, bool normalize);

// Spectral entropy in bits of scipy's one-sided periodogram or Welch PSD
// (constant detrend; Welch: periodic Hann, 50% overlap, nperseg 0 -> 256
// capped at n). Normalised by log2(number of bins).
double spectral_entropy(std::span<const double> x, Spectral method, std::size_t nperseg, bool normalize);

// numpy.linspace(lo, hi, bins + 1): the edges numpy.histogram uses.
std::vector<double> equal_edges(double lo, double hi, std::size_t bins);

// numpy.histogram counts against sorted edges: [e_k, e_k+1), the last bin
// closed. NaN and out-of-range values are not counted (`skipped` adds them).
std::vector<std::int64_t> histogram(std::span<const double> x, std::span<const double> edges,
                                    std::size_t* skipped = nullptr);

// -sum p log2 p of counts (zeros ignored); NaN when the counts sum to 0.
double shannon_bits(std::span<const std::int64_t> counts);

// Bin index of each value against the edges as histogram() bins it, -1 when
// not counted.
std::vector<std::int32_t> bin_index(std::span<const double> x, std::span<const double> edges);

// Window starts for rolling forms: the window ending at sample t covers
// [start[t], t]; -1 marks a window that is not complete (count windows).
std::vector<std::int64_t> count_window_starts(std::size_t n, std::size_t window);
// Time windows (t_end - span, t_end]; times must not decrease.
std::vector<std::int64_t> time_window_starts(std::span<const double> t, double span);

// Rolling permutation entropy: value at t is perm_entropy of x[start[t]..t].
// O(1) per sample after the patterns: integer counts and a fixed-point
// c*log2(c) sum that cannot drift.
// With a fixed_table (fixed_entropy_table) the rolling forms use the
// fixed-point entropy of kernels/entropy_fixed.hpp instead: integer arithmetic
// bit-identical to the GPU kernel, within 2^-31 bits of the exact value.
std::vector<std::uint64_t> fixed_entropy_table(std::size_t max_count);
std::vector<double> rolling_perm_entropy(std::span<const double> x, std::span<const std::int64_t> start,
                                         int order, int delay, bool normalize,
                                         std::span<const std::uint64_t> fixed_table = {});

// Rolling Shannon entropy (bits) of binned values; codes from bin_index.
std::vector<double> rolling_shannon(std::span<const std::int32_t> codes, std::size_t nbins,
                                    std::span<const std::int64_t> start,
                                    std::span<const std::uint64_t> fixed_table = {});

// One call per measure with antropy's conventions applied: r is a fraction
// of the population SD, and sample entropy counts d < r below 5,000 samples
// with the Chebyshev metric (antropy's numba path) and d <= r otherwise (its
// KDTree path).
enum class Measure : std::uint8_t { perm, sample, app, svd, spectral };

struct Params {
    int order = 3;
    int delay = 1;
    bool normalize = false;
    double r = 0.2;          // tolerance as a fraction of the population SD
    double tolerance = -1.0; // absolute tolerance when >= 0 (antropy's `tolerance`)
    Metric metric = Metric::chebyshev;
    Spectral method = Spectral::fft;
    std::size_t nperseg = 0;
    bool fixed_point = false; // rolling forms: the fixed-point entropy (see above)
};

double measure(std::span<const double> x, Measure kind, const Params& p);

// One value per group [offsets[g], offsets[g+1]); groups run on the pool.
std::vector<double> measure_groups(std::span<const double> x, std::span<const std::int64_t> offsets,
                                   Measure kind, const Params& p);

// Rolling permutation (edges empty) or Shannon (edges given) entropy per
// group: a count window when t is empty, else a time span over t.
struct Window {
    std::size_t count = 0;
    double span = 0;
};
std::vector<double> rolling_groups(std::span<const double> x, std::span<const double> t,
                                   std::span<const std::int64_t> offsets, const Window& w, const Params& p,
                                   std::span<const double> edges);

} // namespace autolien::entropy
