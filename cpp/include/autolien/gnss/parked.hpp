// Parked episodes and displacement while parked, from one vehicle's fixes in
// a local ENU frame with their (inflated) measurement variances.
//
// Error model at rest: a fix is the true position plus white noise (its
// measurement variance) plus a slowly varying bias of its quality class (float
// ambiguities, multipath, atmosphere): a Gauss-Markov process of 1-sigma
// bias_m[q] per horizontal axis and time constant bias_time_s. A bias lives as
// long as its "run": consecutive fixes of one class with no reset (a gap over
// reacquire_gap_s since the class's last fix, or its variance jumping by
// reset_sigma_ratio^2). Runs are independent of each other, so averaging beats
// a bias only across runs: the parked position is the inverse-variance mean of
// run means, and leans on fixed runs (bias_m of 1 cm) when there are any.
//
// Fixes are clustered in time order: a fix joins the open cluster when it is
// within the chi-square gate of the cluster's position, with the variance of
// the difference under that model (a fix of a run that already pulls the
// position shares its bias). A break needs `confirm` inconsistent fixes in a
// row (fewer are outliers, skipped), so a multipath spike does not end an
// episode. A cluster lasting `min_duration_s` is a parked episode. Consecutive
// episodes at one place merge (allowing each a transition of the float class's
// bias, and no fix in between off by more than that or reporting speed), so a
// reset or a wrong fix is not a move.
#pragma once

#include <array>
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
    double correlation_s = 60.0;  // white noise at rest decorrelates on about this time scale
    // Slowly varying bias per GGA quality class, 1-sigma per horizontal axis
    // (vertical: vertical_factor x), its time constant, and what starts a new run.
    std::array<double, 7> bias_m{0.0, 2.0, 0.5, 2.0, 0.01, 0.4, 3.0};
    double bias_time_s = 1800.0;
    double reacquire_gap_s = 60.0;
    double reset_sigma_ratio = 2.0;
    double vertical_factor = 2.0;
    int transition_class = 5; // the class whose bias a transition between runs may show (RTK float)
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
    std::span<const std::int32_t> quality;       // GGA code; empty: all RTK fixed (no bias classes)
};

struct ParkOutput {
    std::vector<ParkedEpisode> episodes;
    std::vector<MoveEvent> moves;
};

ParkOutput find_parked(const ParkInput& in, const ParkConfig& cfg);

} // namespace autolien::gnss
