// Sample and approximate entropy: template matching over all pairs.
//
// Templates are sorted by their first point, so each one is compared only
// with the run of templates whose first point lies within r above its own
// (no pair can match otherwise). The other points are checked column by
// column over that run with branch-free 0/1 masks, which vectorise; the
// columns are stored in sorted order so every pass reads memory in sequence.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>

#include "autolien/common/thread_pool.hpp"
#include "autolien/entropy/entropy.hpp"

namespace autolien::entropy {

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

bool has_nan(std::span<const double> x) {
    return std::any_of(x.begin(), x.end(), [](double v) { return std::isnan(v); });
}

// NaN in x makes r NaN too (r = k * SD): the NaN result wins over the check.
void check_args(std::span<const double> x, int order, double r) {
    if (order < 1)
        throw std::invalid_argument("order must be >= 1, got " + std::to_string(order));
    if (!(r >= 0 || std::isnan(r)) || std::isinf(r))
        throw std::invalid_argument("r must be finite and >= 0");
    if (std::isnan(r) && !has_nan(x))
        throw std::invalid_argument("r must be finite and >= 0");
}

struct Matches {
    double a = 0; // pairs matching on m+1 points
    double b = 0; // pairs matching on m points
    // Per template (sorted position), when asked: matches on m and m+1 points.
    std::vector<double> per_m, per_m1;
};

// Pairs among templates i in [0, nt) with points x[i .. i+m]; a template
// whose (m+1)-th point lies past the end carries NaN there and so never
// matches on m+1 points.
Matches match_pairs(std::span<const double> x, std::size_t nt, std::size_t m, double r, Metric metric,
                    bool strict, bool per_template) {
    const std::size_t n = x.size();
    std::vector<std::size_t> order(nt);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    std::vector<std::vector<double>> col(m + 1, std::vector<double>(nt));
    for (std::size_t k = 0; k < nt; ++k)
        for (std::size_t l = 0; l <= m; ++l) {
            const std::size_t i = order[k] + l;
            col[l][k] = i < n ? x[i] : nan;
        }
    const double* c0 = col[0].data();
    const double lim = metric == Metric::euclidean ? r * r : r;
    Matches total;
    if (per_template) {
        total.per_m.assign(nt, 0.0);
        total.per_m1.assign(nt, 0.0);
    }
    std::mutex mu;
    global_pool()->parallel_for(nt, 256, [&](std::size_t lo, std::size_t hi) {
        // 0/1 masks and counts as integers: integer sums vectorise, and the
        // counts are exact.
        std::vector<std::int64_t> mask;
        std::vector<double> dist;
        std::vector<std::int64_t> pm, pm1;
        if (per_template) {
            pm.assign(nt, 0);
            pm1.assign(nt, 0);
        }
        std::int64_t ta = 0, tb = 0;
        std::size_t end = lo + 1; // candidates (k, end) move up with k
        for (std::size_t k = lo; k < hi; ++k) {
            const double x0 = c0[k];
            end = std::max(end, k + 1);
            if (strict)
                while (end < nt && c0[end] - x0 < r)
                    ++end;
            else
                while (end < nt && c0[end] - x0 <= r)
                    ++end;
            const std::size_t len = end - k - 1;
            if (len == 0)
                continue;
            const std::size_t s = k + 1;
            mask.assign(len, 1);
            if (metric == Metric::chebyshev) {
                for (std::size_t l = 1; l < m; ++l) {
                    const double* c = col[l].data() + s;
                    const double v = col[l][k];
                    std::int64_t* mk = mask.data();
                    for (std::size_t j = 0; j < len; ++j) {
                        const double d = std::fabs(c[j] - v);
                        mk[j] &= static_cast<std::int64_t>(strict ? d < lim : d <= lim);
                    }
                }
            } else {
                dist.assign(len, 0.0);
                for (std::size_t l = 0; l < m; ++l) {
                    const double* c = col[l].data() + s;
                    const double v = col[l][k];
                    for (std::size_t j = 0; j < len; ++j)
                        dist[j] += (c[j] - v) * (c[j] - v);
                }
                for (std::size_t j = 0; j < len; ++j)
                    mask[j] = static_cast<std::int64_t>(strict ? dist[j] < lim : dist[j] <= lim);
            }
            const double* cm = col[m].data() + s;
            const double vm = col[m][k];
            const std::int64_t* mk = mask.data();
            std::int64_t sb = 0, sa = 0;
            if (metric == Metric::chebyshev && !per_template) {
                for (std::size_t j = 0; j < len; ++j) {
                    const double d = std::fabs(cm[j] - vm);
                    sb += mk[j];
                    sa += mk[j] & static_cast<std::int64_t>(strict ? d < lim : d <= lim);
                }
            } else {
                for (std::size_t j = 0; j < len; ++j) {
                    double d = std::fabs(cm[j] - vm);
                    if (metric == Metric::euclidean)
                        d = dist[j] + d * d;
                    const std::int64_t hit = mk[j] & static_cast<std::int64_t>(strict ? d < lim : d <= lim);
                    sb += mk[j];
                    sa += hit;
                    if (per_template) {
                        pm[s + j] += mk[j];
                        pm1[s + j] += hit;
                    }
                }
            }
            tb += sb;
            ta += sa;
            if (per_template) {
                pm[k] += sb;
                pm1[k] += sa;
            }
        }
        const std::lock_guard lock(mu);
        total.a += static_cast<double>(ta);
        total.b += static_cast<double>(tb);
        if (per_template)
            for (std::size_t k = 0; k < nt; ++k) {
                total.per_m[k] += static_cast<double>(pm[k]);
                total.per_m1[k] += static_cast<double>(pm1[k]);
            }
    });
    return total;
}

} // namespace

double sample_entropy(std::span<const double> x, int order, double r, Metric metric, bool strict) {
    check_args(x, order, r);
    const auto m = static_cast<std::size_t>(order);
    if (has_nan(x) || x.size() < m + 2)
        return nan;
    // B and A over the same n-m templates, as antropy and Richman & Moorman.
    const Matches p = match_pairs(x, x.size() - m, m, r, metric, strict, false);
    if (p.b == 0)
        return nan;
    if (p.a == 0)
        return std::numeric_limits<double>::infinity();
    return -std::log(p.a / p.b);
}

double app_entropy(std::span<const double> x, int order, double r, Metric metric) {
    check_args(x, order, r);
    const std::size_t n = x.size();
    const auto m = static_cast<std::size_t>(order);
    if (has_nan(x) || n < m + 1)
        return nan;
    // n-m+1 templates of m points; the last has no (m+1)-th point.
    const Matches p = match_pairs(x, n - m + 1, m, r, metric, false, true);
    const long double n1 = static_cast<long double>(n - m + 1);
    const long double n2 = static_cast<long double>(n - m);
    // Sorted positions lost the template index; recover which one is last.
    std::vector<std::size_t> order_idx(n - m + 1);
    std::iota(order_idx.begin(), order_idx.end(), std::size_t{0});
    std::stable_sort(order_idx.begin(), order_idx.end(),
                     [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    long double phi0 = 0, phi1 = 0;
    for (std::size_t k = 0; k < order_idx.size(); ++k) {
        phi0 += std::log((p.per_m[k] + 1.0L) / n1); // self-match counted
        if (order_idx[k] != n - m)
            phi1 += std::log((p.per_m1[k] + 1.0L) / n2);
    }
    return static_cast<double>(phi0 / n1 - phi1 / n2);
}

} // namespace autolien::entropy
