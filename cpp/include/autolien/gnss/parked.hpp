// Parked episodes and displacement while parked, from one vehicle's fixes in
// a local ENU frame with their (inflated) measurement variances.
//
// Fixes are clustered in time order: a fix joins the open cluster when it is
// within the chi-square gate of the cluster's weighted mean. A break needs
// `confirm` inconsistent fixes in a row (fewer are outliers, skipped), so a
// multipath spike does not end an episode. A cluster lasting `min_duration_s`
// is a parked episode.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace autolien::gnss {

struct ParkConfig {
    double min_duration_s = 120.0;
    double gate_chi2 = 13.82;     // 2 degrees of freedom (horizontal), 99.9 %
    int confirm = 3;              // inconsistent fixes in a row that end an episode
    double stationary_mps = 0.5;  // reported speed at or below this says "not driving"
    double offline_gap_s = 300.0; // a silence at least this long before a move: relocated offline
    double correlation_s = 60.0;  // GNSS errors decorrelate on about this time scale
};

struct ParkedEpisode {
    std::size_t first = 0, last = 0; // fix indices (inclusive)
    double e = 0, n = 0, u = 0;      // weighted mean
    double var_e = 0, var_n = 0, var_u = 0;
    std::uint32_t n_fixes = 0;
};

enum class MoveKind : std::uint8_t {
    departure = 0,         // drove away: reported speed explains it
    displacement = 1,      // moved while the reported speed said stationary (towing)
    relocated_offline = 2, // reappeared elsewhere after a silence, with no moving fixes
    unexplained = 3        // moved with no speed data to explain it
};

struct MoveEvent {
    std::size_t episode = 0;            // the parked episode that was left
    std::size_t first_fix = 0;          // the first fix outside it (evidence start)
    std::size_t last_fix = 0;           // the fix that confirmed the move (evidence end)
    double distance_m = 0, sigma_m = 0; // horizontal, from the episode's position
    MoveKind kind = MoveKind::unexplained;
};

struct ParkInput {
    std::span<const double> t, e, n, u;
    std::span<const double> var_e, var_n, var_u; // NaN: the fix is not used
    std::span<const double> speed_mps;           // NaN where unknown
};

struct ParkOutput {
    std::vector<ParkedEpisode> episodes;
    std::vector<MoveEvent> moves;
};

ParkOutput find_parked(const ParkInput& in, const ParkConfig& cfg);

} // namespace autolien::gnss
