// Dispatch with antropy's conventions, and the per-group forms that run
// vehicles on the thread pool.
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "autolien/common/thread_pool.hpp"
#include "autolien/entropy/entropy.hpp"

namespace autolien::entropy {

namespace {

void check_offsets(std::span<const std::int64_t> offsets, std::size_t n) {
    if (offsets.empty() || offsets.front() != 0 || static_cast<std::size_t>(offsets.back()) != n)
        throw std::invalid_argument("offsets must run from 0 to the number of samples");
    for (std::size_t g = 1; g < offsets.size(); ++g)
        if (offsets[g] < offsets[g - 1])
            throw std::invalid_argument("offsets must not decrease");
}

} // namespace

double measure(std::span<const double> x, Measure kind, const Params& p) {
    switch (kind) {
    case Measure::perm:
        return perm_entropy(x, p.order, p.delay, p.normalize);
    case Measure::sample: {
        const bool strict = p.metric == Metric::chebyshev && x.size() < 5000;
        return sample_entropy(x, p.order, p.tolerance >= 0 ? p.tolerance : p.r * std_pop(x), p.metric,
                              strict);
    }
    case Measure::app:
        return app_entropy(x, p.order, p.tolerance >= 0 ? p.tolerance : p.r * std_pop(x), p.metric);
    case Measure::svd:
        return svd_entropy(x, p.order, p.delay, p.normalize);
    case Measure::spectral:
        return spectral_entropy(x, p.method, p.nperseg, p.normalize);
    }
    throw std::invalid_argument("unknown measure");
}

std::vector<double> measure_groups(std::span<const double> x, std::span<const std::int64_t> offsets,
                                   Measure kind, const Params& p) {
    check_offsets(offsets, x.size());
    const std::size_t ng = offsets.size() - 1;
    std::vector<double> out(ng);
    global_pool()->parallel_for(ng, 1, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t g = lo; g < hi; ++g) {
            const auto a = static_cast<std::size_t>(offsets[g]);
            const auto b = static_cast<std::size_t>(offsets[g + 1]);
            // Too short a group has no value rather than failing the batch.
            const std::size_t need = kind == Measure::spectral ? 2 : 1;
            out[g] = b - a < need ? std::numeric_limits<double>::quiet_NaN()
                                  : measure(x.subspan(a, b - a), kind, p);
        }
    });
    return out;
}

std::vector<double> rolling_groups(std::span<const double> x, std::span<const double> t,
                                   std::span<const std::int64_t> offsets, const Window& w, const Params& p,
                                   std::span<const double> edges) {
    check_offsets(offsets, x.size());
    if (!t.empty() && t.size() != x.size())
        throw std::invalid_argument("times must have one entry per sample");
    if (t.empty() && w.count == 0)
        throw std::invalid_argument("a count window must be >= 1");
    const bool shannon = !edges.empty();
    if (!shannon)
        perm_entropy({}, p.order, p.delay, false); // validates order and delay up front
    else
        bin_index({}, edges);
    std::vector<double> out(x.size());
    const std::size_t ng = offsets.size() - 1;
    // The fixed-point table is built once, as long as the widest possible window.
    std::vector<std::uint64_t> table;
    if (p.fixed_point) {
        std::size_t longest = 0;
        for (std::size_t g = 0; g < ng; ++g)
            longest = std::max(longest, static_cast<std::size_t>(offsets[g + 1] - offsets[g]));
        table = fixed_entropy_table(t.empty() ? std::min(longest, w.count) : longest);
    }
    global_pool()->parallel_for(ng, 1, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t g = lo; g < hi; ++g) {
            const auto a = static_cast<std::size_t>(offsets[g]);
            const std::size_t n = static_cast<std::size_t>(offsets[g + 1]) - a;
            const auto xs = x.subspan(a, n);
            const auto starts =
                t.empty() ? count_window_starts(n, w.count) : time_window_starts(t.subspan(a, n), w.span);
            const auto v = shannon ? rolling_shannon(bin_index(xs, edges), edges.size() - 1, starts, table)
                                   : rolling_perm_entropy(xs, starts, p.order, p.delay, p.normalize, table);
            std::copy(v.begin(), v.end(), out.begin() + static_cast<std::ptrdiff_t>(a));
        }
    });
    return out;
}

} // namespace autolien::entropy
