// The monitor's hourly scoring of one vehicle (python/autolien/monitor/
// engine.py's _score_hours and the hourly detectors in detectors/): the
// trailing-window features, and the arithmetic of the mileage, entropy and
// relocation detectors. Each did its work in a dozen small numpy calls per
// vehicle and day, which was a third of the monitor's time; the detectors
// still build their signals in Python, from what these return, for the few
// hours that signal.
//
// Every output is what the numpy code gave, bit for bit: the same IEEE
// operations in the same order (Python's max(a, b) keeps a unless b > a;
// sums add from zero in the order numpy added them). The exponential of the
// driving-behaviour score stays with numpy: its SIMD exp is not libm's.
// Spans of rows x columns are row-major. Every function throws
// std::invalid_argument on inconsistent lengths.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace autolien::monitor {

// History rows [0, rows) of one vehicle; the scored ones are [first, rows).
// Each scored row's window is the rows p - k + 1 .. p that exist (rows
// before the handed ones add nothing: hand in k - 1 rows before `first`).
struct WindowInput {
    std::size_t first = 0;
    std::int64_t k = 1;
    std::span<const double> dist_km, moving_s, night_s, speeding_s, odo_km;
    std::span<const std::int64_t> n, harsh_accel, harsh_brake, n_odo;
    std::span<const std::int64_t> speed_hist, turn_hist, stop_hist; // rows x bins
    std::size_t speed_bins = 0, turn_bins = 0, stop_bins = 0;
};

// Per scored row: fixes in the window, the Shannon entropy (bits) of the
// summed speed, turn and stop histograms, the night share of moving time,
// the distance by track and by odometer (NaN without readings), the
// window's mileage (odometer with two or more readings, else track), and
// the behaviour score's exponent (the score is exp(-behaviour_arg) where
// `moving` is set, NaN elsewhere).
struct WindowFeatures {
    std::vector<std::int64_t> n;
    std::vector<double> speed_entropy, turn_entropy, stop_entropy, night_share, km_track, km_odo, km_24h,
        behaviour_arg;
    std::vector<std::uint8_t> moving;
};
WindowFeatures window_features(const WindowInput& in);

// The mileage detector over one day's hours (detectors/mileage.py).
struct MileageInput {
    std::span<const double> km, track, odo, fixes, earlier; // per hour
    double median = 0, mad = 0;
    std::int64_t count = 0;
};
struct MileageParams {
    std::int64_t min_baseline_h = 0;
    double mad_floor_km = 0, warn_km_month = 0, z = 0, freeze_track_km = 0, rollback_km = 0, mismatch_low = 0,
           mismatch_high = 0;
    bool confirm = false; // mileage_confirm_h > 0
};
// excess over the baseline and its robust z (NaN without a baseline); the
// jump test alone (`more`, what the entropy score leaves out) and confirmed
// (`jump`); odometer freeze and mismatch, and the odometer/track ratio read.
struct MileageFlags {
    std::vector<double> excess, z, ratio;
    std::vector<std::uint8_t> jump, more, frozen, mismatch;
};
MileageFlags mileage_flags(const MileageInput& in, const MileageParams& p);

// The entropy detector over one day's hours (detectors/entropy.py).
struct EntropyInput {
    std::span<const double> values; // hours x cols: the entropy features
    std::size_t cols = 0;
    std::span<const double> median, mad, z_floor; // per column
    std::span<const std::int64_t> count;          // per column
    std::span<const std::uint8_t> place; // per column: explained by standing far away, else by driving more
    std::span<const double> t_end, away; // per hour
    std::span<const std::uint8_t> driving_more;
};
// Two CUSUM charts of the one score: (cusum_k, cusum_h) for strong changes,
// (slow_k, slow_h) for weak lasting ones (slow_h <= 0: none). Each is capped
// at 3x its threshold.
struct EntropyParams {
    std::int64_t min_baseline_h = 0;
    double hold_s = 0, away_km = 0, cusum_k = 0, cusum_h = 0, hour_s = 3600, slow_k = 0, slow_h = 0;
};
struct EntropyState {
    double cusum = 0, cusum_since = 0, mileage_flag_t = 0, slow = 0, slow_since = 0;
};
// Per hour: every column's robust z (NaN without a baseline), whether it is
// explained, the score (the mean of the two largest clipped unexplained z,
// NaN with none), each chart after the hour and the start of its run; and
// the state after the last hour.
struct EntropyScores {
    std::vector<double> z, score, cusum, since, slow, slow_since;
    std::vector<std::uint8_t> explained;
    EntropyState end;
};
EntropyScores entropy_scores(const EntropyInput& in, const EntropyParams& p, EntropyState s);

// The relocation detector over one day's hours (detectors/relocation.py):
// `away` holds the away distance (km, NaN unknown) of the history rows
// before the day that the windows reach, then of the day's hours (the last
// `hours` entries).
struct RelocationParams {
    double away_km = 0;
    std::int64_t context_h = 1, away_hours = 0, emergency_h = 0;
};
// Per hour: away hours in the window, the streak of away hours, and the
// level of its signal (-1: none).
struct RelocationFlags {
    std::vector<std::int64_t> n_away, streak, level;
    std::int64_t end_streak = 0;
};
RelocationFlags relocation_flags(std::span<const double> away, std::size_t hours, const RelocationParams& p,
                                 std::int64_t streak);

} // namespace autolien::monitor
