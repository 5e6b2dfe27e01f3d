// RTK fix fusion for one vehicle: a constant-velocity Kalman filter in local
// ENU with irregular time steps, quality-class measurement noise (floors and an
// online-estimated inflation), Mahalanobis gating, reinitialisation after gaps,
// and a Rauch-Tung-Striebel smoother over the same model.
//
// The horizontal state [e, ve, n, vn] keeps a full covariance, because a
// reported speed couples the axes; the vertical [u, vu] is filtered apart.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace autolien::gnss {

struct FusionConfig {
    // By GGA quality code 0..6: the 1-sigma floor of the horizontal noise, and
    // the value used when a fix carries no sigma. Vertical is vertical_factor x.
    std::array<double, 7> floor_m{0.0, 3.0, 0.5, 3.0, 0.02, 0.15, 5.0};
    std::array<double, 7> default_m{0.0, 5.0, 1.0, 5.0, 0.05, 0.5, 10.0};
    double vertical_factor = 2.0;
    double accel_psd = 2.0;      // m^2/s^3, white acceleration (cars: 0.5 diverged in turns)
    double gate_chi2 = 16.27;    // 3 degrees of freedom, 99.9 %
    double reinit_gap_s = 300.0; // a longer gap starts a new segment
    int reinit_after_rejects = 10;
    bool adapt_inflation = true;
    double adapt_rate = 0.05;
    double max_inflation = 30.0; // on sigma
    double initial_speed_sigma = 30.0;
    // Zero-velocity update: a reported speed at or below zupt_speed_mps (an
    // odometer or OBD reading of 0) is a measurement v = 0 with this sigma.
    double zupt_speed_mps = 0.05;
    double zupt_sigma_mps = 0.02;
    // A reported speed above that is a measurement of the horizontal speed,
    // sigma max(speed_sigma_mps, speed_sigma_fraction x speed), used once the
    // filter's own speed gives a heading (min_heading_speed_mps).
    double speed_sigma_mps = 0.2;
    double speed_sigma_fraction = 0.03;
    double min_heading_speed_mps = 1.0;
};

// Reasons per fix (0 = used).
enum class FixStatus : std::uint8_t {
    used = 0,
    invalid = 1,
    gated = 2,
    reinit_gap = 3,
    reinit_rejects = 4,
    first = 5
};

struct FusionOutput {
    // Filtered (or smoothed) state per input fix, ENU metres and m/s.
    std::vector<double> e, n, u, ve, vn, vu;
    std::vector<double> var_e, var_n, var_u;
    std::vector<double> nis, inflation; // NIS of the fix (NaN if not tested), inflation of its class
    std::vector<double> r_e, r_n, r_u;  // measurement variance used for the fix (NaN if invalid)
    std::vector<std::uint8_t> status;
    std::vector<std::uint32_t> segment; // increments at every reinitialisation
};

struct FixInput {
    std::span<const double> t; // seconds, non-decreasing
    std::span<const double> e, n, u;
    std::span<const std::int32_t> quality;
    std::span<const double> sigma_n, sigma_e, sigma_u; // NaN when absent
    std::span<const double> speed_mps;                 // NaN when absent; empty: none at all
};

// Filters one vehicle's fixes; `smooth` runs the RTS pass as well.
FusionOutput fuse(const FixInput& in, const FusionConfig& cfg, bool smooth);

} // namespace autolien::gnss
