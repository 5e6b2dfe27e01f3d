// The monitor's hourly scoring of a block of vehicles (autolien/monitor/fleet.hpp).
#include "autolien/monitor/fleet.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "autolien/gnss/geodesy.hpp"
#include "autolien/monitor/block.hpp"

namespace autolien::monitor {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void need(bool ok, const char* what) {
    if (!ok)
        throw std::invalid_argument(what);
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    const std::int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

template <typename T>
std::span<const T> rows_of(std::span<const T> a, std::size_t lo, std::size_t hi, std::size_t stride = 1) {
    return a.subspan(lo * stride, (hi - lo) * stride);
}

template <typename T> void append(std::vector<T>& to, const std::vector<T>& from) {
    to.insert(to.end(), from.begin(), from.end());
}

// A day's results into the block's columns from row `at` (`width` values a row).
template <typename T>
void put(std::vector<T>& to, const std::vector<T>& from, std::size_t at, std::size_t width = 1) {
    std::copy(from.begin(), from.end(), to.begin() + static_cast<std::ptrdiff_t>(at * width));
}

void check(const ScoreBlockInput& in) {
    need(!in.row_offsets.empty() && in.row_offsets.front() == 0, "row_offsets must start at 0");
    const std::size_t nv = in.row_offsets.size() - 1;
    const auto rows = static_cast<std::size_t>(in.row_offsets.back());
    for (std::size_t v = 0; v < nv; ++v)
        need(in.row_offsets[v] <= in.row_offsets[v + 1], "row_offsets must not decrease");
    need(in.hour.size() == rows && in.n.size() == rows && in.n_odo.size() == rows &&
             in.harsh_accel.size() == rows && in.harsh_brake.size() == rows && in.dist_km.size() == rows &&
             in.moving_s.size() == rows && in.night_s.size() == rows && in.speeding_s.size() == rows &&
             in.odo_km.size() == rows && in.last_lat.size() == rows && in.last_lon.size() == rows,
         "the history columns must have one value per row");
    need(in.speed_hist.size() == rows * in.speed_bins && in.turn_hist.size() == rows * in.turn_bins &&
             in.stop_hist.size() == rows * in.stop_bins,
         "the histograms must be rows x bins");
    need(in.scored.size() == rows * kScoredCols, "scored must be rows x 8");
    need(in.first.size() == nv && in.cusum.size() == nv && in.cusum_since.size() == nv &&
             in.mileage_flag_t.size() == nv && in.slow.size() == nv && in.slow_since.size() == nv &&
             in.last_lat0.size() == nv && in.last_lon0.size() == nv && in.away_streak.size() == nv,
         "the state columns must have one value per vehicle");
    need(in.cell_offsets.size() == nv + 1 && (nv + 1 == 0 || in.cell_offsets.front() == 0),
         "cell_offsets must have vehicles + 1 entries from 0");
    const auto cells = static_cast<std::size_t>(in.cell_offsets.back());
    need(in.cell_hour.size() == cells && in.cell.size() == cells && in.cell_secs.size() == cells,
         "the dwell table's columns must have one value per row");
    std::size_t fresh = 0;
    for (std::size_t v = 0; v < nv; ++v) {
        need(in.cell_offsets[v] <= in.cell_offsets[v + 1], "cell_offsets must not decrease");
        const auto r0 = static_cast<std::size_t>(in.row_offsets[v]);
        const auto r1 = static_cast<std::size_t>(in.row_offsets[v + 1]);
        need(in.first[v] >= 0 && static_cast<std::size_t>(in.first[v]) <= r1 - r0,
             "first must lie within the vehicle's rows");
        for (std::size_t r = r0 + 1; r < r1; ++r)
            need(in.hour[r] == in.hour[r - 1] + 1, "a vehicle's history rows must be consecutive hours");
        fresh += r1 - r0 - static_cast<std::size_t>(in.first[v]);
    }
    need(in.heading.size() == fresh, "heading must have one value per new row");
}

// One vehicle: rows [r0, r1) of the block, new from r0 + first.
void score_vehicle(const ScoreBlockInput& in, const ScoreBlockParams& p, std::size_t v, std::size_t head_at,
                   ScoreBlock& out) {
    const auto r0 = static_cast<std::size_t>(in.row_offsets[v]);
    const auto r1 = static_cast<std::size_t>(in.row_offsets[v + 1]);
    const std::size_t rows = r1 - r0;
    const auto first = static_cast<std::size_t>(in.first[v]);
    const std::size_t nh = rows - first;
    if (nh == 0)
        return;
    const std::int64_t h_a = in.hour[r0 + first];
    const std::int64_t h_b = h_a + static_cast<std::int64_t>(nh);

    // the window features of the new rows (engine._window_features): from
    // the k - 1 rows before the first new one
    const std::size_t lo = first >= static_cast<std::size_t>(p.context_h) - 1
                               ? first - (static_cast<std::size_t>(p.context_h) - 1)
                               : 0;
    WindowInput w;
    w.first = first - lo;
    w.k = p.context_h;
    const std::size_t a = r0 + lo, b = r1;
    w.n = rows_of(in.n, a, b);
    w.dist_km = rows_of(in.dist_km, a, b);
    w.moving_s = rows_of(in.moving_s, a, b);
    w.night_s = rows_of(in.night_s, a, b);
    w.speeding_s = rows_of(in.speeding_s, a, b);
    w.odo_km = rows_of(in.odo_km, a, b);
    w.harsh_accel = rows_of(in.harsh_accel, a, b);
    w.harsh_brake = rows_of(in.harsh_brake, a, b);
    w.n_odo = rows_of(in.n_odo, a, b);
    w.speed_hist = rows_of(in.speed_hist, a, b, in.speed_bins);
    w.turn_hist = rows_of(in.turn_hist, a, b, in.turn_bins);
    w.stop_hist = rows_of(in.stop_hist, a, b, in.stop_bins);
    w.speed_bins = in.speed_bins;
    w.turn_bins = in.turn_bins;
    w.stop_bins = in.stop_bins;
    const WindowFeatures wf = window_features(w);

    const auto c0 = static_cast<std::size_t>(in.cell_offsets[v]);
    const auto c1 = static_cast<std::size_t>(in.cell_offsets[v + 1]);
    const auto ch = rows_of(in.cell_hour, c0, c1), cc = rows_of(in.cell, c0, c1),
               cs = rows_of(in.cell_secs, c0, c1);
    const LocationColumns loc = location_features(ch, cc, cs, h_a, h_b, p.context_h, p.lag_h, p.baseline_h);

    // the vehicle's scored columns, old rows as handed in, new rows as
    // computed here (the baseline and the confirming window read both)
    std::vector<double> S(in.scored.begin() + static_cast<std::ptrdiff_t>(r0 * kScoredCols),
                          in.scored.begin() + static_cast<std::ptrdiff_t>(r1 * kScoredCols));
    for (std::size_t j = 0; j < nh; ++j) {
        double* s = S.data() + (first + j) * kScoredCols;
        s[0] = wf.turn_entropy[j];
        s[kHeadingCol] = in.heading[head_at + j];
        s[2] = wf.speed_entropy[j];
        s[kLocationCol] = loc.entropy[j];
        s[4] = wf.stop_entropy[j];
        s[kNewShareCol] = loc.new_share[j];
        s[kKmCol] = wf.km_24h[j];
        s[kAwayCol] = kNaN;
    }
    std::vector<double> base_vals(rows * kBaseCols);
    for (std::size_t r = 0; r < rows; ++r)
        std::copy_n(S.data() + r * kScoredCols, kBaseCols, base_vals.data() + r * kBaseCols);

    const std::size_t o = out.fixes.size();
    append(out.fixes, wf.n);
    append(out.speed_entropy, wf.speed_entropy);
    append(out.turn_entropy, wf.turn_entropy);
    append(out.stop_entropy, wf.stop_entropy);
    append(out.night_share, wf.night_share);
    append(out.km_track, wf.km_track);
    append(out.km_odo, wf.km_odo);
    append(out.km_24h, wf.km_24h);
    append(out.behaviour_arg, wf.behaviour_arg);
    append(out.moving, wf.moving);
    append(out.location_entropy, loc.entropy);
    append(out.new_place_share, loc.new_share);
    const std::size_t total = o + nh;
    out.away.resize(total, kNaN);
    out.earlier.resize(total, kNaN);
    out.t_end.resize(total, kNaN);
    out.base_median.resize(total * kBaseCols, kNaN);
    out.base_mad.resize(total * kBaseCols, kNaN);
    out.base_n.resize(total * kBaseCols, 0);
    out.excess.resize(total);
    out.mileage_z.resize(total);
    out.ratio.resize(total);
    out.jump.resize(total);
    out.more.resize(total);
    out.frozen.resize(total);
    out.mismatch.resize(total);
    out.z.resize(total * kEntropyCols);
    out.explained.resize(total * kEntropyCols);
    out.score.resize(total);
    out.cusum.resize(total);
    out.since.resize(total);
    out.slow.resize(total);
    out.slow_since.resize(total);
    out.n_away.resize(total);
    out.streak.resize(total);
    out.level.resize(total);

    EntropyState st{in.cusum[v], in.cusum_since[v], in.mileage_flag_t[v], in.slow[v], in.slow_since[v]};
    double last_lat = in.last_lat0[v], last_lon = in.last_lon0[v];
    std::int64_t away_streak = in.away_streak[v];
    EntropyParams ep = p.entropy;
    ep.min_baseline_h = p.min_baseline_h;
    ep.hour_s = p.hour_s;
    MileageParams mp = p.mileage;
    mp.confirm = p.confirm_h > 0;
    const auto hours = rows_of(in.hour, r0, r1);
    const auto n = rows_of(in.n, r0, r1), n_odo = rows_of(in.n_odo, r0, r1);
    Baseline base;
    std::array<std::int64_t, kBaseCols> bn{};
    std::int64_t day = 0;
    std::vector<double> blat, blon, lat, lon, dist;
    // one block per UTC day: the baseline is fixed within a day
    for (std::size_t j = 0; j < nh;) {
        day = floor_div(h_a + static_cast<std::int64_t>(j), 24) * 24;
        const std::size_t je = std::min(nh, static_cast<std::size_t>(day + 24 - h_a));
        const std::size_t m = je - j;
        base = baseline(hours, n, n_odo, base_vals, kBaseCols, ch, cc, day - p.lag_h - p.baseline_h,
                        day - p.lag_h, p.home_days);
        for (std::size_t f = 0; f < kBaseCols; ++f)
            bn[f] = base.count[f] >= p.min_baseline_samples ? base.span_h[f] : 0;
        for (std::size_t i = j; i < je; ++i)
            for (std::size_t f = 0; f < kBaseCols; ++f) {
                out.base_median[(o + i) * kBaseCols + f] = base.median[f];
                out.base_mad[(o + i) * kBaseCols + f] = base.mad[f];
                out.base_n[(o + i) * kBaseCols + f] = bn[f];
            }
        // the familiar cells' centres
        blat.resize(base.cells.size());
        blon.resize(base.cells.size());
        for (std::size_t k = 0; k < base.cells.size(); ++k)
            std::tie(blat[k], blon[k]) = cell_center(base.cells[k], p.cell_m, p.earth_m);
        // An hour without fixes is spent where the vehicle was last seen
        // (engine._carry_position): forward-filled, and carried across calls.
        lat.resize(m);
        lon.resize(m);
        double fill_lat = last_lat, fill_lon = last_lon;
        bool seen = false;
        for (std::size_t i = 0; i < m; ++i) {
            const std::size_t r = r0 + first + j + i;
            if (!std::isnan(in.last_lat[r])) {
                fill_lat = in.last_lat[r];
                fill_lon = in.last_lon[r];
                seen = true;
            }
            lat[i] = fill_lat;
            lon[i] = fill_lon;
        }
        if (seen) {
            last_lat = fill_lat;
            last_lon = fill_lon;
        }
        if (!blat.empty()) {
            dist = gnss::nearest_m(lat, lon, blat, blon, p.earth_m);
            for (std::size_t i = 0; i < m; ++i)
                out.away[o + j + i] = std::isnan(lat[i]) ? kNaN : dist[i] / 1e3;
        }
        for (std::size_t i = 0; i < m; ++i)
            S[(first + j + i) * kScoredCols + kAwayCol] = out.away[o + j + i];
        // the most km_24h of the windows that ended confirm_h to 2 confirm_h
        // earlier (numpy's fmax.reduce from NaN: NaNs skipped)
        for (std::size_t i = j; i < je; ++i) {
            const std::int64_t pos = static_cast<std::int64_t>(first + i);
            double acc = kNaN;
            for (std::int64_t lag = p.confirm_h; lag < 2 * p.confirm_h; ++lag) {
                const double x =
                    pos - lag >= 0 ? S[static_cast<std::size_t>(pos - lag) * kScoredCols + kKmCol] : kNaN;
                if (std::isnan(acc) || x > acc)
                    acc = std::isnan(x) ? acc : x;
            }
            out.earlier[o + i] = acc;
            out.t_end[o + i] = static_cast<double>(h_a + static_cast<std::int64_t>(i) + 1) * p.hour_s;
        }
        const auto sub = [&](const std::vector<double>& x) {
            return std::span<const double>(x).subspan(o + j, m);
        };
        // mileage first: it sets driving_more, which the entropy score reads
        std::vector<double> fixes_d(m);
        for (std::size_t i = 0; i < m; ++i)
            fixes_d[i] = static_cast<double>(wf.n[j + i]);
        const MileageInput mi{sub(out.km_24h),  sub(out.km_track),   sub(out.km_odo),  fixes_d,
                              sub(out.earlier), base.median[kKmCol], base.mad[kKmCol], bn[kKmCol]};
        const MileageFlags mf = mileage_flags(mi, mp);
        put(out.excess, mf.excess, o + j);
        put(out.mileage_z, mf.z, o + j);
        put(out.ratio, mf.ratio, o + j);
        put(out.jump, mf.jump, o + j);
        put(out.more, mf.more, o + j);
        put(out.frozen, mf.frozen, o + j);
        put(out.mismatch, mf.mismatch, o + j);

        std::vector<double> vals(m * kEntropyCols);
        for (std::size_t i = 0; i < m; ++i)
            std::copy_n(S.data() + (first + j + i) * kScoredCols, kEntropyCols,
                        vals.data() + i * kEntropyCols);
        const std::vector<double> med(base.median.begin(), base.median.begin() + kEntropyCols),
            mad(base.mad.begin(), base.mad.begin() + kEntropyCols);
        const std::vector<std::int64_t> cnt(bn.begin(), bn.begin() + kEntropyCols);
        EntropyInput ei;
        ei.values = vals;
        ei.cols = kEntropyCols;
        ei.median = med;
        ei.mad = mad;
        ei.z_floor = p.z_floor;
        ei.count = cnt;
        ei.place = p.place;
        ei.t_end = sub(out.t_end);
        ei.away = sub(out.away);
        ei.driving_more = mf.more;
        const EntropyScores es = entropy_scores(ei, ep, st);
        st = es.end;
        put(out.z, es.z, o + j, kEntropyCols);
        put(out.explained, es.explained, o + j, kEntropyCols);
        put(out.score, es.score, o + j);
        put(out.cusum, es.cusum, o + j);
        put(out.since, es.since, o + j);
        put(out.slow, es.slow, o + j);
        put(out.slow_since, es.slow_since, o + j);

        // relocation: the away hours of each window, from the rows the
        // day's first window reaches back to
        const std::size_t p0 = first + j;
        const std::size_t alo = p0 + 1 >= static_cast<std::size_t>(p.relocation.context_h)
                                    ? p0 + 1 - static_cast<std::size_t>(p.relocation.context_h)
                                    : 0;
        std::vector<double> aw(first + je - alo);
        for (std::size_t r = alo; r < first + je; ++r)
            aw[r - alo] = S[r * kScoredCols + kAwayCol];
        const RelocationFlags rf = relocation_flags(aw, m, p.relocation, away_streak);
        away_streak = rf.end_streak;
        put(out.n_away, rf.n_away, o + j);
        put(out.streak, rf.streak, o + j);
        put(out.level, rf.level, o + j);
        j = je;
    }
    out.end_cusum[v] = st.cusum;
    out.end_cusum_since[v] = st.cusum_since;
    out.end_mileage_flag_t[v] = st.mileage_flag_t;
    out.end_slow[v] = st.slow;
    out.end_slow_since[v] = st.slow_since;
    out.end_lat[v] = last_lat;
    out.end_lon[v] = last_lon;
    out.end_away_streak[v] = away_streak;
    out.base_day[v] = day;
    for (std::size_t f = 0; f < kBaseCols; ++f) {
        out.day_median[v * kBaseCols + f] = base.median[f];
        out.day_mad[v * kBaseCols + f] = base.mad[f];
        out.day_n[v * kBaseCols + f] = bn[f];
    }
    out.day_cells.insert(out.day_cells.end(), base.cells.begin(), base.cells.end());
}

} // namespace

std::pair<double, double> cell_center(std::int64_t cell, double cell_m, double earth_m) {
    const auto row = static_cast<double>(cell >> 32);
    const auto col = static_cast<double>((cell & 0xFFFFFFFFLL) - (std::int64_t{1} << 31));
    const double lat = (row + 0.5) * cell_m / earth_m * (180.0 / std::numbers::pi);
    const double lon = (col + 0.5) * cell_m / (earth_m * std::cos(lat * (std::numbers::pi / 180.0))) *
                       (180.0 / std::numbers::pi);
    return {lat, lon};
}

ScoreBlock score_block(const ScoreBlockInput& in, const ScoreBlockParams& p) {
    need(p.context_h >= 1 && p.relocation.context_h >= 1 && p.confirm_h >= 0,
         "need context_h >= 1 and confirm_h >= 0");
    check(in);
    const std::size_t nv = in.row_offsets.size() - 1;
    ScoreBlock out;
    out.hour_offsets.assign(nv + 1, 0);
    // the state passes through a vehicle with nothing to score
    out.end_cusum.assign(in.cusum.begin(), in.cusum.end());
    out.end_cusum_since.assign(in.cusum_since.begin(), in.cusum_since.end());
    out.end_mileage_flag_t.assign(in.mileage_flag_t.begin(), in.mileage_flag_t.end());
    out.end_slow.assign(in.slow.begin(), in.slow.end());
    out.end_slow_since.assign(in.slow_since.begin(), in.slow_since.end());
    out.end_lat.assign(in.last_lat0.begin(), in.last_lat0.end());
    out.end_lon.assign(in.last_lon0.begin(), in.last_lon0.end());
    out.end_away_streak.assign(in.away_streak.begin(), in.away_streak.end());
    out.base_day.assign(nv, std::numeric_limits<std::int64_t>::min());
    out.day_median.assign(nv * kBaseCols, kNaN);
    out.day_mad.assign(nv * kBaseCols, kNaN);
    out.day_n.assign(nv * kBaseCols, 0);
    out.day_cell_offsets.assign(nv + 1, 0);
    std::size_t head_at = 0;
    for (std::size_t v = 0; v < nv; ++v) {
        const std::size_t nh = static_cast<std::size_t>(in.row_offsets[v + 1] - in.row_offsets[v]) -
                               static_cast<std::size_t>(in.first[v]);
        score_vehicle(in, p, v, head_at, out);
        head_at += nh;
        out.hour_offsets[v + 1] = static_cast<std::int64_t>(out.fixes.size());
        out.day_cell_offsets[v + 1] = static_cast<std::int64_t>(out.day_cells.size());
    }
    return out;
}

} // namespace autolien::monitor
