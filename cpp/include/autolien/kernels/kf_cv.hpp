// The constant-velocity Kalman filter step of autolien.gnss.fuse (forward
// pass): predict over an irregular dt, zero-velocity and ground-speed updates,
// joint (e, n, u) Mahalanobis gating, sequential position updates and the
// per-quality-class noise inflation. One vehicle's filter is a KfState; one
// fix is one kf_step. cpp/src/gnss/fusion.cpp (which adds the RTS smoother)
// and the GPU kernel both call this step.
// State: horizontal [e, ve, n, vn] with a full covariance (a speed couples the
// axes), vertical [u, vu] apart.
#pragma once

#include "autolien/kernels/config.hpp"

namespace autolien::kernels {

struct KfConfig {
    double floor_m[7];
    double default_m[7];
    double vertical_factor;
    double accel_psd;
    double gate_chi2;
    double reinit_gap_s;
    int reinit_after_rejects;
    int adapt_inflation;
    double adapt_rate;
    double max_inflation;
    double initial_speed_sigma;
    double zupt_speed_mps;
    double zupt_sigma_mps;
    double speed_sigma_mps;
    double speed_sigma_fraction;
    double min_heading_speed_mps;
};

struct KfState {
    double x[4];    // e, ve, n, vn
    double P[4][4]; // horizontal covariance
    double up, uv;  // vertical position and velocity
    double u00, u01, u11;
    double infl2[7]; // inflation squared per quality class
    double last_t;
    int rejects_in_row;
    int started;
    u32 segment;
};

struct KfFix {
    double t, e, n, u; // ENU metres; NaN when off the globe
    int quality;
    double sigma_n, sigma_e, sigma_u, speed; // NaN when absent
};

// Codes of gnss::FixStatus.
enum KfStatus : u8 {
    kf_used = 0,
    kf_invalid = 1,
    kf_gated = 2,
    kf_reinit_gap = 3,
    kf_reinit_rejects = 4,
    kf_first = 5
};

struct KfOut {
    double e, n, u, ve, vn, vu, var_e, var_n, var_u; // the filtered state after the fix
    double nis, inflation, r_e, r_n, r_u;            // NaN when not tested / invalid
    u8 status;
    u32 segment;
};

AUTOLIEN_HD void kf_clear(KfState& s) {
    for (int i = 0; i < 4; ++i) {
        s.x[i] = 0;
        for (int j = 0; j < 4; ++j)
            s.P[i][j] = 0;
    }
    s.up = s.uv = s.u00 = s.u01 = s.u11 = 0;
}

AUTOLIEN_HD void kf_init(KfState& s) {
    kf_clear(s);
    for (int q = 0; q < 7; ++q)
        s.infl2[q] = 1.0;
    s.last_t = 0;
    s.rejects_in_row = 0;
    s.started = 0;
    s.segment = 0;
}

// F = blockdiag(F1, F1), F1 = [[1, dt], [0, 1]]; Q the white-acceleration one.
AUTOLIEN_HD void kf_predict(KfState& s, double dt, double q) {
    s.x[0] += dt * s.x[1];
    s.x[2] += dt * s.x[3];
    for (int j = 0; j < 4; ++j) {
        s.P[0][j] += dt * s.P[1][j];
        s.P[2][j] += dt * s.P[3][j];
    }
    for (int i = 0; i < 4; ++i) {
        s.P[i][0] += dt * s.P[i][1];
        s.P[i][2] += dt * s.P[i][3];
    }
    const double dt2 = dt * dt;
    for (int b = 0; b < 4; b += 2) {
        s.P[b][b] += q * dt2 * dt / 3.0;
        s.P[b][b + 1] += q * dt2 / 2.0;
        s.P[b + 1][b] += q * dt2 / 2.0;
        s.P[b + 1][b + 1] += q * dt;
    }
    s.up += s.uv * dt;
    s.u00 += 2 * dt * s.u01 + dt2 * s.u11 + q * dt2 * dt / 3.0;
    s.u01 += dt * s.u11 + q * dt2 / 2.0;
    s.u11 += q * dt;
}

// A scalar horizontal measurement with row H, innovation y and noise r.
AUTOLIEN_HD void kf_update_h(KfState& s, const double H[4], double y, double r) {
    double PH[4];
    for (int i = 0; i < 4; ++i)
        PH[i] = s.P[i][0] * H[0] + s.P[i][1] * H[1] + s.P[i][2] * H[2] + s.P[i][3] * H[3];
    const double S = H[0] * PH[0] + H[1] * PH[1] + H[2] * PH[2] + H[3] * PH[3] + r;
    if (!(S > 0))
        return;
    for (int i = 0; i < 4; ++i)
        s.x[i] += PH[i] / S * y;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            s.P[i][j] -= PH[i] * PH[j] / S;
}

AUTOLIEN_HD void kf_update_u(KfState& s, double y, double S) {
    const double k0 = s.u00 / S, k1 = s.u01 / S;
    s.up += k0 * y;
    s.uv += k1 * y;
    const double p00 = s.u00, p01 = s.u01;
    s.u00 = (1 - k0) * p00;
    s.u01 = (1 - k0) * p01;
    s.u11 -= k1 * p01;
}

AUTOLIEN_HD void kf_update_uv(KfState& s, double z, double r) {
    const double y = z - s.uv, S = s.u11 + r;
    const double k0 = s.u01 / S, k1 = s.u11 / S;
    s.up += k0 * y;
    s.uv += k1 * y;
    const double p01 = s.u01, p11 = s.u11;
    s.u00 -= k0 * p01;
    s.u01 -= k0 * p11;
    s.u11 -= k1 * p11;
}

AUTOLIEN_HD void kf_start_segment(KfState& s, const KfFix& f, const double r[3], double v0, KfStatus why,
                                  KfOut& o) {
    kf_clear(s);
    s.x[0] = f.e;
    s.x[2] = f.n;
    s.P[0][0] = r[0];
    s.P[1][1] = v0;
    s.P[2][2] = r[1];
    s.P[3][3] = v0;
    s.up = f.u;
    s.u00 = r[2];
    s.u11 = v0;
    if (s.started)
        ++s.segment;
    s.started = 1;
    s.rejects_in_row = 0;
    s.last_t = f.t;
    o.status = why;
}

// One fix through the filter. `o` receives the state after it; a fix before
// the first valid one reports the zero state (callers blank those rows: the
// filter has not started, s.started is still 0). When `pred` is given it
// receives the predicted state (before this fix's updates), or the new
// segment's initial state when the fix starts one: what the smoother needs.
AUTOLIEN_HD void kf_step(KfState& s, const KfFix& f, const KfConfig& c, KfOut& o, KfState* pred = nullptr) {
    const double nan = AUTOLIEN_NAN;
    const int q = f.quality;
    const bool valid =
        q >= 1 && q <= 6 && is_finite(f.e) && is_finite(f.n) && is_finite(f.u) && is_finite(f.t);
    double r[3] = {0, 0, 0};
    o.nis = o.inflation = o.r_e = o.r_n = o.r_u = nan;
    o.status = kf_used;
    if (valid) {
        const double fl = c.floor_m[q], def = c.default_m[q];
        const double sn = is_finite(f.sigma_n) ? dmax(f.sigma_n, fl) : def;
        const double se = is_finite(f.sigma_e) ? dmax(f.sigma_e, fl) : def;
        const double su =
            is_finite(f.sigma_u) ? dmax(f.sigma_u, fl * c.vertical_factor) : def * c.vertical_factor;
        r[0] = se * se * s.infl2[q];
        r[1] = sn * sn * s.infl2[q];
        r[2] = su * su * s.infl2[q];
        o.r_e = r[0];
        o.r_n = r[1];
        o.r_u = r[2];
    }
    const double v0 = c.initial_speed_sigma * c.initial_speed_sigma;
    const double He[4] = {1, 0, 0, 0}, Hn[4] = {0, 0, 1, 0};
    const double Hve[4] = {0, 1, 0, 0}, Hvn[4] = {0, 0, 0, 1};
    if (!s.started) {
        if (!valid)
            o.status = kf_invalid;
        else
            kf_start_segment(s, f, r, v0, kf_first, o);
    } else {
        const double dt = f.t - s.last_t;
        if (valid && dt > c.reinit_gap_s) {
            kf_start_segment(s, f, r, v0, kf_reinit_gap, o);
        } else {
            const double step = dt > 0.0 ? dt : 0.0;
            kf_predict(s, step, c.accel_psd);
            s.last_t = f.t;
            if (pred != nullptr)
                *pred = s;
            const double speed = f.speed;
            if (is_finite(speed) && speed <= c.zupt_speed_mps) {
                // Known to stand still: hold the velocity tight.
                const double rz = c.zupt_sigma_mps * c.zupt_sigma_mps;
                kf_update_h(s, Hve, -s.x[1], rz);
                kf_update_h(s, Hvn, -s.x[3], rz);
                kf_update_uv(s, 0.0, rz);
            } else if (is_finite(speed)) {
                // Ground speed, linearised at the prediction (needs a heading).
                const double ve = s.x[1], vn = s.x[3], vh = AUTOLIEN_HYPOT(ve, vn);
                if (vh >= c.min_heading_speed_mps) {
                    const double H[4] = {0, ve / vh, 0, vn / vh};
                    const double sig = dmax(c.speed_sigma_mps, c.speed_sigma_fraction * speed);
                    kf_update_h(s, H, speed - vh, sig * sig);
                }
            }
            if (!valid) {
                o.status = kf_invalid;
            } else {
                const double ye = f.e - s.x[0], yn = f.n - s.x[2], yu = f.u - s.up;
                const double s00 = s.P[0][0] + r[0], s11 = s.P[2][2] + r[1], s01 = s.P[0][2];
                const double det = s00 * s11 - s01 * s01;
                const double su = s.u00 + r[2];
                const double nis = (s11 * ye * ye - 2 * s01 * ye * yn + s00 * yn * yn) / det + yu * yu / su;
                o.nis = nis;
                if (!(nis <= c.gate_chi2)) {
                    if (++s.rejects_in_row >= c.reinit_after_rejects)
                        kf_start_segment(s, f, r, v0, kf_reinit_rejects, o); // it really moved
                    else
                        o.status = kf_gated;
                } else {
                    s.rejects_in_row = 0;
                    kf_update_h(s, He, f.e - s.x[0], r[0]);
                    kf_update_h(s, Hn, f.n - s.x[2], r[1]);
                    kf_update_u(s, yu, su);
                    if (c.adapt_inflation) {
                        // Nudge the class inflation so NIS averages its 3 degrees of freedom.
                        const double ratio = dclamp(nis / 3.0, 0.05, 20.0);
                        const double lim = c.max_inflation * c.max_inflation;
                        s.infl2[q] =
                            dclamp(s.infl2[q] * AUTOLIEN_EXP(c.adapt_rate * AUTOLIEN_LOG(ratio)), 1.0, lim);
                    }
                }
            }
        }
    }
    if (pred != nullptr &&
        (o.status == kf_first || o.status == kf_reinit_gap || o.status == kf_reinit_rejects))
        *pred = s;
    o.e = s.x[0];
    o.n = s.x[2];
    o.u = s.up;
    o.ve = s.x[1];
    o.vn = s.x[3];
    o.vu = s.uv;
    o.var_e = s.P[0][0];
    o.var_n = s.P[2][2];
    o.var_u = s.u00;
    o.inflation = valid ? AUTOLIEN_SQRT(s.infl2[q]) : nan;
    o.segment = s.segment;
}

} // namespace autolien::kernels
