// The monitor's hourly scoring of a block of vehicles in one call
// (python/autolien/monitor/engine.py's score_block): for each vehicle, the
// trailing-window and location features of its new hours, then day by day
// its baseline, the away distance from its familiar cells, the mileage,
// entropy and relocation detectors' arithmetic, and their state carried to
// the next day and the next call. The Python layer used to do this per
// vehicle and per day with a dozen core calls each; it now gathers the
// block's histories into columns, makes this one call, and builds signals
// only for the hours that flag.
//
// Each step is the function score.hpp / block.hpp / gnss/geodesy.hpp
// already exposes, called with the same arguments in the same order, so
// every output is what the per-vehicle path gave, bit for bit
// (tests/test_monitor_block_score.py holds that path as its reference).
// The exponential of the driving-behaviour score stays with numpy.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "autolien/monitor/score.hpp"

namespace autolien::monitor {

// The scored feature columns a history row keeps: the six entropy features
// (engine.ENTROPY_FEATURES' order), the window's mileage and the away
// distance. The baseline reads the first seven.
inline constexpr std::size_t kEntropyCols = 6;
inline constexpr std::size_t kBaseCols = 7;   // + km_24h
inline constexpr std::size_t kScoredCols = 8; // + away_km
inline constexpr std::size_t kHeadingCol = 1;
inline constexpr std::size_t kLocationCol = 3;
inline constexpr std::size_t kNewShareCol = 5;
inline constexpr std::size_t kKmCol = 6;
inline constexpr std::size_t kAwayCol = 7;

// Vehicles' history rows, concatenated: vehicle v's rows are
// [row_offsets[v], row_offsets[v + 1]), hourly and consecutive, and its new
// (unscored) rows start `first[v]` rows in. `scored` (rows x kScoredCols)
// is read for the rows before each vehicle's first new row; `heading`
// holds the heading entropy of the new rows only, vehicle after vehicle.
// The (hour, cell, seconds) dwell tables are concatenated the same way.
struct ScoreBlockInput {
    std::span<const std::int64_t> row_offsets, first;
    std::span<const std::int64_t> hour, n, n_odo, harsh_accel, harsh_brake;
    std::span<const double> dist_km, moving_s, night_s, speeding_s, odo_km, last_lat, last_lon;
    std::span<const std::int64_t> speed_hist, turn_hist, stop_hist; // rows x bins
    std::size_t speed_bins = 0, turn_bins = 0, stop_bins = 0;
    std::span<const double> scored;  // rows x kScoredCols
    std::span<const double> heading; // new rows
    std::span<const std::int64_t> cell_offsets, cell_hour, cell, cell_secs;
    // each vehicle's state: both CUSUM charts, the last mileage flag, the
    // last position seen and the away streak
    std::span<const double> cusum, cusum_since, mileage_flag_t, slow, slow_since, last_lat0, last_lon0;
    std::span<const std::int64_t> away_streak;
};

struct ScoreBlockParams {
    std::int64_t context_h = 24, lag_h = 24, baseline_h = 336, home_days = 5, min_baseline_samples = 24,
                 min_baseline_h = 168, confirm_h = 24;
    double cell_m = 1000, earth_m = 6371008.8, hour_s = 3600;
    MileageParams mileage; // its `confirm` is confirm_h > 0
    EntropyParams entropy; // its min_baseline_h and hour_s are the above
    RelocationParams relocation;
    std::array<double, kEntropyCols> z_floor{};
    std::array<std::uint8_t, kEntropyCols> place{};
};

// Per new row, vehicles in order (vehicle v's rows are [hour_offsets[v],
// hour_offsets[v + 1])), and per vehicle its state after its last hour and
// the baseline of its last scored day.
struct ScoreBlock {
    std::vector<std::int64_t> hour_offsets;
    // the window's features (score.hpp's WindowFeatures) and location
    std::vector<std::int64_t> fixes;
    std::vector<double> speed_entropy, turn_entropy, stop_entropy, night_share, km_track, km_odo, km_24h,
        behaviour_arg, location_entropy, new_place_share, away, earlier, t_end;
    std::vector<std::uint8_t> moving;
    // the hour's day's baseline (rows x kBaseCols): median, MAD and the
    // history it covers (0 when it holds fewer than min_baseline_samples)
    std::vector<double> base_median, base_mad;
    std::vector<std::int64_t> base_n;
    // mileage (MileageFlags), entropy (EntropyScores) and relocation
    std::vector<double> excess, mileage_z, ratio;
    std::vector<std::uint8_t> jump, more, frozen, mismatch;
    std::vector<double> z, score, cusum, since, slow, slow_since; // z: rows x kEntropyCols
    std::vector<std::uint8_t> explained;                          // rows x kEntropyCols
    std::vector<std::int64_t> n_away, streak, level;
    // per vehicle
    std::vector<double> end_cusum, end_cusum_since, end_mileage_flag_t, end_slow, end_slow_since, end_lat,
        end_lon;
    std::vector<std::int64_t> end_away_streak, base_day;
    std::vector<double> day_median, day_mad; // vehicles x kBaseCols
    std::vector<std::int64_t> day_n;         // vehicles x kBaseCols
    std::vector<std::int64_t> day_cell_offsets, day_cells;
};

// Throws std::invalid_argument on inconsistent lengths or offsets, or a
// vehicle whose rows are not consecutive hours.
ScoreBlock score_block(const ScoreBlockInput& in, const ScoreBlockParams& p);

// The centre (degrees) of a cell of the monitor's sinusoidal equal-area grid
// (features.cell_centers): numpy's degrees and radians are x * (180 / pi)
// and x * (pi / 180).
std::pair<double, double> cell_center(std::int64_t cell, double cell_m, double earth_m);

} // namespace autolien::monitor
