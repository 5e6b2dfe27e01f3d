#include "autolien/gnss/fusion.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autolien/kernels/kf_cv.hpp"

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

// The shared step's state (kernels/kf_cv.hpp) as the smoother stores it.
State to_state(const kernels::KfState& k) {
    State s;
    for (int i = 0; i < 4; ++i) {
        s.h.x[i] = k.x[i];
        for (int j = 0; j < 4; ++j)
            s.h.P[i][j] = k.P[i][j];
    }
    s.u.p = k.up;
    s.u.v = k.uv;
    s.u.p00 = k.u00;
    s.u.p01 = k.u01;
    s.u.p11 = k.u11;
    return s;
}

kernels::KfConfig to_kf_config(const FusionConfig& cfg) {
    kernels::KfConfig c{};
    for (int q = 0; q < 7; ++q) {
        c.floor_m[q] = cfg.floor_m[static_cast<std::size_t>(q)];
        c.default_m[q] = cfg.default_m[static_cast<std::size_t>(q)];
    }
    c.vertical_factor = cfg.vertical_factor;
    c.accel_psd = cfg.accel_psd;
    c.gate_chi2 = cfg.gate_chi2;
    c.reinit_gap_s = cfg.reinit_gap_s;
    c.reinit_after_rejects = cfg.reinit_after_rejects;
    c.adapt_inflation = cfg.adapt_inflation ? 1 : 0;
    c.adapt_rate = cfg.adapt_rate;
    c.max_inflation = cfg.max_inflation;
    c.initial_speed_sigma = cfg.initial_speed_sigma;
    c.zupt_speed_mps = cfg.zupt_speed_mps;
    c.zupt_sigma_mps = cfg.zupt_sigma_mps;
    c.speed_sigma_mps = cfg.speed_sigma_mps;
    c.speed_sigma_fraction = cfg.speed_sigma_fraction;
    c.min_heading_speed_mps = cfg.min_heading_speed_mps;
    return c;
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

    // The forward pass is the shared step (kernels/kf_cv.hpp), the one the
    // GPU kernel runs: predict, zero-velocity/speed updates, gating, the
    // position update and the class inflation.
    const kernels::KfConfig kc = to_kf_config(cfg);
    kernels::KfState ks;
    kernels::kf_init(ks);
    std::size_t first_used = n;
    for (std::size_t i = 0; i < n; ++i) {
        const kernels::KfFix fix{in.t[i],       in.e[i],       in.n[i],
                                 in.u[i],       in.quality[i], in.sigma_n[i],
                                 in.sigma_e[i], in.sigma_u[i], in.speed_mps.empty() ? kNaN : in.speed_mps[i]};
        const double dt = in.t[i] - ks.last_t; // before the step moves last_t
        kernels::KfState predicted{};
        kernels::KfOut o;
        kernels::kf_step(ks, fix, kc, o, keep ? &predicted : nullptr);
        out.status[i] = o.status;
        out.nis[i] = o.nis;
        out.r_e[i] = o.r_e;
        out.r_n[i] = o.r_n;
        out.r_u[i] = o.r_u;
        if (!ks.started) { // before the first valid fix: no state, the row stays NaN
            dts[i] = -1;
            continue;
        }
        if (first_used == n)
            first_used = i;
        const bool starts = o.status == kernels::kf_first || o.status == kernels::kf_reinit_gap ||
                            o.status == kernels::kf_reinit_rejects;
        dts[i] = starts ? -1 : std::max(dt, 0.0); // the smoother does not cross a segment start
        if (keep) {
            pred[i] = to_state(predicted);
            filt[i] = to_state(ks);
        } else {
            emit(i, to_state(ks));
        }
        out.inflation[i] = o.inflation;
        out.segment[i] = o.segment;
    }
    const bool started = ks.started != 0;

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
