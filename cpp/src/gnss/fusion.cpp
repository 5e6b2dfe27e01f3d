#include "autolien/gnss/fusion.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace autolien::gnss {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Axis {
    double p = 0, v = 0;              // state
    double p00 = 0, p01 = 0, p11 = 0; // covariance
};

void predict(Axis& a, double dt, double q) {
    a.p += a.v * dt;
    const double dt2 = dt * dt;
    a.p00 += 2 * dt * a.p01 + dt2 * a.p11 + q * dt2 * dt / 3.0;
    a.p01 += dt * a.p11 + q * dt2 / 2.0;
    a.p11 += q * dt;
}

// Innovation and its variance for a position measurement.
void innovation(const Axis& a, double z, double r, double& y, double& s) {
    y = z - a.p;
    s = a.p00 + r;
}

void update(Axis& a, double y, double s) {
    const double k0 = a.p00 / s, k1 = a.p01 / s;
    a.p += k0 * y;
    a.v += k1 * y;
    const double p00 = a.p00, p01 = a.p01;
    a.p00 = (1 - k0) * p00;
    a.p01 = (1 - k0) * p01;
    a.p11 -= k1 * p01;
}

// A velocity measurement (H = [0 1]).
void update_velocity(Axis& a, double z, double r) {
    const double y = z - a.v, s = a.p11 + r;
    const double k0 = a.p01 / s, k1 = a.p11 / s;
    a.p += k0 * y;
    a.v += k1 * y;
    const double p01 = a.p01, p11 = a.p11;
    a.p00 -= k0 * p01;
    a.p01 -= k0 * p11;
    a.p11 -= k1 * p11;
}

} // namespace

FusionOutput fuse(const FixInput& in, const FusionConfig& cfg, bool smooth) {
    const std::size_t n = in.t.size();
    FusionOutput out;
    for (auto* v : {&out.e, &out.n, &out.u, &out.ve, &out.vn, &out.vu, &out.var_e, &out.var_n, &out.var_u,
                    &out.nis, &out.inflation, &out.r_e, &out.r_n, &out.r_u})
        v->assign(n, kNaN);
    out.status.assign(n, 0);
    out.segment.assign(n, 0);
    // Stored for the smoother, per fix and axis: filtered and predicted states.
    std::vector<std::array<Axis, 3>> filt(n), pred(n);
    std::vector<double> dts(n, 0.0);

    std::array<Axis, 3> x{};
    bool started = false;
    double last_t = 0;
    int rejects_in_row = 0;
    std::uint32_t segment = 0;
    std::array<double, 7> infl2;
    infl2.fill(1.0); // inflation squared, per quality class

    for (std::size_t i = 0; i < n; ++i) {
        const int q = in.quality[i];
        const bool valid = q >= 1 && q <= 6 && std::isfinite(in.e[i]) && std::isfinite(in.n[i]) &&
                           std::isfinite(in.u[i]) && std::isfinite(in.t[i]);
        // Measurement noise: the reported sigma, floored per class, inflated.
        double r[3] = {0, 0, 0};
        if (valid) {
            const double fl = cfg.floor_m[q], def = cfg.default_m[q];
            const double sn = std::isfinite(in.sigma_n[i]) ? std::max(in.sigma_n[i], fl) : def;
            const double se = std::isfinite(in.sigma_e[i]) ? std::max(in.sigma_e[i], fl) : def;
            const double su = std::isfinite(in.sigma_u[i]) ? std::max(in.sigma_u[i], fl * cfg.vertical_factor)
                                                           : def * cfg.vertical_factor;
            r[0] = se * se * infl2[q];
            r[1] = sn * sn * infl2[q];
            r[2] = su * su * infl2[q];
            out.r_e[i] = r[0];
            out.r_n[i] = r[1];
            out.r_u[i] = r[2];
        }
        const double z[3] = {in.e[i], in.n[i], in.u[i]};
        auto start_segment = [&](FixStatus why) {
            for (int k = 0; k < 3; ++k) {
                x[k].p = z[k];
                x[k].v = 0;
                x[k].p00 = r[k];
                x[k].p01 = 0;
                x[k].p11 = cfg.initial_speed_sigma * cfg.initial_speed_sigma;
            }
            if (started)
                ++segment;
            started = true;
            rejects_in_row = 0;
            last_t = in.t[i];
            out.status[i] = static_cast<std::uint8_t>(why);
            pred[i] = x;
            dts[i] = -1; // the smoother does not cross a segment start
        };
        if (!started) {
            if (!valid) {
                out.status[i] = static_cast<std::uint8_t>(FixStatus::invalid);
                dts[i] = -1;
                continue;
            }
            start_segment(FixStatus::first);
        } else {
            const double dt = in.t[i] - last_t;
            if (valid && dt > cfg.reinit_gap_s) {
                start_segment(FixStatus::reinit_gap);
            } else {
                for (auto& a : x)
                    predict(a, std::max(dt, 0.0), cfg.accel_psd);
                last_t = in.t[i];
                pred[i] = x;
                dts[i] = std::max(dt, 0.0);
                // Known to stand still: hold the velocity (and so the position
                // prediction) tight, which is what makes gating bite when parked.
                if (!in.speed_mps.empty() && std::isfinite(in.speed_mps[i]) &&
                    in.speed_mps[i] <= cfg.zupt_speed_mps) {
                    for (auto& a : x)
                        update_velocity(a, 0.0, cfg.zupt_sigma_mps * cfg.zupt_sigma_mps);
                }
                if (!valid) {
                    out.status[i] = static_cast<std::uint8_t>(FixStatus::invalid);
                } else {
                    double y[3], s[3], nis = 0;
                    for (int k = 0; k < 3; ++k) {
                        innovation(x[k], z[k], r[k], y[k], s[k]);
                        nis += y[k] * y[k] / s[k];
                    }
                    out.nis[i] = nis;
                    if (nis > cfg.gate_chi2) {
                        if (++rejects_in_row >= cfg.reinit_after_rejects) {
                            start_segment(FixStatus::reinit_rejects); // the vehicle really moved
                        } else {
                            out.status[i] = static_cast<std::uint8_t>(FixStatus::gated);
                        }
                    } else {
                        rejects_in_row = 0;
                        for (int k = 0; k < 3; ++k)
                            update(x[k], y[k], s[k]);
                        if (cfg.adapt_inflation) {
                            // Nudge the class inflation so that NIS averages its
                            // 3 degrees of freedom: the reported sigmas are optimistic.
                            const double ratio = std::clamp(nis / 3.0, 0.05, 20.0);
                            const double lim = cfg.max_inflation * cfg.max_inflation;
                            infl2[q] =
                                std::clamp(infl2[q] * std::exp(cfg.adapt_rate * std::log(ratio)), 1.0, lim);
                        }
                    }
                }
            }
        }
        filt[i] = x;
        out.inflation[i] = valid ? std::sqrt(infl2[q]) : kNaN;
        out.segment[i] = segment;
    }

    if (smooth && n > 1) {
        // RTS backward pass per axis within each segment.
        for (std::size_t i = n - 1; i-- > 0;) {
            if (dts[i + 1] < 0 || out.segment[i] != out.segment[i + 1] || !started)
                continue;
            const double dt = dts[i + 1];
            for (int k = 0; k < 3; ++k) {
                const Axis& f = filt[i][k];
                const Axis& p = pred[i + 1][k];
                const Axis& s = filt[i + 1][k]; // already smoothed
                // C = Pf F^T Pp^-1 (2x2)
                const double fp00 = f.p00 + dt * f.p01, fp01 = f.p01, fp10 = f.p01 + dt * f.p11, fp11 = f.p11;
                // Pf F^T = [[f00 + dt f01, f01], [f01 + dt f11, f11]] (rows: pos, vel)
                const double det = p.p00 * p.p11 - p.p01 * p.p01;
                if (!(det > 0))
                    continue;
                const double i00 = p.p11 / det, i01 = -p.p01 / det, i11 = p.p00 / det;
                const double c00 = fp00 * i00 + fp01 * i01, c01 = fp00 * i01 + fp01 * i11;
                const double c10 = fp10 * i00 + fp11 * i01, c11 = fp10 * i01 + fp11 * i11;
                const double dp = s.p - p.p, dv = s.v - p.v;
                Axis sm = f;
                sm.p = f.p + c00 * dp + c01 * dv;
                sm.v = f.v + c10 * dp + c11 * dv;
                const double d00 = s.p00 - p.p00, d01 = s.p01 - p.p01, d11 = s.p11 - p.p11;
                // P = Pf + C D C^T
                const double cd00 = c00 * d00 + c01 * d01, cd01 = c00 * d01 + c01 * d11;
                const double cd10 = c10 * d00 + c11 * d01, cd11 = c10 * d01 + c11 * d11;
                sm.p00 = f.p00 + cd00 * c00 + cd01 * c01;
                sm.p01 = f.p01 + cd00 * c10 + cd01 * c11;
                sm.p11 = f.p11 + cd10 * c10 + cd11 * c11;
                filt[i][k] = sm;
            }
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (out.status[i] == static_cast<std::uint8_t>(FixStatus::invalid) && !started)
            continue;
        const auto& s = filt[i];
        out.e[i] = s[0].p;
        out.n[i] = s[1].p;
        out.u[i] = s[2].p;
        out.ve[i] = s[0].v;
        out.vn[i] = s[1].v;
        out.vu[i] = s[2].v;
        out.var_e[i] = s[0].p00;
        out.var_n[i] = s[1].p00;
        out.var_u[i] = s[2].p00;
    }
    return out;
}

} // namespace autolien::gnss
