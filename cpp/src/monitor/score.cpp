// The monitor's hourly scoring of one vehicle (autolien/monitor/score.hpp).
#include "autolien/monitor/score.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "autolien/entropy/entropy.hpp"

namespace autolien::monitor {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Python's max(a, b) and min(a, b): the first unless the second is
// greater (smaller); with a NaN that keeps the first as Python does.
double py_max(double a, double b) {
    return b > a ? b : a;
}
double py_min(double a, double b) {
    return b < a ? b : a;
}

void need(bool ok, const char* what) {
    if (!ok)
        throw std::invalid_argument(what);
}

// One hour of a CUSUM chart: an hour with nothing to score lowers it by its
// allowance; `since` is the start of the run that left zero.
void chart(double& cusum, double& since, double sc, double k, double h, double t_start) {
    if (std::isnan(sc)) {
        cusum = py_max(0.0, cusum - k);
        return;
    }
    const double was = cusum;
    cusum = py_min(py_max(0.0, cusum + sc - k), 3 * h);
    if (was == 0.0 && cusum > 0.0)
        since = t_start;
}

// The sum over the window of each scored row, added from zero newest first
// (engine._trailing's order).
template <typename T>
std::vector<T> trailing(std::span<const T> a, std::size_t stride, std::size_t col, std::size_t rows,
                        std::size_t first, std::int64_t k) {
    std::vector<T> out(rows - first);
    for (std::size_t p = first; p < rows; ++p) {
        T acc = 0;
        for (std::int64_t s = 0; s < k && static_cast<std::int64_t>(p) - s >= 0; ++s)
            acc += a[(p - static_cast<std::size_t>(s)) * stride + col];
        out[p - first] = acc;
    }
    return out;
}

std::vector<double> hist_entropy(std::span<const std::int64_t> h, std::size_t bins, std::size_t rows,
                                 std::size_t first, std::int64_t k) {
    std::vector<double> out(rows - first);
    std::vector<std::int64_t> row(bins);
    for (std::size_t p = first; p < rows; ++p) {
        std::fill(row.begin(), row.end(), 0);
        for (std::int64_t s = 0; s < k && static_cast<std::int64_t>(p) - s >= 0; ++s) {
            const auto* r = h.data() + (p - static_cast<std::size_t>(s)) * bins;
            for (std::size_t b = 0; b < bins; ++b)
                row[b] += r[b];
        }
        out[p - first] = entropy::shannon_bits(row);
    }
    return out;
}

// numpy.nan_to_num(x, nan=0.0) >= limit (an infinity stays beyond any limit)
bool at_least(double x, double limit) {
    return (std::isnan(x) ? 0.0 : x) >= limit;
}

} // namespace

WindowFeatures window_features(const WindowInput& in) {
    const std::size_t rows = in.n.size();
    need(in.dist_km.size() == rows && in.moving_s.size() == rows && in.night_s.size() == rows &&
             in.speeding_s.size() == rows && in.odo_km.size() == rows && in.harsh_accel.size() == rows &&
             in.harsh_brake.size() == rows && in.n_odo.size() == rows,
         "the window's columns must have one value per row");
    need(in.speed_hist.size() == rows * in.speed_bins && in.turn_hist.size() == rows * in.turn_bins &&
             in.stop_hist.size() == rows * in.stop_bins,
         "the histograms must be rows x bins");
    need(in.first <= rows && in.k >= 1, "need first <= rows and k >= 1");
    const std::size_t m = rows - in.first;
    const auto f = [&](std::span<const double> a) { return trailing(a, 1, 0, rows, in.first, in.k); };
    const auto i = [&](std::span<const std::int64_t> a) { return trailing(a, 1, 0, rows, in.first, in.k); };
    WindowFeatures out;
    out.n = i(in.n);
    const auto dist = f(in.dist_km), moving = f(in.moving_s), night = f(in.night_s),
               speeding = f(in.speeding_s), odo = f(in.odo_km);
    const auto accel = i(in.harsh_accel), brake = i(in.harsh_brake), n_odo = i(in.n_odo);
    out.speed_entropy = hist_entropy(in.speed_hist, in.speed_bins, rows, in.first, in.k);
    out.turn_entropy = hist_entropy(in.turn_hist, in.turn_bins, rows, in.first, in.k);
    out.stop_entropy = hist_entropy(in.stop_hist, in.stop_bins, rows, in.first, in.k);
    out.night_share.resize(m);
    out.km_track = dist;
    out.km_odo.resize(m);
    out.km_24h.resize(m);
    out.behaviour_arg.resize(m);
    out.moving.resize(m);
    for (std::size_t j = 0; j < m; ++j) {
        const bool mv = moving[j] > 0;
        out.moving[j] = mv;
        out.night_share[j] = mv ? night[j] / moving[j] : kNaN;
        out.km_odo[j] = n_odo[j] > 0 ? odo[j] : kNaN;
        out.km_24h[j] = n_odo[j] >= 2 ? odo[j] : dist[j];
        const double per100 = dist[j] > 1.0 ? 100.0 / dist[j] : 0.0;
        const double share = mv ? speeding[j] / moving[j] : 0.0;
        out.behaviour_arg[j] = static_cast<double>(accel[j]) * per100 / 10.0 +
                               static_cast<double>(brake[j]) * per100 / 5.0 + 2.0 * share;
    }
    return out;
}

MileageFlags mileage_flags(const MileageInput& in, const MileageParams& p) {
    const std::size_t n = in.km.size();
    need(in.track.size() == n && in.odo.size() == n && in.fixes.size() == n && in.earlier.size() == n,
         "km, track, odo, fixes and earlier must have one value per hour");
    MileageFlags out;
    out.excess.resize(n);
    out.z.resize(n);
    out.ratio.resize(n);
    out.jump.assign(n, 0);
    out.more.assign(n, 0);
    out.frozen.assign(n, 0);
    out.mismatch.assign(n, 0);
    const bool based = in.count >= p.min_baseline_h;
    const double scale = py_max(1.4826 * in.mad, p.mad_floor_km);
    for (std::size_t j = 0; j < n; ++j) {
        const double excess = in.km[j] - in.median;
        out.excess[j] = excess;
        out.z[j] = based ? excess / scale : excess * kNaN;
        bool jump = based && (excess * 30 >= p.warn_km_month) && (out.z[j] >= p.z);
        out.more[j] = jump;
        if (p.confirm && based)
            jump = jump && ((in.earlier[j] - in.median) * 30 >= p.warn_km_month);
        out.jump[j] = jump;
        const double odo = in.odo[j], track = in.track[j];
        const bool checked =
            !std::isnan(odo) && in.fixes[j] > 0 && (track >= p.freeze_track_km || odo >= p.freeze_track_km);
        const bool frozen = checked && odo < p.rollback_km;
        const double ratio = (checked && !frozen) ? odo / (track > 0 ? track : 1.0) : 1.0;
        out.frozen[j] = frozen;
        out.ratio[j] = ratio;
        out.mismatch[j] = checked && !frozen && (ratio < p.mismatch_low || ratio > p.mismatch_high);
    }
    return out;
}

EntropyScores entropy_scores(const EntropyInput& in, const EntropyParams& p, EntropyState s) {
    const std::size_t cols = in.cols, n = in.t_end.size();
    need(cols >= 1 && in.values.size() == n * cols, "values must be hours x cols");
    need(in.median.size() == cols && in.mad.size() == cols && in.z_floor.size() == cols &&
             in.count.size() == cols && in.place.size() == cols,
         "median, mad, z_floor, count and place must have one value per column");
    need(in.away.size() == n && in.driving_more.size() == n,
         "away and driving_more must have one value per hour");
    EntropyScores out;
    out.z.assign(n * cols, kNaN);
    out.explained.assign(n * cols, 0);
    out.score.assign(n, kNaN);
    out.cusum.resize(n);
    out.since.resize(n);
    out.slow.resize(n);
    out.slow_since.resize(n);
    std::vector<double> scale(cols);
    for (std::size_t c = 0; c < cols; ++c)
        scale[c] = py_max(1.4826 * in.mad[c], in.z_floor[c]);
    // the end of the latest hour the mileage test flagged, so far
    double flag = -std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < n; ++j) {
        if (in.driving_more[j])
            flag = py_max(flag, in.t_end[j]);
        const double latest = py_max(flag, s.mileage_flag_t);
        if (j + 1 == n)
            s.mileage_flag_t = latest;
        const bool driving = in.t_end[j] - latest < p.hold_s;
        const bool far = at_least(in.away[j], p.away_km);
        double top0 = -std::numeric_limits<double>::infinity(), top1 = top0;
        int valid = 0;
        for (std::size_t c = 0; c < cols; ++c) {
            const std::size_t at = j * cols + c;
            if (in.count[c] >= p.min_baseline_h)
                out.z[at] = (in.values[at] - in.median[c]) / scale[c];
            const bool expl = in.place[c] ? far : driving;
            out.explained[at] = expl;
            const double z = out.z[at];
            if (expl || std::isnan(z))
                continue;
            ++valid;
            const double v = std::min(std::max(z, 0.0), 10.0); // numpy.clip
            if (v > top0) {
                top1 = top0;
                top0 = v;
            } else if (v > top1) {
                top1 = v;
            }
        }
        // the mean of the two largest increases: misuse moves several
        // features at once, noise in one feature alone does not count double
        const double sc = valid >= 2 ? (top0 + top1) / 2 : valid == 1 ? top0 : kNaN;
        out.score[j] = sc;
        chart(s.cusum, s.cusum_since, sc, p.cusum_k, p.cusum_h, in.t_end[j] - p.hour_s);
        out.cusum[j] = s.cusum;
        out.since[j] = s.cusum_since;
        if (p.slow_h > 0)
            chart(s.slow, s.slow_since, sc, p.slow_k, p.slow_h, in.t_end[j] - p.hour_s);
        out.slow[j] = s.slow;
        out.slow_since[j] = s.slow_since;
    }
    out.end = s;
    return out;
}

RelocationFlags relocation_flags(std::span<const double> away, std::size_t hours, const RelocationParams& p,
                                 std::int64_t streak) {
    need(hours <= away.size(), "away must hold the day's hours last");
    need(p.context_h >= 1, "context_h must be at least 1");
    const std::size_t before = away.size() - hours;
    RelocationFlags out;
    out.n_away.resize(hours);
    out.streak.resize(hours);
    out.level.assign(hours, -1);
    // prefix counts of away rows
    std::vector<std::int64_t> cs(away.size() + 1, 0);
    for (std::size_t r = 0; r < away.size(); ++r)
        cs[r + 1] = cs[r] + (at_least(away[r], p.away_km) ? 1 : 0);
    for (std::size_t j = 0; j < hours; ++j) {
        const std::size_t r = before + j;
        const auto lo = static_cast<std::size_t>(
            std::max<std::int64_t>(static_cast<std::int64_t>(r) + 1 - p.context_h, 0));
        out.n_away[j] = cs[r + 1] - cs[lo];
        const bool is_away = at_least(away[r], p.away_km);
        streak = is_away ? streak + 1 : 0;
        out.streak[j] = streak;
        if (is_away && out.n_away[j] >= p.away_hours)
            out.level[j] = streak >= p.emergency_h ? 2 : 1;
    }
    out.end_streak = streak;
    return out;
}

} // namespace autolien::monitor
