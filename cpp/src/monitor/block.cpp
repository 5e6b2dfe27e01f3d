// Block derivation for the monitor. Each expression mirrors the per-vehicle
// numpy code it replaced (tests/monitor_reference.py: derive, hourly and the
// cell dwell of Vehicle._append_history) in numpy's evaluation order, so the
// results are the same doubles; see docs/monitor.md ("The block kernel").
#include "autolien/monitor/block.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "autolien/entropy/entropy.hpp"
#include "autolien/gnss/geodesy.hpp"

namespace autolien::monitor {

namespace {

constexpr double kHour = 3600.0;

// numpy's float remainder (npy_divmod): the sign of the divisor, +0 for an exact zero
double np_mod(double a, double b) {
    double mod = std::fmod(a, b);
    if (mod != 0.0 || std::isnan(mod)) {
        if ((b < 0) != (mod < 0))
            mod += b;
    } else {
        mod = std::copysign(0.0, b);
    }
    return mod;
}

// np.clip(x, 0, hi).astype(int64) for x that is an integer value or +-inf
std::int64_t clip_bin(double x, int hi) {
    return static_cast<std::int64_t>(std::clamp(x, 0.0, static_cast<double>(hi)));
}

void check(const BlockInput& in) {
    const std::size_t n = in.t.size();
    for (const std::size_t m : {in.lat.size(), in.lon.size(), in.speed.size(), in.cells.size()})
        if (m != n)
            throw std::invalid_argument("t, lat, lon, speed and cells must have the same length");
    if (!in.local_hour.empty() && in.local_hour.size() != n)
        throw std::invalid_argument("local_hour must be empty or hold one hour per sample");
    if (in.offsets.empty())
        throw std::invalid_argument("offsets must hold n_vehicles + 1 entries");
    const std::size_t nv = in.offsets.size() - 1;
    if (in.run_carry.size() != nv || in.h_a.size() != nv || in.h_b.size() != nv)
        throw std::invalid_argument("run_carry, h_a and h_b need one entry per vehicle (len(offsets) - 1)");
    if (in.offsets.front() != 0 || in.offsets.back() != static_cast<std::int64_t>(n))
        throw std::invalid_argument("offsets must start at 0 and end at the sample count");
    std::int64_t hours = 0;
    for (std::size_t v = 0; v < nv; ++v) {
        if (in.offsets[v + 1] < in.offsets[v])
            throw std::invalid_argument("offsets must not decrease");
        if (in.h_b[v] < in.h_a[v])
            throw std::invalid_argument("h_b must not be below h_a");
        const std::int64_t nh = in.h_b[v] - in.h_a[v];
        if (nh > (std::int64_t{1} << 24) || hours > (std::int64_t{1} << 30))
            throw std::invalid_argument("too many hours in one block");
        hours += nh;
    }
    for (std::size_t i = 0; i < n; ++i)
        // (|t| bounded so that its hour is an int64)
        if (!(std::fabs(in.t[i]) < 1e15) || !std::isfinite(in.lat[i]) || !std::isfinite(in.lon[i]))
            throw std::invalid_argument("t, lat and lon must be finite (|t| < 1e15 s)");
}

void derive_vehicle(const BlockInput& in, const DeriveParams& p, std::size_t a, std::size_t b, double carry,
                    DerivedColumns& d) {
    const auto& t = in.t;
    const auto& lat = in.lat;
    const auto& lon = in.lon;
    const auto& sp = in.speed;
    const bool wrap = p.night_start_h > p.night_end_h;
    double run_t = std::nan(""); // start of the current stationary run
    for (std::size_t i = a; i < b; ++i) {
        const bool first = i == a;
        double dist = 0.0, dt = 0.0;
        if (!first) {
            dist = gnss::great_circle_m(lat[i - 1], lon[i - 1], lat[i], lon[i], p.earth_m);
            dt = t[i] - t[i - 1];
        }
        const double implied = dt > 0 ? dist * 3.6 / dt : 0.0;
        const double speed = std::isnan(sp[i]) ? implied : sp[i];
        const bool moving = speed >= p.moving_kmh;
        bool still = false;
        if (!first)
            still = !std::isnan(sp[i]) && !std::isnan(sp[i - 1]) && sp[i] < p.moving_kmh &&
                    sp[i - 1] < p.moving_kmh;
        bool jump = dist >= p.jump_min_m &&
                    ((dt > 0 && implied > p.jump_kmh) || dt <= 0 || (still && dt >= p.jump_still_gap_s));
        if (first)
            jump = false;
        d.jump_m[i] = jump ? dist : 0.0;
        if (jump || dt > p.silence_gap_s)
            dist = 0.0;
        const double step = std::fmin(dt, p.step_cap_s);
        const double moving_s = moving && !jump ? step : 0.0;
        // numpy's floor(((t + offset) % 86400) / 3600): the remainder is exact
        const double lh = in.local_hour.empty() ? std::floor(np_mod(t[i] + p.tz_offset_s, 86400.0) / kHour)
                                                : in.local_hour[i];
        const bool night = wrap ? (lh >= p.night_start_h || lh < p.night_end_h)
                                : (lh >= p.night_start_h && lh < p.night_end_h);
        const bool dense = dt > 0 && dt <= p.harsh_max_dt_s;
        double accel = 0.0;
        if (!first && dense)
            accel = (speed - d.speed[i - 1]) / 3.6 / dt;
        d.speed[i] = speed;
        d.moving[i] = moving;
        d.dist_m[i] = dist;
        d.moving_s[i] = moving_s;
        d.night_s[i] = night ? moving_s : 0.0;
        d.speeding_s[i] = speed > p.speeding_kmh ? moving_s : 0.0;
        d.harsh_accel[i] = dense && accel >= p.harsh_accel_mps2;
        d.harsh_brake[i] = dense && accel <= -p.harsh_brake_mps2;
        d.dwell_s[i] = static_cast<std::int64_t>(std::nearbyint(std::fmin(dt, p.dwell_cap_s)));
        // stationary runs; the first may have begun before this buffer
        if (!moving) {
            if (first || d.moving[i - 1])
                run_t = first && !std::isnan(carry) ? carry : t[i];
            d.run_start[i] = run_t;
        } else {
            d.run_start[i] = std::nan("");
        }
        double stop_s = 0.0;
        bool stop_end = false;
        if (!first && moving && !d.moving[i - 1]) {
            const double dur = t[i] - d.run_start[i - 1];
            stop_end = dur >= p.stop_min_s;
            stop_s = stop_end ? dur : 0.0;
        }
        d.stop_end[i] = stop_end;
        d.stop_s[i] = stop_s;
        d.jump[i] = jump;
    }
}

void hourly_vehicle(const BlockInput& in, const DerivedView& d, std::span<const std::int64_t> stop_bin,
                    std::size_t a, std::size_t b, std::int64_t h_a, std::int64_t h_b, HourlyColumns& h) {
    const std::size_t r0 = h.hour.size();
    const auto nh = static_cast<std::size_t>(h_b - h_a);
    for (std::int64_t k = h_a; k < h_b; ++k)
        h.hour.push_back(k);
    h.n.resize(r0 + nh, 0);
    h.harsh_accel.resize(r0 + nh, 0);
    h.harsh_brake.resize(r0 + nh, 0);
    h.dist_km.resize(r0 + nh, 0.0);
    h.moving_s.resize(r0 + nh, 0.0);
    h.night_s.resize(r0 + nh, 0.0);
    h.speeding_s.resize(r0 + nh, 0.0);
    h.last_lat.resize(r0 + nh, std::nan(""));
    h.last_lon.resize(r0 + nh, std::nan(""));
    h.speed_hist.resize((r0 + nh) * kSpeedBins, 0);
    h.turn_hist.resize((r0 + nh) * kTurnBins, 0);
    h.stop_hist.resize((r0 + nh) * kStopBins, 0);
    std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> dwell;
    for (std::size_t i = a; i < b; ++i) {
        const auto hs = static_cast<std::int64_t>(std::floor(in.t[i] / kHour));
        if (hs < h_a || hs >= h_b)
            continue;
        const std::size_t r = r0 + static_cast<std::size_t>(hs - h_a);
        h.n[r] += 1;
        h.dist_km[r] += d.dist_m[i];
        h.moving_s[r] += d.moving_s[i];
        h.night_s[r] += d.night_s[i];
        h.speeding_s[r] += d.speeding_s[i];
        h.harsh_accel[r] += d.harsh_accel[i];
        h.harsh_brake[r] += d.harsh_brake[i];
        if (d.moving[i]) {
            const auto sb = clip_bin(std::floor(d.speed[i] / 10.0), kSpeedBins - 1);
            h.speed_hist[r * kSpeedBins + sb] += static_cast<std::int64_t>(std::nearbyint(d.moving_s[i]));
        }
        if (!std::isnan(d.turn[i]))
            h.turn_hist[r * kTurnBins + clip_bin(std::floor((d.turn[i] + 180.0) / 30.0), kTurnBins - 1)] += 1;
        if (d.stop_end[i])
            h.stop_hist[r * kStopBins + std::clamp<std::int64_t>(stop_bin[i], 0, kStopBins - 1)] += 1;
        h.last_lat[r] = in.lat[i];
        h.last_lon[r] = in.lon[i];
        dwell.emplace_back(hs, in.cells[i], d.dwell_s[i]);
    }
    for (std::size_t r = r0; r < r0 + nh; ++r)
        h.dist_km[r] /= 1000.0;
    // (hour, cell) groups in ascending order; integer sums need no fixed order.
    // Fixes in time order come hour by hour: each hour's few cells are then
    // merged in a short list, else the whole buffer is sorted first.
    const bool by_hour = std::is_sorted(dwell.begin(), dwell.end(), [](const auto& x, const auto& y) {
        return std::get<0>(x) < std::get<0>(y);
    });
    if (!by_hour)
        std::sort(dwell.begin(), dwell.end());
    std::vector<std::pair<std::int64_t, std::int64_t>> hour_cells; // (cell, seconds) of one hour
    for (std::size_t k = 0; k < dwell.size();) {
        const std::int64_t hr = std::get<0>(dwell[k]);
        hour_cells.clear();
        for (; k < dwell.size() && std::get<0>(dwell[k]) == hr; ++k) {
            const std::int64_t cell = std::get<1>(dwell[k]), secs = std::get<2>(dwell[k]);
            auto it = std::find_if(hour_cells.rbegin(), hour_cells.rend(),
                                   [cell](const auto& e) { return e.first == cell; });
            if (it == hour_cells.rend())
                hour_cells.emplace_back(cell, secs);
            else
                it->second += secs;
        }
        std::sort(hour_cells.begin(), hour_cells.end());
        for (const auto& [cell, secs] : hour_cells) {
            h.cell_hour.push_back(hr);
            h.cell_id.push_back(cell);
            h.cell_secs.push_back(secs);
        }
    }
}

} // namespace

DerivedColumns derive_block(const BlockInput& in, const DeriveParams& p) {
    check(in);
    const std::size_t n = in.t.size();
    const std::size_t nv = in.offsets.size() - 1;
    DerivedColumns d;
    for (auto* v :
         {&d.speed, &d.dist_m, &d.moving_s, &d.night_s, &d.speeding_s, &d.run_start, &d.stop_s, &d.jump_m})
        v->resize(n);
    for (auto* v : {&d.moving, &d.harsh_accel, &d.harsh_brake, &d.stop_end, &d.jump})
        v->resize(n);
    d.dwell_s.resize(n);
    for (std::size_t v = 0; v < nv; ++v)
        derive_vehicle(in, p, static_cast<std::size_t>(in.offsets[v]),
                       static_cast<std::size_t>(in.offsets[v + 1]), in.run_carry[v], d);
    return d;
}

HourlyColumns hourly_block(const BlockInput& in, const DerivedView& d,
                           std::span<const std::int64_t> stop_bin) {
    check(in);
    const std::size_t n = in.t.size();
    bool ok = stop_bin.size() == n && d.moving.size() == n && d.harsh_accel.size() == n &&
              d.harsh_brake.size() == n && d.stop_end.size() == n && d.dwell_s.size() == n;
    for (const auto& c : {d.speed, d.dist_m, d.moving_s, d.night_s, d.speeding_s, d.turn})
        ok = ok && c.size() == n;
    if (!ok)
        throw std::invalid_argument("stop_bin and the derived columns need one entry per sample");
    const std::size_t nv = in.offsets.size() - 1;
    HourlyColumns h;
    h.hour_offsets.reserve(nv + 1);
    h.cell_offsets.reserve(nv + 1);
    h.hour_offsets.push_back(0);
    h.cell_offsets.push_back(0);
    for (std::size_t v = 0; v < nv; ++v) {
        hourly_vehicle(in, d, stop_bin, static_cast<std::size_t>(in.offsets[v]),
                       static_cast<std::size_t>(in.offsets[v + 1]), in.h_a[v], in.h_b[v], h);
        h.hour_offsets.push_back(static_cast<std::int64_t>(h.hour.size()));
        h.cell_offsets.push_back(static_cast<std::int64_t>(h.cell_hour.size()));
    }
    return h;
}

} // namespace autolien::monitor

namespace autolien::monitor {

namespace {

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    const std::int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

} // namespace

LocationColumns location_features(std::span<const std::int64_t> hour, std::span<const std::int64_t> cell,
                                  std::span<const std::int64_t> secs, std::int64_t h_a, std::int64_t h_b,
                                  std::int64_t context_h, std::int64_t lag_h, std::int64_t baseline_h) {
    const std::size_t n = hour.size();
    if (cell.size() != n || secs.size() != n)
        throw std::invalid_argument("hour, cell and secs must have the same length");
    if (h_b < h_a || context_h < 1 || h_b - h_a > (std::int64_t{1} << 24))
        throw std::invalid_argument("need h_a <= h_b (at most 2^24 hours apart) and context_h >= 1");
    for (const auto s : secs)
        if (s < 0)
            throw std::invalid_argument("counts must be >= 0");
    const auto nh = static_cast<std::size_t>(h_b - h_a);
    LocationColumns out{std::vector<double>(nh, std::nan("")), std::vector<double>(nh, std::nan(""))};
    // rows by hour (for the windows); the monitor keeps the table in hour order
    std::vector<std::size_t> by_hour(n);
    for (std::size_t i = 0; i < n; ++i)
        by_hour[i] = i;
    if (!std::is_sorted(hour.begin(), hour.end()))
        std::stable_sort(by_hour.begin(), by_hour.end(), [&](auto a, auto b) { return hour[a] < hour[b]; });
    // the cells visited in the baseline period of the current UTC day, built
    // once a day (a sort of every row by cell per call was a third of this)
    std::int64_t familiar_day = std::numeric_limits<std::int64_t>::min();
    std::unordered_set<std::int64_t> familiar;
    const auto visited_before = [&](std::int64_t day) -> const std::unordered_set<std::int64_t>& {
        if (day != familiar_day) {
            familiar_day = day;
            familiar.clear();
            const std::int64_t lo = day - lag_h - baseline_h, last = day - lag_h - 1;
            auto it = std::lower_bound(by_hour.begin(), by_hour.end(), lo,
                                       [&](std::size_t i, std::int64_t h) { return hour[i] < h; });
            for (; it != by_hour.end() && hour[*it] <= last; ++it)
                familiar.insert(cell[*it]);
        }
        return familiar;
    };
    std::vector<std::pair<std::int64_t, std::int64_t>> win; // (cell, seconds) of one window
    std::vector<std::int64_t> counts;
    std::size_t lo_i = 0, hi_i = 0; // by_hour rows of the window [tgt - context_h + 1, tgt]
    for (std::size_t j = 0; j < nh; ++j) {
        const std::int64_t tgt = h_a + static_cast<std::int64_t>(j);
        while (hi_i < n && hour[by_hour[hi_i]] <= tgt)
            ++hi_i;
        while (lo_i < hi_i && hour[by_hour[lo_i]] <= tgt - context_h)
            ++lo_i;
        if (lo_i == hi_i)
            continue;
        win.clear();
        for (std::size_t k = lo_i; k < hi_i; ++k)
            win.emplace_back(cell[by_hour[k]], secs[by_hour[k]]);
        std::sort(win.begin(), win.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        const auto& seen = visited_before(floor_div(tgt, 24) * 24);
        counts.clear();
        std::int64_t tot = 0, fresh = 0;
        for (std::size_t k = 0; k < win.size();) {
            const std::int64_t c = win[k].first;
            std::int64_t s = 0;
            for (; k < win.size() && win[k].first == c; ++k)
                s += win[k].second;
            counts.push_back(s);
            tot += s;
            if (seen.count(c) == 0)
                fresh += s;
        }
        // the core's Shannon entropy, over the cells in ascending order as numpy grouped them
        out.entropy[j] = entropy::shannon_bits(counts);
        if (tot > 0)
            out.new_share[j] = static_cast<double>(fresh) / static_cast<double>(tot);
    }
    return out;
}

namespace {

// numpy's median of a column (engine._col_median): NaN without values. The
// two middle values by selection, not a sort: the same two values, so the
// same mean (v is reordered).
double middle(std::vector<double>& v) {
    if (v.empty())
        return std::nan("");
    const std::size_t k = v.size();
    const auto lo = v.begin() + static_cast<std::ptrdiff_t>((k - 1) / 2);
    std::nth_element(v.begin(), lo, v.end());
    const double a = *lo;
    const double b = (k % 2 == 1) ? a : *std::min_element(lo + 1, v.end());
    return (a + b) / 2;
}

} // namespace

Baseline baseline(std::span<const std::int64_t> hour, std::span<const std::int64_t> n,
                  std::span<const std::int64_t> n_odo, std::span<const double> values, std::size_t cols,
                  std::span<const std::int64_t> cell_hour, std::span<const std::int64_t> cell,
                  std::int64_t lo, std::int64_t hi, std::int64_t home_days) {
    const std::size_t rows = hour.size();
    if (n.size() != rows || n_odo.size() != rows || values.size() != rows * cols)
        throw std::invalid_argument("hour, n, n_odo and the rows of values must have the same length");
    if (cell_hour.size() != cell.size())
        throw std::invalid_argument("cell_hour and cell must have the same length");
    if (home_days < 0)
        throw std::invalid_argument("home_days must be >= 0");
    std::vector<std::size_t> sel;
    for (std::size_t i = 0; i < rows; ++i)
        if (hour[i] >= lo && hour[i] < hi && n[i] + n_odo[i] > 0)
            sel.push_back(i);
    Baseline out{std::vector<double>(cols),
                 std::vector<double>(cols),
                 std::vector<std::int64_t>(cols),
                 std::vector<std::int64_t>(cols),
                 {}};
    std::vector<double> v, dev;
    std::vector<std::int64_t> days;
    for (std::size_t c = 0; c < cols; ++c) {
        v.clear();
        days.clear();
        std::int64_t first = 0;
        for (const auto i : sel) {
            const double x = values[i * cols + c];
            if (std::isnan(x))
                continue;
            if (v.empty() || hour[i] < first)
                first = hour[i];
            v.push_back(x);
            days.push_back(floor_div(hour[i], 24));
        }
        out.count[c] = static_cast<std::int64_t>(v.size());
        dev.clear();
        const double med = middle(v); // reorders v; the deviations do not depend on the order
        for (const auto x : v)
            dev.push_back(std::abs(x - med));
        out.median[c] = med;
        out.mad[c] = middle(dev);
        if (!days.empty()) {
            // the history comes in hour order: sorted already, as a rule
            if (!std::is_sorted(days.begin(), days.end()))
                std::sort(days.begin(), days.end());
            const auto n_days = std::unique(days.begin(), days.end()) - days.begin();
            out.span_h[c] = 24 * n_days - (first - floor_div(first, 24) * 24);
        }
    }
    // the familiar area: distinct (cell, day) pairs, then days per cell
    if (std::is_sorted(cell_hour.begin(), cell_hour.end())) {
        // hour order (how the monitor keeps the table): a cell's visits come
        // day by day, so a new day for a cell is one that differs from its
        // last; no sort of the pairs (a fifth of the baseline's time)
        std::unordered_map<std::int64_t, std::pair<std::int64_t, std::int64_t>> seen; // last day, days
        for (std::size_t i = 0; i < cell.size(); ++i) {
            if (cell_hour[i] < lo || cell_hour[i] >= hi)
                continue;
            const std::int64_t day = floor_div(cell_hour[i], 24);
            auto [it, fresh] = seen.try_emplace(cell[i], day, 1);
            if (!fresh && it->second.first != day) {
                it->second.first = day;
                ++it->second.second;
            }
        }
        for (const auto& [c, dn] : seen)
            if (dn.second >= home_days)
                out.cells.push_back(c);
        std::sort(out.cells.begin(), out.cells.end());
        return out;
    }
    std::vector<std::pair<std::int64_t, std::int64_t>> visits;
    for (std::size_t i = 0; i < cell.size(); ++i)
        if (cell_hour[i] >= lo && cell_hour[i] < hi)
            visits.emplace_back(cell[i], floor_div(cell_hour[i], 24));
    std::sort(visits.begin(), visits.end());
    visits.erase(std::unique(visits.begin(), visits.end()), visits.end());
    for (std::size_t k = 0; k < visits.size();) {
        std::size_t e = k;
        while (e < visits.size() && visits[e].first == visits[k].first)
            ++e;
        if (static_cast<std::int64_t>(e - k) >= home_days)
            out.cells.push_back(visits[k].first);
        k = e;
    }
    return out;
}

} // namespace autolien::monitor
