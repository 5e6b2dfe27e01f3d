// The monitor's per-sample derivation and per-hour aggregation over a block
// of vehicles at once (python/autolien/monitor/features.py, docs/monitor.md).
// Samples of all vehicles are concatenated (CSR: vehicle v owns samples
// [offsets[v], offsets[v+1]), in time order); every output is what the
// per-vehicle numpy code gives, bit for bit: the same operations in the same
// order, sums added in sample order as numpy's bincount adds them. The
// transcendental steps (the heading's arctan2 and the turn, the grid cell's
// cosine, the stop bin's log2, a time zone's local hour) stay with numpy over
// the whole block: numpy's SIMD arctan2 and log2 differ from libm's in the
// last bit. The haversine is the core's own, as it was.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace autolien::monitor {

inline constexpr int kSpeedBins = 14; // 10 km/h each, the last open
inline constexpr int kTurnBins = 12;  // 30 degrees each
inline constexpr int kStopBins = 11;  // 2-4, 4-8, ... minutes, the last open

// MonitorConfig's feature thresholds (products such as silence_warning_h *
// 3600 are formed by the caller, as the Python code forms them).
struct DeriveParams {
    double moving_kmh = 3.0;
    double jump_min_m = 2000.0;
    double jump_kmh = 200.0;
    double jump_still_gap_s = 600.0;
    double silence_gap_s = 6.0 * 3600.0; // a step across a longer gap is not driving
    double step_cap_s = 120.0;
    double dwell_cap_s = 600.0;
    double speeding_kmh = 120.0;
    double harsh_max_dt_s = 5.0;
    double harsh_accel_mps2 = 3.0;
    double harsh_brake_mps2 = 3.5;
    double stop_min_s = 120.0;
    double earth_m = 6371008.8;
    double tz_offset_s = 8.0 * 3600.0; // local time, when no local_hour is given
    int night_start_h = 22;
    int night_end_h = 6;
};

struct BlockInput {
    std::span<const std::int64_t> offsets; // n_vehicles + 1, from 0, non-decreasing
    std::span<const double> t;             // seconds, per vehicle in time order
    std::span<const double> lat;
    std::span<const double> lon;
    std::span<const double> speed;       // km/h, NaN where not measured
    std::span<const double> local_hour;  // a zone's local clock hour of each t, or empty: tz_offset_s
    std::span<const std::int64_t> cells; // the equal-area grid cell of each fix
    std::span<const double> run_carry;   // per vehicle: start of a stationary run begun before
    std::span<const std::int64_t> h_a;   // per vehicle: the hours [h_a, h_b) to aggregate
    std::span<const std::int64_t> h_b;
};

// Per sample (the numpy Derived's fields, same meaning; the turn is numpy's).
struct DerivedColumns {
    std::vector<double> speed, dist_m, moving_s, night_s, speeding_s, run_start, stop_s, jump_m;
    std::vector<std::uint8_t> moving, harsh_accel, harsh_brake, stop_end, jump;
    std::vector<std::int64_t> dwell_s;
};

// The derived columns hourly_block reads (handed back from Python without a
// copy, with the turn between moving steps).
struct DerivedView {
    std::span<const double> speed, dist_m, moving_s, night_s, speeding_s, turn;
    std::span<const std::uint8_t> moving, harsh_accel, harsh_brake, stop_end;
    std::span<const std::int64_t> dwell_s;
};

// Per vehicle-hour, vehicle v's hours at rows [hour_offsets[v], hour_offsets[v+1]);
// histograms row-major (rows x bins). Cell dwell: per vehicle, the (hour,
// cell) pairs of its hours in ascending order with their summed dwell seconds.
struct HourlyColumns {
    std::vector<std::int64_t> hour_offsets, hour, n, harsh_accel, harsh_brake;
    std::vector<double> dist_km, moving_s, night_s, speeding_s, last_lat, last_lon;
    std::vector<std::int64_t> speed_hist, turn_hist, stop_hist;
    std::vector<std::int64_t> cell_offsets, cell_hour, cell_id, cell_secs;
};

// Both throw std::invalid_argument on inconsistent input: lengths, offsets
// that do not start at 0, decrease or end elsewhere than the sample count,
// non-finite times or positions, h_b < h_a, or too many hours.
DerivedColumns derive_block(const BlockInput& in, const DeriveParams& p);
// stop_bin: the stop histogram's bin of each fix that ends a stop (read only there).
// local_hour is not read.
HourlyColumns hourly_block(const BlockInput& in, const DerivedView& d,
                           std::span<const std::int64_t> stop_bin);

} // namespace autolien::monitor

namespace autolien::monitor {

// One vehicle's location features for the hours [h_a, h_b) from its (hour,
// cell, dwell seconds) table (engine.Vehicle._location): the Shannon entropy
// (bits) of the dwell per cell over each hour's context window (hours h -
// context_h + 1 .. h), NaN without dwell rows, and the share of that dwell in
// cells the baseline period of the hour's UTC day ([day - lag_h - baseline_h,
// day - lag_h)) never visited, NaN where the window holds no seconds. Throws
// std::invalid_argument on mismatched lengths, negative seconds, h_b < h_a
// or context_h < 1.
struct LocationColumns {
    std::vector<double> entropy, new_share;
};
LocationColumns location_features(std::span<const std::int64_t> hour, std::span<const std::int64_t> cell,
                                  std::span<const std::int64_t> secs, std::int64_t h_a, std::int64_t h_b,
                                  std::int64_t context_h, std::int64_t lag_h, std::int64_t baseline_h);

// One vehicle's baseline for a day (engine.Vehicle._baseline): over the
// hourly rows with lo <= hour < hi and n + n_odo > 0, for each column of
// `values` (rows x cols, row-major; NaN for no value), the median and the
// median absolute deviation of its values (numpy's: the mean of the two
// middle values), their count and the elapsed history they cover in hours
// (each UTC day with a value counts 24 h, the first from its first hour);
// and the familiar cells: those of the (hour, cell) table visited in
// [lo, hi) on at least home_days distinct UTC days, ascending. Throws
// std::invalid_argument on mismatched lengths or home_days < 0.
struct Baseline {
    std::vector<double> median, mad;
    std::vector<std::int64_t> count, span_h, cells;
};
Baseline baseline(std::span<const std::int64_t> hour, std::span<const std::int64_t> n,
                  std::span<const std::int64_t> n_odo, std::span<const double> values, std::size_t cols,
                  std::span<const std::int64_t> cell_hour, std::span<const std::int64_t> cell,
                  std::int64_t lo, std::int64_t hi, std::int64_t home_days);

} // namespace autolien::monitor
