#include "autolien/gnss/fusion.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace autolien::gnss {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Horizontal state [e, ve, n, vn] with a full covariance: a speed measurement
// couples the two axes, so they cannot be filtered apart. Without speed the
// cross blocks stay zero and this equals two independent 2-state filters.
struct Horiz {
    double x[4] = {0, 0, 0, 0};
    double P[4][4] = {};
};

// Vertical [u, vu]: never coupled.
struct Axis {
    double p = 0, v = 0;
    double p00 = 0, p01 = 0, p11 = 0;
};

void predict(Axis& a, double dt, double q) {
    a.p += a.v * dt;
    const double dt2 = dt * dt;
    a.p00 += 2 * dt * a.p01 + dt2 * a.p11 + q * dt2 * dt / 3.0;
    a.p01 += dt * a.p11 + q * dt2 / 2.0;
    a.p11 += q * dt;
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

// F = blockdiag(F1, F1), F1 = [[1, dt], [0, 1]]; Q likewise.
void predict(Horiz& h, double dt, double q) {
    h.x[0] += dt * h.x[1];
    h.x[2] += dt * h.x[3];
    double (&P)[4][4] = h.P;
    // P <- F P: rows 0 and 2 gain dt x rows 1 and 3.
    for (int j = 0; j < 4; ++j) {
        P[0][j] += dt * P[1][j];
        P[2][j] += dt * P[3][j];
    }
    // P <- P F^T: columns 0 and 2 gain dt x columns 1 and 3.
    for (int i = 0; i < 4; ++i) {
        P[i][0] += dt * P[i][1];
        P[i][2] += dt * P[i][3];
    }
    const double dt2 = dt * dt;
    for (int b = 0; b < 4; b += 2) {
        P[b][b] += q * dt2 * dt / 3.0;
        P[b][b + 1] += q * dt2 / 2.0;
        P[b + 1][b] += q * dt2 / 2.0;
        P[b + 1][b + 1] += q * dt;
    }
}

// A scalar measurement with row H (4 entries), innovation y and noise r.
void update(Horiz& h, const double (&H)[4], double y, double r) {
    double PH[4];
    for (int i = 0; i < 4; ++i)
        PH[i] = h.P[i][0] * H[0] + h.P[i][1] * H[1] + h.P[i][2] * H[2] + h.P[i][3] * H[3];
    const double s = H[0] * PH[0] + H[1] * PH[1] + H[2] * PH[2] + H[3] * PH[3] + r;
    if (!(s > 0))
        return;
    for (int i = 0; i < 4; ++i)
        h.x[i] += PH[i] / s * y;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            h.P[i][j] -= PH[i] * PH[j] / s;
}

// Inverse of a symmetric positive-definite 4x4 by Gauss-Jordan with partial
// pivoting; false when singular.
bool invert4(const double (&A)[4][4], double (&out)[4][4]) {
    double m[4][8];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 8; ++j)
            m[i][j] = j < 4 ? A[i][j] : (j - 4 == i ? 1.0 : 0.0);
    for (int c = 0; c < 4; ++c) {
        int piv = c;
        for (int r = c + 1; r < 4; ++r)
            if (std::abs(m[r][c]) > std::abs(m[piv][c]))
                piv = r;
        if (!(std::abs(m[piv][c]) > 0))
            return false;
        if (piv != c)
            for (int j = 0; j < 8; ++j)
                std::swap(m[c][j], m[piv][j]);
        const double d = m[c][c];
        for (int j = 0; j < 8; ++j)
            m[c][j] /= d;
        for (int r = 0; r < 4; ++r) {
            if (r == c)
                continue;
            const double f = m[r][c];
            for (int j = 0; j < 8; ++j)
                m[r][j] -= f * m[c][j];
        }
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            out[i][j] = m[i][j + 4];
    return true;
}

struct State {
    Horiz h;
    Axis u;
};

} // namespace

FusionOutput fuse(const FixInput& in, const FusionConfig& cfg, bool smooth) {
    const std::size_t n = in.t.size();
    FusionOutput out;
    for (auto* v : {&out.e, &out.n, &out.u, &out.ve, &out.vn, &out.vu, &out.var_e, &out.var_n, &out.var_u,
                    &out.nis, &out.inflation, &out.r_e, &out.r_n, &out.r_u})
        v->assign(n, kNaN);
    out.status.assign(n, 0);
    out.segment.assign(n, 0);
    // Stored for the smoother only, per fix: filtered and predicted states
    // (200 bytes each; a filter-only run writes its output as it goes).
    const bool keep = smooth && n > 1;
    std::vector<State> filt(keep ? n : 0), pred(keep ? n : 0);
    auto emit = [&](std::size_t i, const State& s) {
        out.e[i] = s.h.x[0];
        out.n[i] = s.h.x[2];
        out.u[i] = s.u.p;
        out.ve[i] = s.h.x[1];
        out.vn[i] = s.h.x[3];
        out.vu[i] = s.u.v;
        out.var_e[i] = s.h.P[0][0];
        out.var_n[i] = s.h.P[2][2];
        out.var_u[i] = s.u.p00;
    };
    std::vector<double> dts(n, 0.0);

    State x{};
    bool started = false;
    std::size_t first_used = n;
    double last_t = 0;
    int rejects_in_row = 0;
    std::uint32_t segment = 0;
    std::array<double, 7> infl2;
    infl2.fill(1.0); // inflation squared, per quality class
    const double v0 = cfg.initial_speed_sigma * cfg.initial_speed_sigma;
    constexpr double He[4] = {1, 0, 0, 0}, Hn[4] = {0, 0, 1, 0};
    constexpr double Hve[4] = {0, 1, 0, 0}, Hvn[4] = {0, 0, 0, 1};

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
            x = State{};
            x.h.x[0] = z[0];
            x.h.x[2] = z[1];
            x.h.P[0][0] = r[0];
            x.h.P[1][1] = v0;
            x.h.P[2][2] = r[1];
            x.h.P[3][3] = v0;
            x.u.p = z[2];
            x.u.p00 = r[2];
            x.u.p11 = v0;
            if (started)
                ++segment;
            else
                first_used = i;
            started = true;
            rejects_in_row = 0;
            last_t = in.t[i];
            out.status[i] = static_cast<std::uint8_t>(why);
            if (keep)
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
                const double step = std::max(dt, 0.0);
                predict(x.h, step, cfg.accel_psd);
                predict(x.u, step, cfg.accel_psd);
                last_t = in.t[i];
                if (keep)
                    pred[i] = x;
                dts[i] = step;
                const double speed = in.speed_mps.empty() ? kNaN : in.speed_mps[i];
                if (std::isfinite(speed) && speed <= cfg.zupt_speed_mps) {
                    // Known to stand still: hold the velocity (and so the position
                    // prediction) tight, which is what makes gating bite when parked.
                    const double rz = cfg.zupt_sigma_mps * cfg.zupt_sigma_mps;
                    update(x.h, Hve, -x.h.x[1], rz);
                    update(x.h, Hvn, -x.h.x[3], rz);
                    update_velocity(x.u, 0.0, rz);
                } else if (std::isfinite(speed)) {
                    // Reported ground speed: |v_h| linearised at the prediction
                    // (an extended Kalman update). The heading must be known, so
                    // below min_heading_speed_mps the fix's position does the work.
                    const double ve = x.h.x[1], vn = x.h.x[3], vh = std::hypot(ve, vn);
                    if (vh >= cfg.min_heading_speed_mps) {
                        const double H[4] = {0, ve / vh, 0, vn / vh};
                        const double sig = std::max(cfg.speed_sigma_mps, cfg.speed_sigma_fraction * speed);
                        update(x.h, H, speed - vh, sig * sig);
                    }
                }
                if (!valid) {
                    out.status[i] = static_cast<std::uint8_t>(FixStatus::invalid);
                } else {
                    // Joint NIS over (e, n, u): the horizontal innovation covariance
                    // is 2x2 (coupled once speed has been used).
                    const double ye = z[0] - x.h.x[0], yn = z[1] - x.h.x[2], yu = z[2] - x.u.p;
                    const double s00 = x.h.P[0][0] + r[0], s11 = x.h.P[2][2] + r[1], s01 = x.h.P[0][2];
                    const double det = s00 * s11 - s01 * s01;
                    const double su = x.u.p00 + r[2];
                    const double nis =
                        (s11 * ye * ye - 2 * s01 * ye * yn + s00 * yn * yn) / det + yu * yu / su;
                    out.nis[i] = nis;
                    if (!(nis <= cfg.gate_chi2)) {
                        if (++rejects_in_row >= cfg.reinit_after_rejects) {
                            start_segment(FixStatus::reinit_rejects); // the vehicle really moved
                        } else {
                            out.status[i] = static_cast<std::uint8_t>(FixStatus::gated);
                        }
                    } else {
                        rejects_in_row = 0;
                        // Diagonal R: sequential scalar updates equal the joint one.
                        update(x.h, He, z[0] - x.h.x[0], r[0]);
                        update(x.h, Hn, z[1] - x.h.x[2], r[1]);
                        update(x.u, yu, su);
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
        if (keep)
            filt[i] = x;
        else
            emit(i, x);
        out.inflation[i] = valid ? std::sqrt(infl2[q]) : kNaN;
        out.segment[i] = segment;
    }

    if (keep) {
        // RTS backward pass within each segment.
        for (std::size_t i = n - 1; i-- > 0;) {
            if (dts[i + 1] < 0 || out.segment[i] != out.segment[i + 1] || !started)
                continue;
            const double dt = dts[i + 1];
            // Horizontal: C = Pf F^T Pp^-1.
            {
                const Horiz& f = filt[i].h;
                const Horiz& p = pred[i + 1].h;
                const Horiz& s = filt[i + 1].h; // already smoothed
                double Pinv[4][4];
                if (invert4(p.P, Pinv)) {
                    double PfFt[4][4];
                    for (int a = 0; a < 4; ++a)
                        for (int b = 0; b < 4; ++b)
                            PfFt[a][b] = f.P[a][b] + ((b == 0 || b == 2) ? dt * f.P[a][b + 1] : 0.0);
                    double C[4][4];
                    for (int a = 0; a < 4; ++a)
                        for (int b = 0; b < 4; ++b) {
                            double acc = 0;
                            for (int k = 0; k < 4; ++k)
                                acc += PfFt[a][k] * Pinv[k][b];
                            C[a][b] = acc;
                        }
                    Horiz sm = f;
                    double dx[4], D[4][4];
                    for (int a = 0; a < 4; ++a) {
                        dx[a] = s.x[a] - p.x[a];
                        for (int b = 0; b < 4; ++b)
                            D[a][b] = s.P[a][b] - p.P[a][b];
                    }
                    for (int a = 0; a < 4; ++a)
                        for (int k = 0; k < 4; ++k)
                            sm.x[a] += C[a][k] * dx[k];
                    double CD[4][4];
                    for (int a = 0; a < 4; ++a)
                        for (int b = 0; b < 4; ++b) {
                            double acc = 0;
                            for (int k = 0; k < 4; ++k)
                                acc += C[a][k] * D[k][b];
                            CD[a][b] = acc;
                        }
                    for (int a = 0; a < 4; ++a)
                        for (int b = 0; b < 4; ++b) {
                            double acc = 0;
                            for (int k = 0; k < 4; ++k)
                                acc += CD[a][k] * C[b][k];
                            sm.P[a][b] = f.P[a][b] + acc;
                        }
                    filt[i].h = sm;
                }
            }
            // Vertical, 2x2 in closed form.
            {
                const Axis& f = filt[i].u;
                const Axis& p = pred[i + 1].u;
                const Axis& s = filt[i + 1].u;
                const double fp00 = f.p00 + dt * f.p01, fp01 = f.p01, fp10 = f.p01 + dt * f.p11, fp11 = f.p11;
                const double det = p.p00 * p.p11 - p.p01 * p.p01;
                if (det > 0) {
                    const double i00 = p.p11 / det, i01 = -p.p01 / det, i11 = p.p00 / det;
                    const double c00 = fp00 * i00 + fp01 * i01, c01 = fp00 * i01 + fp01 * i11;
                    const double c10 = fp10 * i00 + fp11 * i01, c11 = fp10 * i01 + fp11 * i11;
                    const double dp = s.p - p.p, dv = s.v - p.v;
                    Axis sm = f;
                    sm.p = f.p + c00 * dp + c01 * dv;
                    sm.v = f.v + c10 * dp + c11 * dv;
                    const double d00 = s.p00 - p.p00, d01 = s.p01 - p.p01, d11 = s.p11 - p.p11;
                    const double cd00 = c00 * d00 + c01 * d01, cd01 = c00 * d01 + c01 * d11;
                    const double cd10 = c10 * d00 + c11 * d01, cd11 = c10 * d01 + c11 * d11;
                    sm.p00 = f.p00 + cd00 * c00 + cd01 * c01;
                    sm.p01 = f.p01 + cd00 * c10 + cd01 * c11;
                    sm.p11 = f.p11 + cd10 * c10 + cd11 * c11;
                    filt[i].u = sm;
                }
            }
        }
    }
    if (keep)
        for (std::size_t i = first_used; i < n; ++i) // none before the first valid fix
            emit(i, filt[i]);
    return out;
}

} // namespace autolien::gnss
