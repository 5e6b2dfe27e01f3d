#include "autolien/gnss/parked.hpp"

#include <algorithm>
#include <cmath>

namespace autolien::gnss {

namespace {

struct Cluster {
    std::size_t first = 0, last = 0;
    std::uint32_t count = 0;
    double we = 0, wn = 0, wu = 0; // sums of weights (1/var)
    double se = 0, sn = 0, su = 0; // weighted sums
    double qe = 0, qn = 0;         // weighted sums of squares (scatter)
    double min_ve = 1e300, min_vn = 1e300;
    void add(std::size_t i, double e, double n, double u, double ve, double vn, double vu) {
        if (count == 0)
            first = i;
        last = i;
        ++count;
        we += 1 / ve;
        wn += 1 / vn;
        wu += 1 / vu;
        se += e / ve;
        sn += n / vn;
        su += u / vu;
        qe += e * e / ve;
        qn += n * n / vn;
        min_ve = std::min(min_ve, ve);
        min_vn = std::min(min_vn, vn);
    }
    // GNSS errors at rest are biases that drift over minutes (float
    // ambiguities, multipath), so averaging never beats the best single fix:
    // the mean's variance is floored at the smallest fix variance.
    [[nodiscard]] double var_me() const { return std::max(1 / we, min_ve); }
    [[nodiscard]] double var_mn() const { return std::max(1 / wn, min_vn); }
    [[nodiscard]] double me() const { return se / we; }
    [[nodiscard]] double mn() const { return sn / wn; }
};

} // namespace

ParkOutput find_parked(const ParkInput& in, const ParkConfig& cfg) {
    ParkOutput out;
    const std::size_t n = in.t.size();
    Cluster cur;
    std::vector<std::size_t> pending; // inconsistent fixes since the last consistent one

    auto usable = [&](std::size_t i) {
        return std::isfinite(in.e[i]) && std::isfinite(in.n[i]) && std::isfinite(in.var_e[i]) &&
               std::isfinite(in.var_n[i]) && in.var_e[i] > 0 && in.var_n[i] > 0;
    };
    auto vu_of = [&](std::size_t i) {
        return std::isfinite(in.u[i]) && std::isfinite(in.var_u[i]) && in.var_u[i] > 0 ? in.var_u[i] : 1e12;
    };
    auto close = [&](bool moved) {
        if (cur.count == 0)
            return;
        const double dur = in.t[cur.last] - in.t[cur.first];
        if (dur >= cfg.min_duration_s) {
            ParkedEpisode ep;
            ep.first = cur.first;
            ep.last = cur.last;
            ep.n_fixes = cur.count;
            ep.e = cur.me();
            ep.n = cur.mn();
            ep.u = cur.su / cur.wu;
            // Errors are correlated over `correlation_s`, so the scatter counts
            // as that many independent samples, not as `count`; the variance is
            // the larger of that and the formal 1/sum(w).
            const double n_eff = std::max(1.0, dur / cfg.correlation_s);
            const double ve = std::max(0.0, cur.qe / cur.we - ep.e * ep.e);
            const double vn = std::max(0.0, cur.qn / cur.wn - ep.n * ep.n);
            ep.var_e = std::max(cur.var_me(), ve / n_eff);
            ep.var_n = std::max(cur.var_mn(), vn / n_eff);
            ep.var_u = 1 / cur.wu;
            out.episodes.push_back(ep);
            if (moved && !pending.empty()) {
                MoveEvent mv;
                mv.episode = out.episodes.size() - 1;
                mv.first_fix = pending.front();
                mv.last_fix = pending.back();
                const std::size_t k = pending.back();
                mv.distance_m = std::hypot(in.e[k] - ep.e, in.n[k] - ep.n);
                mv.sigma_m = std::sqrt(ep.var_e + ep.var_n + in.var_e[k] + in.var_n[k]);
                bool any_speed = false, moving = false;
                for (const auto j : pending) {
                    if (std::isfinite(in.speed_mps[j])) {
                        any_speed = true;
                        moving = moving || in.speed_mps[j] > cfg.stationary_mps;
                    }
                }
                const double silence = in.t[pending.front()] - in.t[cur.last];
                if (any_speed)
                    mv.kind = moving ? MoveKind::departure : MoveKind::displacement;
                else if (silence >= cfg.offline_gap_s)
                    mv.kind = MoveKind::relocated_offline;
                else
                    mv.kind = MoveKind::unexplained;
                out.moves.push_back(mv);
            }
        }
        cur = Cluster{};
    };

    for (std::size_t i = 0; i < n; ++i) {
        if (!usable(i))
            continue;
        const double e = in.e[i], no = in.n[i], ve = in.var_e[i], vn = in.var_n[i];
        const bool driving = std::isfinite(in.speed_mps[i]) && in.speed_mps[i] > cfg.stationary_mps;
        bool consistent = false;
        if (cur.count > 0 && !driving) {
            const double de = e - cur.me(), dn = no - cur.mn();
            consistent = de * de / (ve + cur.var_me()) + dn * dn / (vn + cur.var_mn()) <= cfg.gate_chi2;
        }
        if (cur.count == 0) {
            if (!driving)
                cur.add(i, e, no, in.u[i], ve, vn, vu_of(i));
            continue;
        }
        if (consistent) {
            pending.clear(); // those were outliers
            cur.add(i, e, no, in.u[i], ve, vn, vu_of(i));
            continue;
        }
        pending.push_back(i);
        if (int(pending.size()) >= cfg.confirm) {
            close(true);
            // A new cluster starts from the confirming fix unless it is driving.
            const std::size_t j = pending.back();
            if (!(std::isfinite(in.speed_mps[j]) && in.speed_mps[j] > cfg.stationary_mps))
                cur.add(j, in.e[j], in.n[j], in.u[j], in.var_e[j], in.var_n[j], vu_of(j));
            pending.clear();
        }
    }
    close(false);
    return out;
}

} // namespace autolien::gnss
