// Fix fusion: the constant-velocity Kalman predict/update step with the
// joint Mahalanobis gate, streamed over one vehicle's fixes. The step is the
// shared kernels::kf_step (cpp/include/autolien/kernels/kf_cv.hpp) in IEEE
// double, not ap_fixed: the covariance spans about 1e-6 to 1e6 m^2 and the
// gate divides by a determinant of such terms, so a fixed-point state would
// need well over 64 bits per entry to hold the core's tolerance (1e-6 m), and
// a fix arrives every 100 ms or so, which leaves thousands of cycles for the
// double-precision operators of a few DSP slices each.
//
// Fixes are in a local ENU frame (metres): the geodesy stays on the host.
#pragma once

#include <hls_stream.h>

#include "autolien/kernels/kf_cv.hpp"

namespace autolien::fpga {

using kernels::KfConfig;
using kernels::KfFix;
using kernels::KfOut;
using kernels::KfState;
using kernels::u32;

// KfConfig from its fields as doubles, in declaration order (the layout of
// autolien.gpu.fusion.config_vector).
constexpr int kKfConfigWords = 28;

inline KfConfig kf_config(const double w[kKfConfigWords]) {
    KfConfig c;
cls:
    for (int i = 0; i < 7; ++i) {
        c.floor_m[i] = w[i];
        c.default_m[i] = w[7 + i];
    }
    c.vertical_factor = w[14];
    c.accel_psd = w[15];
    c.gate_chi2 = w[16];
    c.reinit_gap_s = w[17];
    c.reinit_after_rejects = int(w[18]);
    c.adapt_inflation = int(w[19]);
    c.adapt_rate = w[20];
    c.max_inflation = w[21];
    c.initial_speed_sigma = w[22];
    c.zupt_speed_mps = w[23];
    c.zupt_sigma_mps = w[24];
    c.speed_sigma_mps = w[25];
    c.speed_sigma_fraction = w[26];
    c.min_heading_speed_mps = w[27];
    return c;
}

// One vehicle: the filter starts cleared and takes its n fixes in order.
inline void kf_vehicle(hls::stream<KfFix>& fixes, hls::stream<KfOut>& outs, u32 n, const KfConfig& c) {
    KfState s;
    kernels::kf_init(s);
fix:
    for (u32 i = 0; i < n; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 100000
        const KfFix f = fixes.read();
        KfOut o;
        kernels::kf_step(s, f, c, o);
        outs.write(o);
    }
}

} // namespace autolien::fpga
