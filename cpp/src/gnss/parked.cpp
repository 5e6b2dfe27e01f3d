#include "autolien/gnss/parked.hpp"

#include <algorithm>
#include <cmath>

namespace autolien::gnss {

namespace {

constexpr std::uint32_t kMinRunFixes = 3;
constexpr int kMaxDrops = 8;

// The variance of the time average of a Gauss-Markov process over `x` time
// constants, as a fraction of the process variance: 2 (x - 1 + e^-x) / x^2.
double avg_fraction(double x) {
    if (x < 1e-3)
        return 1.0 - x / 3.0;
    return 2.0 * (x - 1.0 + std::exp(-x)) / (x * x);
}

// One run: consecutive fixes of one quality class sharing one bias.
struct Run {
    bool open = false;
    std::uint32_t count = 0;
    double t0 = 0, t1 = 0;
    double last_var = 0;          // horizontal variance of the run's last fix
    double w[3] = {}, s[3] = {};  // per axis (e, n, u): sums of 1/var and x/var
    double m[3] = {}, vw[3] = {}; // the run's mean and its white-noise variance
    double V[3] = {}, W[3] = {};  // the mean's variance about the truth (white + bias), 1/V
};

struct Sums {
    double W[3] = {}, WX[3] = {}, WX2[3] = {};
    std::uint32_t runs = 0;
    void add(const Run& r) {
        for (int a = 0; a < 3; ++a) {
            W[a] += r.W[a];
            WX[a] += r.W[a] * r.m[a];
            WX2[a] += r.W[a] * r.m[a] * r.m[a];
        }
        ++runs;
    }
    void add(const Sums& o) {
        for (int a = 0; a < 3; ++a) {
            W[a] += o.W[a];
            WX[a] += o.WX[a];
            WX2[a] += o.WX2[a];
        }
        runs += o.runs;
    }
    [[nodiscard]] double mean(int a) const { return WX[a] / W[a]; }
    // 1/sum(W), scaled up by the Birge ratio when the runs disagree more than
    // their variances allow (a model that is too optimistic shows here).
    [[nodiscard]] double var(int a) const {
        const double v = 1.0 / W[a];
        if (runs < 2)
            return v;
        const double chi2 = std::max(0.0, WX2[a] - WX[a] * WX[a] / W[a]);
        return v * std::max(1.0, chi2 / double(runs - 1));
    }
};

// A finished cluster: its runs folded into sums, and how it ended.
struct Closed {
    std::vector<Run> runs;
    Sums sums; // of the runs the position uses
    std::size_t first = 0, last = 0;
    std::uint32_t count = 0;
    bool moved = false;
    std::size_t ev_first = 0, ev_last = 0;
    bool any_speed = false, driving = false;
    double silence = 0;
};

// The position from a cluster's runs. Runs of fewer than min_fixes fixes do
// not count when longer ones exist (the fix that started a cluster after a
// move may still be moving), and with three runs or more the one most at odds
// with the rest is dropped while it fails the gate: a wrong integer fix, or a
// stale anchor, must not pull the position.
Sums estimate(const std::vector<Run>& runs, double gate_chi2, std::uint32_t min_fixes) {
    std::vector<char> use(runs.size(), 1);
    const bool any_long =
        std::any_of(runs.begin(), runs.end(), [&](const Run& r) { return r.count >= min_fixes; });
    if (any_long)
        for (std::size_t k = 0; k < runs.size(); ++k)
            use[k] = runs[k].count >= min_fixes;
    // At most kMaxDrops runs dropped: bounded work however many runs there are.
    for (int drops = 0;; ++drops) {
        Sums s;
        for (std::size_t k = 0; k < runs.size(); ++k)
            if (use[k])
                s.add(runs[k]);
        if (s.runs < 3)
            return s;
        double worst = 0;
        std::size_t at = 0;
        for (std::size_t k = 0; k < runs.size(); ++k) {
            if (!use[k])
                continue;
            const Run& r = runs[k];
            double chi2 = 0;
            for (int a = 0; a < 2; ++a) {
                const double S = s.W[a] - r.W[a];
                const double d = r.m[a] - (s.WX[a] - r.W[a] * r.m[a]) / S;
                chi2 += d * d / (r.V[a] + 1.0 / S);
            }
            if (chi2 > worst) {
                worst = chi2;
                at = k;
            }
        }
        if (worst <= gate_chi2 || drops == kMaxDrops)
            return s;
        use[at] = 0;
    }
}

} // namespace

ParkOutput find_parked(const ParkInput& in, const ParkConfig& cfg) {
    ParkOutput out;
    const std::size_t n = in.t.size();
    const double vf2 = cfg.vertical_factor * cfg.vertical_factor;
    const double reset2 = cfg.reset_sigma_ratio * cfg.reset_sigma_ratio;

    auto cls = [&](std::size_t i) {
        if (in.quality.empty())
            return 0;
        const int q = in.quality[i];
        return q >= 0 && q < 7 ? q : 0;
    };
    auto bias2 = [&](int q, int a) {
        const double b = cfg.bias_m[std::size_t(q)];
        return a == 2 ? b * b * vf2 : b * b;
    };
    auto usable = [&](std::size_t i) {
        return std::isfinite(in.e[i]) && std::isfinite(in.n[i]) && std::isfinite(in.var_e[i]) &&
               std::isfinite(in.var_n[i]) && in.var_e[i] > 0 && in.var_n[i] > 0;
    };
    auto driving = [&](std::size_t i) {
        return std::isfinite(in.speed_mps[i]) && in.speed_mps[i] > cfg.stationary_mps;
    };
    auto var_of = [&](std::size_t i, int a) {
        if (a == 0)
            return in.var_e[i];
        if (a == 1)
            return in.var_n[i];
        // No usable height variance: the fix still places the car, with no say on u.
        return std::isfinite(in.u[i]) && std::isfinite(in.var_u[i]) && in.var_u[i] > 0 ? in.var_u[i] : 1e12;
    };
    auto pos_of = [&](std::size_t i, int a) {
        if (a == 0)
            return in.e[i];
        if (a == 1)
            return in.n[i];
        return std::isfinite(in.u[i]) ? in.u[i] : 0.0;
    };

    // The open cluster: closed runs in sums, one open run per class.
    Sums closed, closed_short;   // closed runs: long ones, and all of them
    std::uint32_t long_runs = 0; // closed or open, of kMinRunFixes fixes or more
    std::vector<Run> done;       // the closed runs themselves
    std::array<Run, 7> runs{};
    std::size_t c_first = 0, c_last = 0;
    std::uint32_t c_count = 0;
    std::vector<std::size_t> pending; // inconsistent fixes since the last consistent one
    std::vector<Closed> episodes;

    auto refresh = [&](Run& r, int q) {
        const double dur = r.t1 - r.t0;
        const double n_eff = std::min(double(r.count), 1.0 + dur / cfg.correlation_s);
        const double g = avg_fraction(dur / cfg.bias_time_s);
        for (int a = 0; a < 3; ++a) {
            r.m[a] = r.s[a] / r.w[a];
            r.vw[a] = double(r.count) / n_eff / r.w[a];
            r.V[a] = r.vw[a] + bias2(q, a) * g;
            r.W[a] = 1.0 / r.V[a];
        }
    };
    // Whether a run counts towards the cluster's position: short runs only
    // while there is no long one (as in estimate()).
    auto counts = [&](const Run& r) { return r.open && (r.count >= kMinRunFixes || long_runs == 0); };
    auto total = [&](int a, double& S, double& X) {
        const Sums& base = long_runs > 0 ? closed : closed_short;
        S = base.W[a];
        double sx = base.WX[a];
        for (const Run& r : runs)
            if (counts(r)) {
                S += r.W[a];
                sx += r.W[a] * r.m[a];
            }
        X = S > 0 ? sx / S : 0.0;
    };
    auto continues = [&](std::size_t i, int q) {
        const Run& r = runs[std::size_t(q)];
        return r.open && in.t[i] - r.t1 <= cfg.reacquire_gap_s && in.var_e[i] <= reset2 * r.last_var;
    };
    // The chi-square of fix i against the cluster's position (horizontal).
    auto chi2_of = [&](std::size_t i) {
        const int q = cls(i);
        const Run& r = runs[std::size_t(q)];
        const bool cont = continues(i, q) && counts(r);
        double chi2 = 0;
        for (int a = 0; a < 2; ++a) {
            double S, X;
            total(a, S, X);
            const double d = pos_of(i, a) - X, b2 = bias2(q, a);
            double v;
            if (cont) {
                // The fix shares its run's bias, up to the drift since the run began.
                const double al = r.W[a] / S;
                const double drift = std::min(1.0, (in.t[i] - r.t0) / cfg.bias_time_s);
                v = var_of(i, a) + (1 - al) * (1 - al) * b2 + al * al * (r.vw[a] + b2 * drift) +
                    (S - r.W[a]) / (S * S);
            } else {
                v = var_of(i, a) + b2 + 1.0 / S;
            }
            chi2 += d * d / v;
        }
        return chi2;
    };
    auto join = [&](std::size_t i) {
        const int q = cls(i);
        Run& r = runs[std::size_t(q)];
        if (!continues(i, q)) {
            if (r.open) {
                if (r.count >= kMinRunFixes)
                    closed.add(r);
                closed_short.add(r);
                done.push_back(r);
            }
            r = Run{};
            r.open = true;
            r.t0 = in.t[i];
        }
        if (c_count == 0)
            c_first = i;
        c_last = i;
        ++c_count;
        if (++r.count == kMinRunFixes)
            ++long_runs;
        r.t1 = in.t[i];
        r.last_var = in.var_e[i];
        for (int a = 0; a < 3; ++a) {
            const double v = var_of(i, a);
            r.w[a] += 1 / v;
            r.s[a] += pos_of(i, a) / v;
        }
        refresh(r, q);
    };
    auto close = [&](bool moved) {
        if (c_count == 0)
            return;
        if (in.t[c_last] - in.t[c_first] >= cfg.min_duration_s) {
            Closed ep;
            ep.runs = std::move(done);
            for (const Run& r : runs)
                if (r.open)
                    ep.runs.push_back(r);
            ep.sums = estimate(ep.runs, cfg.gate_chi2, kMinRunFixes);
            ep.first = c_first;
            ep.last = c_last;
            ep.count = c_count;
            if (moved && !pending.empty()) {
                ep.moved = true;
                ep.ev_first = pending.front();
                ep.ev_last = pending.back();
                ep.any_speed = std::any_of(pending.begin(), pending.end(),
                                           [&](std::size_t j) { return std::isfinite(in.speed_mps[j]); });
                ep.driving = std::any_of(pending.begin(), pending.end(), driving);
                ep.silence = in.t[pending.front()] - in.t[c_last];
            }
            episodes.push_back(ep);
        }
        closed = Sums{};
        closed_short = Sums{};
        long_runs = 0;
        done.clear();
        runs = {};
        c_count = 0;
    };

    for (std::size_t i = 0; i < n; ++i) {
        if (!usable(i))
            continue;
        if (c_count == 0) {
            if (!driving(i))
                join(i);
            continue;
        }
        if (!driving(i) && chi2_of(i) <= cfg.gate_chi2) {
            pending.clear(); // those were outliers
            join(i);
            continue;
        }
        pending.push_back(i);
        if (int(pending.size()) >= cfg.confirm) {
            close(true);
            // A new cluster starts from the confirming fix unless it is driving.
            if (!driving(pending.back()))
                join(pending.back());
            pending.clear();
        }
    }
    close(false);

    // Consecutive episodes at one place are one: the break was a transition
    // between runs (a reset, float to fixed, a wrong fix), not a move.
    const double bt = cfg.bias_m[std::size_t(std::clamp(cfg.transition_class, 0, 6))];
    auto same_place = [&](const Closed& a, const Closed& b) {
        Sums m = a.sums;
        m.add(b.sums);
        double chi2 = 0;
        for (int ax = 0; ax < 2; ++ax) {
            const double d = a.sums.mean(ax) - b.sums.mean(ax);
            chi2 += d * d / (a.sums.var(ax) + b.sums.var(ax) + bt * bt);
        }
        if (chi2 > cfg.gate_chi2)
            return false;
        int off_in_row = 0;
        for (std::size_t i = a.last + 1; i < b.first; ++i) {
            if (!usable(i))
                continue;
            if (driving(i))
                return false;
            double c = 0;
            for (int ax = 0; ax < 2; ++ax) {
                const double d = pos_of(i, ax) - m.mean(ax);
                const double bb = std::max(cfg.bias_m[std::size_t(cls(i))], bt);
                c += d * d / (var_of(i, ax) + bb * bb + m.var(ax));
            }
            off_in_row = c > cfg.gate_chi2 ? off_in_row + 1 : 0;
            if (off_in_row >= cfg.confirm)
                return false;
        }
        return true;
    };
    std::vector<Closed> merged;
    for (auto& ep : episodes) {
        if (!merged.empty() && merged.back().moved && same_place(merged.back(), ep)) {
            Closed& m = merged.back();
            m.runs.insert(m.runs.end(), ep.runs.begin(), ep.runs.end());
            m.sums = estimate(m.runs, cfg.gate_chi2, kMinRunFixes);
            m.last = ep.last;
            m.count += ep.count;
            m.moved = ep.moved;
            m.ev_first = ep.ev_first;
            m.ev_last = ep.ev_last;
            m.any_speed = ep.any_speed;
            m.driving = ep.driving;
            m.silence = ep.silence;
        } else {
            merged.push_back(ep);
        }
    }

    for (const auto& c : merged) {
        ParkedEpisode ep;
        ep.first = c.first;
        ep.last = c.last;
        ep.n_fixes = c.count;
        ep.e = c.sums.mean(0);
        ep.n = c.sums.mean(1);
        ep.u = c.sums.mean(2);
        ep.var_e = c.sums.var(0);
        ep.var_n = c.sums.var(1);
        ep.var_u = c.sums.var(2);
        out.episodes.push_back(ep);
        if (!c.moved)
            continue;
        MoveEvent mv;
        mv.episode = out.episodes.size() - 1;
        mv.first_fix = c.ev_first;
        mv.last_fix = c.ev_last;
        const std::size_t k = c.ev_last;
        mv.distance_m = std::hypot(in.e[k] - ep.e, in.n[k] - ep.n);
        const int qk = cls(k);
        mv.sigma_m = std::sqrt(ep.var_e + ep.var_n + in.var_e[k] + in.var_n[k] + bias2(qk, 0) + bias2(qk, 1));
        if (c.any_speed)
            mv.kind = c.driving ? MoveKind::departure : MoveKind::displacement;
        else if (c.silence >= cfg.offline_gap_s)
            mv.kind = MoveKind::relocated_offline;
        else
            mv.kind = MoveKind::unexplained;
        out.moves.push_back(mv);
    }
    return out;
}

} // namespace autolien::gnss
