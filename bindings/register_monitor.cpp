// Monitor bindings: the block derivation and hourly aggregation over many
// vehicles in one call. Arrays in are noconvert (the Python layer casts),
// columns out are moved into numpy; the GIL is released around the kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "autolien/monitor/block.hpp"
#include "autolien/monitor/fleet.hpp"
#include "autolien/monitor/score.hpp"
#include "columns.hpp"

namespace py = pybind11;
namespace am = autolien::monitor;
using autolien::bindings::to_numpy;

namespace {

template <typename T> using carray = py::array_t<T, py::array::c_style>;

template <typename T> std::span<const T> view(const carray<T>& a, const char* name) {
    if (a.ndim() != 1)
        throw std::invalid_argument(std::string(name) + " must be a 1-D array");
    return {a.data(), static_cast<std::size_t>(a.shape(0))};
}

std::span<const std::uint8_t> flags(const carray<bool>& a, const char* name) {
    const auto s = view(a, name);
    // numpy bools are one byte, 0 or 1
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Keeps the argument arrays referenced while the GIL is released.
struct Args {
    carray<std::int64_t> offsets;
    carray<double> t, lat, lon, speed, local_hour;
    carray<std::int64_t> cells;
    carray<double> run_carry;
    carray<std::int64_t> h_a, h_b;

    [[nodiscard]] am::BlockInput input() const {
        return {view(offsets, "offsets"), view(t, "t"),
                view(lat, "lat"),         view(lon, "lon"),
                view(speed, "speed"),     view(local_hour, "local_hour"),
                view(cells, "cells"),     view(run_carry, "run_carry"),
                view(h_a, "h_a"),         view(h_b, "h_b")};
    }
};

am::DeriveParams params_of(const py::dict& p) {
    am::DeriveParams q;
    const auto get = [&](const char* k) {
        if (!p.contains(k))
            throw std::invalid_argument(std::string("params lacks '") + k + "'");
        return p[k].cast<double>();
    };
    q.moving_kmh = get("moving_kmh");
    q.jump_min_m = get("jump_min_m");
    q.jump_kmh = get("jump_kmh");
    q.jump_still_gap_s = get("jump_still_gap_s");
    q.silence_gap_s = get("silence_gap_s");
    q.step_cap_s = get("step_cap_s");
    q.dwell_cap_s = get("dwell_cap_s");
    q.speeding_kmh = get("speeding_kmh");
    q.harsh_max_dt_s = get("harsh_max_dt_s");
    q.harsh_accel_mps2 = get("harsh_accel_mps2");
    q.harsh_brake_mps2 = get("harsh_brake_mps2");
    q.stop_min_s = get("stop_min_s");
    q.earth_m = get("earth_m");
    q.night_start_h = static_cast<int>(get("night_start_h"));
    q.night_end_h = static_cast<int>(get("night_end_h"));
    q.tz_offset_s = get("tz_offset_s");
    return q;
}

template <typename T> py::array_t<T> col(std::vector<T>& v) {
    return to_numpy(std::move(v));
}

// A rows x cols array as its row-major values and its column count.
template <typename T>
std::pair<std::span<const T>, std::size_t> matrix(const carray<T>& a, std::size_t rows, const char* name) {
    if (a.ndim() != 2 || static_cast<std::size_t>(a.shape(0)) != rows)
        throw std::invalid_argument(std::string(name) + " must be a 2-D array of one row per hour");
    return {{a.data(), static_cast<std::size_t>(a.size())}, static_cast<std::size_t>(a.shape(1))};
}

// A column of a dict argument, as the exact dtype and C order (noconvert
// for a dict: the Python layer casts).
template <typename T>
std::span<const T> entry(const py::dict& d, const char* name, std::size_t* cols = nullptr) {
    if (!d.contains(name))
        throw std::invalid_argument(std::string("columns lack '") + name + "'");
    const py::object o = d[name];
    if (!py::isinstance<carray<T>>(o))
        throw py::type_error(std::string("column '") + name + "' must be a C-contiguous array of " +
                             py::str(py::dtype::of<T>()).cast<std::string>());
    const auto a = py::reinterpret_borrow<carray<T>>(o);
    if (cols != nullptr) {
        if (a.ndim() != 2)
            throw std::invalid_argument(std::string(name) + " must be a 2-D array");
        *cols = static_cast<std::size_t>(a.shape(1));
    } else if (a.ndim() != 1) {
        throw std::invalid_argument(std::string(name) + " must be a 1-D array");
    }
    return {a.data(), static_cast<std::size_t>(a.size())};
}

double number(const py::dict& p, const char* k) {
    if (!p.contains(k))
        throw std::invalid_argument(std::string("params lacks '") + k + "'");
    return p[k].cast<double>();
}

std::int64_t whole(const py::dict& p, const char* k) {
    if (!p.contains(k))
        throw std::invalid_argument(std::string("params lacks '") + k + "'");
    return p[k].cast<std::int64_t>();
}

} // namespace

void register_monitor(py::module_& m) {
    py::class_<Args>(m, "MonitorBlockArgs",
                     "The input columns of one block (kept referenced across both kernels).")
        .def(py::init([](carray<std::int64_t> offsets, carray<double> t, carray<double> lat,
                         carray<double> lon, carray<double> speed, carray<double> local_hour,
                         carray<std::int64_t> cells, carray<double> run_carry, carray<std::int64_t> h_a,
                         carray<std::int64_t> h_b) {
                 return Args{std::move(offsets), std::move(t),         std::move(lat),
                             std::move(lon),     std::move(speed),     std::move(local_hour),
                             std::move(cells),   std::move(run_carry), std::move(h_a),
                             std::move(h_b)};
             }),
             py::arg("offsets").noconvert(), py::arg("t").noconvert(), py::arg("lat").noconvert(),
             py::arg("lon").noconvert(), py::arg("speed").noconvert(), py::arg("local_hour").noconvert(),
             py::arg("cells").noconvert(), py::arg("run_carry").noconvert(), py::arg("h_a").noconvert(),
             py::arg("h_b").noconvert());
    m.def(
        "monitor_derive_block",
        [](const Args& a, const py::dict& params) {
            const auto p = params_of(params);
            const auto in = a.input();
            am::DerivedColumns d;
            {
                const py::gil_scoped_release nogil;
                d = am::derive_block(in, p);
            }
            py::dict out;
            out["speed"] = col(d.speed);
            out["moving"] = col(d.moving);
            out["dist_m"] = col(d.dist_m);
            out["moving_s"] = col(d.moving_s);
            out["night_s"] = col(d.night_s);
            out["speeding_s"] = col(d.speeding_s);
            out["harsh_accel"] = col(d.harsh_accel);
            out["harsh_brake"] = col(d.harsh_brake);
            out["dwell_s"] = col(d.dwell_s);
            out["run_start"] = col(d.run_start);
            out["stop_end"] = col(d.stop_end);
            out["stop_s"] = col(d.stop_s);
            out["jump"] = col(d.jump);
            out["jump_m"] = col(d.jump_m);
            return out;
        },
        py::arg("args"), py::arg("params"),
        "Per-sample derived quantities of a CSR block of vehicles (autolien.monitor.features).");
    m.def(
        "monitor_hourly_block",
        [](const Args& a, const carray<double>& speed, const carray<double>& dist_m,
           const carray<double>& moving_s, const carray<double>& night_s, const carray<double>& speeding_s,
           const carray<double>& turn, const carray<bool>& moving, const carray<bool>& harsh_accel,
           const carray<bool>& harsh_brake, const carray<bool>& stop_end, const carray<std::int64_t>& dwell_s,
           const carray<std::int64_t>& stop_bin) {
            const auto in = a.input();
            const am::DerivedView d{view(speed, "speed"),
                                    view(dist_m, "dist_m"),
                                    view(moving_s, "moving_s"),
                                    view(night_s, "night_s"),
                                    view(speeding_s, "speeding_s"),
                                    view(turn, "turn"),
                                    flags(moving, "moving"),
                                    flags(harsh_accel, "harsh_accel"),
                                    flags(harsh_brake, "harsh_brake"),
                                    flags(stop_end, "stop_end"),
                                    view(dwell_s, "dwell_s")};
            const auto sb = view(stop_bin, "stop_bin");
            am::HourlyColumns h;
            {
                const py::gil_scoped_release nogil;
                h = am::hourly_block(in, d, sb);
            }
            py::dict out;
            const auto rows = static_cast<py::ssize_t>(h.hour.size());
            out["hour_offsets"] = col(h.hour_offsets);
            out["hour"] = col(h.hour);
            out["n"] = col(h.n);
            out["dist_km"] = col(h.dist_km);
            out["moving_s"] = col(h.moving_s);
            out["night_s"] = col(h.night_s);
            out["speeding_s"] = col(h.speeding_s);
            out["harsh_accel"] = col(h.harsh_accel);
            out["harsh_brake"] = col(h.harsh_brake);
            out["speed_hist"] = col(h.speed_hist).reshape({rows, py::ssize_t{am::kSpeedBins}});
            out["turn_hist"] = col(h.turn_hist).reshape({rows, py::ssize_t{am::kTurnBins}});
            out["stop_hist"] = col(h.stop_hist).reshape({rows, py::ssize_t{am::kStopBins}});
            out["last_lat"] = col(h.last_lat);
            out["last_lon"] = col(h.last_lon);
            out["cell_offsets"] = col(h.cell_offsets);
            out["cell_hour"] = col(h.cell_hour);
            out["cell"] = col(h.cell_id);
            out["cell_secs"] = col(h.cell_secs);
            return out;
        },
        py::arg("args"), py::arg("speed").noconvert(), py::arg("dist_m").noconvert(),
        py::arg("moving_s").noconvert(), py::arg("night_s").noconvert(), py::arg("speeding_s").noconvert(),
        py::arg("turn").noconvert(), py::arg("moving").noconvert(), py::arg("harsh_accel").noconvert(),
        py::arg("harsh_brake").noconvert(), py::arg("stop_end").noconvert(), py::arg("dwell_s").noconvert(),
        py::arg("stop_bin").noconvert(),
        "Per vehicle-hour sums, histograms, last positions and (hour, cell) dwell of a block.");
    m.def(
        "monitor_location",
        [](const carray<std::int64_t>& hour, const carray<std::int64_t>& cell,
           const carray<std::int64_t>& secs, std::int64_t h_a, std::int64_t h_b, std::int64_t context_h,
           std::int64_t lag_h, std::int64_t baseline_h) {
            const auto hs = view(hour, "hour"), cs = view(cell, "cell"), ss = view(secs, "secs");
            am::LocationColumns r;
            {
                const py::gil_scoped_release nogil;
                r = am::location_features(hs, cs, ss, h_a, h_b, context_h, lag_h, baseline_h);
            }
            return py::make_tuple(col(r.entropy), col(r.new_share));
        },
        py::arg("hour").noconvert(), py::arg("cell").noconvert(), py::arg("secs").noconvert(), py::arg("h_a"),
        py::arg("h_b"), py::arg("context_h"), py::arg("lag_h"), py::arg("baseline_h"),
        "One vehicle's location entropy and new-place share per hour from its (hour, cell, seconds) table.");
    m.def(
        "monitor_baseline",
        [](const carray<std::int64_t>& hour, const carray<std::int64_t>& n, const carray<std::int64_t>& n_odo,
           const carray<double>& values, const carray<std::int64_t>& cell_hour,
           const carray<std::int64_t>& cell, std::int64_t lo, std::int64_t hi, std::int64_t home_days) {
            if (values.ndim() != 2)
                throw std::invalid_argument("values must be a 2-D array (rows x columns)");
            const auto cols = static_cast<std::size_t>(values.shape(1));
            const std::span<const double> vs{values.data(), static_cast<std::size_t>(values.size())};
            const auto hs = view(hour, "hour"), ns = view(n, "n"), os = view(n_odo, "n_odo");
            const auto ch = view(cell_hour, "cell_hour"), cs = view(cell, "cell");
            am::Baseline r;
            {
                const py::gil_scoped_release nogil;
                r = am::baseline(hs, ns, os, vs, cols, ch, cs, lo, hi, home_days);
            }
            return py::make_tuple(col(r.median), col(r.mad), col(r.count), col(r.span_h), col(r.cells));
        },
        py::arg("hour").noconvert(), py::arg("n").noconvert(), py::arg("n_odo").noconvert(),
        py::arg("values").noconvert(), py::arg("cell_hour").noconvert(), py::arg("cell").noconvert(),
        py::arg("lo"), py::arg("hi"), py::arg("home_days"),
        "One vehicle's baseline for a day: median, MAD, count and history span per column, and the familiar "
        "cells.");

    m.def(
        "monitor_window_features",
        [](const carray<std::int64_t>& n, const carray<double>& dist_km, const carray<double>& moving_s,
           const carray<double>& night_s, const carray<double>& speeding_s, const carray<double>& odo_km,
           const carray<std::int64_t>& harsh_accel, const carray<std::int64_t>& harsh_brake,
           const carray<std::int64_t>& n_odo, const carray<std::int64_t>& speed_hist,
           const carray<std::int64_t>& turn_hist, const carray<std::int64_t>& stop_hist, std::size_t first,
           std::int64_t k) {
            am::WindowInput in;
            in.n = view(n, "n");
            const std::size_t rows = in.n.size();
            in.dist_km = view(dist_km, "dist_km");
            in.moving_s = view(moving_s, "moving_s");
            in.night_s = view(night_s, "night_s");
            in.speeding_s = view(speeding_s, "speeding_s");
            in.odo_km = view(odo_km, "odo_km");
            in.harsh_accel = view(harsh_accel, "harsh_accel");
            in.harsh_brake = view(harsh_brake, "harsh_brake");
            in.n_odo = view(n_odo, "n_odo");
            std::tie(in.speed_hist, in.speed_bins) = matrix(speed_hist, rows, "speed_hist");
            std::tie(in.turn_hist, in.turn_bins) = matrix(turn_hist, rows, "turn_hist");
            std::tie(in.stop_hist, in.stop_bins) = matrix(stop_hist, rows, "stop_hist");
            in.first = first;
            in.k = k;
            am::WindowFeatures f;
            {
                const py::gil_scoped_release nogil;
                f = am::window_features(in);
            }
            py::dict out;
            out["n"] = col(f.n);
            out["speed_entropy"] = col(f.speed_entropy);
            out["turn_entropy"] = col(f.turn_entropy);
            out["stop_entropy"] = col(f.stop_entropy);
            out["night_share"] = col(f.night_share);
            out["km_track_24h"] = col(f.km_track);
            out["km_odo_24h"] = col(f.km_odo);
            out["km_24h"] = col(f.km_24h);
            out["behaviour_arg"] = col(f.behaviour_arg);
            out["moving"] = col(f.moving);
            return out;
        },
        py::arg("n").noconvert(), py::arg("dist_km").noconvert(), py::arg("moving_s").noconvert(),
        py::arg("night_s").noconvert(), py::arg("speeding_s").noconvert(), py::arg("odo_km").noconvert(),
        py::arg("harsh_accel").noconvert(), py::arg("harsh_brake").noconvert(), py::arg("n_odo").noconvert(),
        py::arg("speed_hist").noconvert(), py::arg("turn_hist").noconvert(), py::arg("stop_hist").noconvert(),
        py::arg("first"), py::arg("k"),
        "One vehicle's trailing-window features of its history rows [first, rows).");
    m.def(
        "monitor_mileage",
        [](const carray<double>& km, const carray<double>& track, const carray<double>& odo,
           const carray<double>& fixes, const carray<double>& earlier, double median, double mad,
           std::int64_t count, std::int64_t min_baseline_h, double mad_floor_km, double warn_km_month,
           double z, double freeze_track_km, double rollback_km, double mismatch_low, double mismatch_high,
           bool confirm) {
            const am::MileageInput in{view(km, "km"),
                                      view(track, "track"),
                                      view(odo, "odo"),
                                      view(fixes, "fixes"),
                                      view(earlier, "earlier"),
                                      median,
                                      mad,
                                      count};
            const am::MileageParams p{min_baseline_h, mad_floor_km, warn_km_month, z,      freeze_track_km,
                                      rollback_km,    mismatch_low, mismatch_high, confirm};
            am::MileageFlags f;
            {
                const py::gil_scoped_release nogil;
                f = am::mileage_flags(in, p);
            }
            py::dict out;
            out["excess"] = col(f.excess);
            out["z"] = col(f.z);
            out["ratio"] = col(f.ratio);
            out["jump"] = col(f.jump);
            out["more"] = col(f.more);
            out["frozen"] = col(f.frozen);
            out["mismatch"] = col(f.mismatch);
            return out;
        },
        py::arg("km").noconvert(), py::arg("track").noconvert(), py::arg("odo").noconvert(),
        py::arg("fixes").noconvert(), py::arg("earlier").noconvert(), py::arg("median"), py::arg("mad"),
        py::arg("count"), py::arg("min_baseline_h"), py::arg("mad_floor_km"), py::arg("warn_km_month"),
        py::arg("z"), py::arg("freeze_track_km"), py::arg("rollback_km"), py::arg("mismatch_low"),
        py::arg("mismatch_high"), py::arg("confirm"),
        "The mileage detector's tests over one day's hours of one vehicle.");
    m.def(
        "monitor_entropy",
        [](const carray<double>& values, const carray<double>& median, const carray<double>& mad,
           const carray<double>& z_floor, const carray<std::int64_t>& count, const carray<bool>& place,
           const carray<double>& t_end, const carray<double>& away, const carray<bool>& driving_more,
           std::int64_t min_baseline_h, double hold_s, double away_km, double cusum_k, double cusum_h,
           double hour_s, double cusum, double cusum_since, double mileage_flag_t, double slow_k,
           double slow_h, double slow, double slow_since) {
            am::EntropyInput in;
            in.t_end = view(t_end, "t_end");
            std::tie(in.values, in.cols) = matrix(values, in.t_end.size(), "values");
            in.median = view(median, "median");
            in.mad = view(mad, "mad");
            in.z_floor = view(z_floor, "z_floor");
            in.count = view(count, "count");
            in.place = flags(place, "place");
            in.away = view(away, "away");
            in.driving_more = flags(driving_more, "driving_more");
            const am::EntropyParams p{min_baseline_h, hold_s, away_km, cusum_k,
                                      cusum_h,        hour_s, slow_k,  slow_h};
            const am::EntropyState s{cusum, cusum_since, mileage_flag_t, slow, slow_since};
            am::EntropyScores r;
            {
                const py::gil_scoped_release nogil;
                r = am::entropy_scores(in, p, s);
            }
            const auto hours = static_cast<py::ssize_t>(in.t_end.size());
            const auto cols = static_cast<py::ssize_t>(in.cols);
            py::dict out;
            out["z"] = col(r.z).reshape({hours, cols});
            out["explained"] = col(r.explained).reshape({hours, cols});
            out["score"] = col(r.score);
            out["cusum"] = col(r.cusum);
            out["since"] = col(r.since);
            out["slow"] = col(r.slow);
            out["slow_since"] = col(r.slow_since);
            out["end"] = py::make_tuple(r.end.cusum, r.end.cusum_since, r.end.mileage_flag_t, r.end.slow,
                                        r.end.slow_since);
            return out;
        },
        py::arg("values").noconvert(), py::arg("median").noconvert(), py::arg("mad").noconvert(),
        py::arg("z_floor").noconvert(), py::arg("count").noconvert(), py::arg("place").noconvert(),
        py::arg("t_end").noconvert(), py::arg("away").noconvert(), py::arg("driving_more").noconvert(),
        py::arg("min_baseline_h"), py::arg("hold_s"), py::arg("away_km"), py::arg("cusum_k"),
        py::arg("cusum_h"), py::arg("hour_s"), py::arg("cusum"), py::arg("cusum_since"),
        py::arg("mileage_flag_t"), py::arg("slow_k") = 0.0, py::arg("slow_h") = 0.0, py::arg("slow") = 0.0,
        py::arg("slow_since") = std::numeric_limits<double>::quiet_NaN(),
        "The entropy detector's z-scores, score and two CUSUM charts over one day's hours of one vehicle.");
    m.def(
        "monitor_relocation",
        [](const carray<double>& away, std::size_t hours, double away_km, std::int64_t context_h,
           std::int64_t away_hours, std::int64_t emergency_h, std::int64_t streak) {
            const auto a = view(away, "away");
            const am::RelocationParams p{away_km, context_h, away_hours, emergency_h};
            am::RelocationFlags r;
            {
                const py::gil_scoped_release nogil;
                r = am::relocation_flags(a, hours, p, streak);
            }
            return py::make_tuple(col(r.n_away), col(r.streak), col(r.level), r.end_streak);
        },
        py::arg("away").noconvert(), py::arg("hours"), py::arg("away_km"), py::arg("context_h"),
        py::arg("away_hours"), py::arg("emergency_h"), py::arg("streak"),
        "The relocation detector's away counts, streaks and levels over one day's hours of one vehicle.");
    m.def(
        "monitor_score_block",
        [](const py::dict& c, const py::dict& prm) {
            am::ScoreBlockInput in;
            in.row_offsets = entry<std::int64_t>(c, "row_offsets");
            in.first = entry<std::int64_t>(c, "first");
            in.hour = entry<std::int64_t>(c, "hour");
            in.n = entry<std::int64_t>(c, "n");
            in.n_odo = entry<std::int64_t>(c, "n_odo");
            in.harsh_accel = entry<std::int64_t>(c, "harsh_accel");
            in.harsh_brake = entry<std::int64_t>(c, "harsh_brake");
            in.dist_km = entry<double>(c, "dist_km");
            in.moving_s = entry<double>(c, "moving_s");
            in.night_s = entry<double>(c, "night_s");
            in.speeding_s = entry<double>(c, "speeding_s");
            in.odo_km = entry<double>(c, "odo_km");
            in.last_lat = entry<double>(c, "last_lat");
            in.last_lon = entry<double>(c, "last_lon");
            in.speed_hist = entry<std::int64_t>(c, "speed_hist", &in.speed_bins);
            in.turn_hist = entry<std::int64_t>(c, "turn_hist", &in.turn_bins);
            in.stop_hist = entry<std::int64_t>(c, "stop_hist", &in.stop_bins);
            std::size_t scored_cols = 0;
            in.scored = entry<double>(c, "scored", &scored_cols);
            if (scored_cols != am::kScoredCols)
                throw std::invalid_argument("scored must be rows x 8");
            in.heading = entry<double>(c, "heading");
            in.cell_offsets = entry<std::int64_t>(c, "cell_offsets");
            in.cell_hour = entry<std::int64_t>(c, "cell_hour");
            in.cell = entry<std::int64_t>(c, "cell");
            in.cell_secs = entry<std::int64_t>(c, "cell_secs");
            in.cusum = entry<double>(c, "cusum");
            in.cusum_since = entry<double>(c, "cusum_since");
            in.mileage_flag_t = entry<double>(c, "mileage_flag_t");
            in.slow = entry<double>(c, "cusum_slow");
            in.slow_since = entry<double>(c, "cusum_slow_since");
            in.last_lat0 = entry<double>(c, "last_lat0");
            in.last_lon0 = entry<double>(c, "last_lon0");
            in.away_streak = entry<std::int64_t>(c, "away_streak");
            const auto z_floor = entry<double>(c, "z_floor");
            const auto place = entry<bool>(c, "place");
            if (z_floor.size() != am::kEntropyCols || place.size() != am::kEntropyCols)
                throw std::invalid_argument("z_floor and place need one value per entropy feature (6)");

            am::ScoreBlockParams p;
            p.context_h = whole(prm, "context_h");
            p.lag_h = whole(prm, "lag_h");
            p.baseline_h = whole(prm, "baseline_h");
            p.home_days = whole(prm, "home_days");
            p.min_baseline_samples = whole(prm, "min_baseline_samples");
            p.min_baseline_h = whole(prm, "min_baseline_h");
            p.confirm_h = whole(prm, "mileage_confirm_h");
            p.cell_m = number(prm, "cell_m");
            p.earth_m = number(prm, "earth_m");
            p.hour_s = number(prm, "hour_s");
            p.mileage = {p.min_baseline_h,
                         number(prm, "mileage_mad_floor_km"),
                         number(prm, "mileage_warn_km_month"),
                         number(prm, "mileage_z"),
                         number(prm, "freeze_track_km"),
                         number(prm, "rollback_km"),
                         number(prm, "mismatch_low"),
                         number(prm, "mismatch_high"),
                         p.confirm_h > 0};
            p.entropy = {p.min_baseline_h,
                         number(prm, "hold_s"),
                         number(prm, "away_km"),
                         number(prm, "cusum_k"),
                         number(prm, "cusum_h"),
                         p.hour_s,
                         number(prm, "cusum_slow_k"),
                         number(prm, "cusum_slow_h")};
            p.relocation = {number(prm, "away_km"), p.context_h, whole(prm, "away_hours"),
                            whole(prm, "away_emergency_h")};
            for (std::size_t k = 0; k < am::kEntropyCols; ++k) {
                p.z_floor[k] = z_floor[k];
                p.place[k] = place[k] ? 1 : 0;
            }
            am::ScoreBlock r;
            {
                const py::gil_scoped_release nogil;
                r = am::score_block(in, p);
            }
            const auto hours = static_cast<py::ssize_t>(r.fixes.size());
            const auto nv = static_cast<py::ssize_t>(r.end_cusum.size());
            const auto ecols = static_cast<py::ssize_t>(am::kEntropyCols);
            const auto bcols = static_cast<py::ssize_t>(am::kBaseCols);
            py::dict out;
            out["hour_offsets"] = col(r.hour_offsets);
            out["fixes"] = col(r.fixes);
            out["speed_entropy"] = col(r.speed_entropy);
            out["turn_entropy"] = col(r.turn_entropy);
            out["stop_entropy"] = col(r.stop_entropy);
            out["night_share"] = col(r.night_share);
            out["km_track_24h"] = col(r.km_track);
            out["km_odo_24h"] = col(r.km_odo);
            out["km_24h"] = col(r.km_24h);
            out["behaviour_arg"] = col(r.behaviour_arg);
            out["moving"] = col(r.moving);
            out["location_entropy"] = col(r.location_entropy);
            out["new_place_share"] = col(r.new_place_share);
            out["away_km"] = col(r.away);
            out["earlier"] = col(r.earlier);
            out["t_end"] = col(r.t_end);
            out["base_median"] = col(r.base_median).reshape({hours, bcols});
            out["base_mad"] = col(r.base_mad).reshape({hours, bcols});
            out["base_n"] = col(r.base_n).reshape({hours, bcols});
            out["excess"] = col(r.excess);
            out["mileage_z"] = col(r.mileage_z);
            out["ratio"] = col(r.ratio);
            out["jump"] = col(r.jump);
            out["more"] = col(r.more);
            out["frozen"] = col(r.frozen);
            out["mismatch"] = col(r.mismatch);
            out["z"] = col(r.z).reshape({hours, ecols});
            out["explained"] = col(r.explained).reshape({hours, ecols});
            out["score"] = col(r.score);
            out["cusum"] = col(r.cusum);
            out["since"] = col(r.since);
            out["slow"] = col(r.slow);
            out["slow_since"] = col(r.slow_since);
            out["n_away"] = col(r.n_away);
            out["streak"] = col(r.streak);
            out["level"] = col(r.level);
            out["end_cusum"] = col(r.end_cusum);
            out["end_cusum_since"] = col(r.end_cusum_since);
            out["end_mileage_flag_t"] = col(r.end_mileage_flag_t);
            out["end_cusum_slow"] = col(r.end_slow);
            out["end_cusum_slow_since"] = col(r.end_slow_since);
            out["end_lat"] = col(r.end_lat);
            out["end_lon"] = col(r.end_lon);
            out["end_away_streak"] = col(r.end_away_streak);
            out["base_day"] = col(r.base_day);
            out["day_median"] = col(r.day_median).reshape({nv, bcols});
            out["day_mad"] = col(r.day_mad).reshape({nv, bcols});
            out["day_n"] = col(r.day_n).reshape({nv, bcols});
            out["day_cell_offsets"] = col(r.day_cell_offsets);
            out["day_cells"] = col(r.day_cells);
            return out;
        },
        py::arg("columns"), py::arg("params"),
        "The hourly scoring of a block of vehicles in one call: window and location features, day by day "
        "the baseline, away distance and the mileage, entropy and relocation detectors' arithmetic, and each "
        "vehicle's state after its last hour.");
}
