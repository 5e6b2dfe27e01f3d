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
    auto driving = [&](std::size_t i) {
        return std::isfinite(in.speed_mps[i]) && in.speed_mps[i] > cfg.stationary_mps;
    };
    auto join = [&](std::size_t i) {
        // No usable height variance: the fix still places the car, with no say on u.
        const double vu =
            std::isfinite(in.u[i]) && std::isfinite(in.var_u[i]) && in.var_u[i] > 0 ? in.var_u[i] : 1e12;
        cur.add(i, in.e[i], in.n[i], in.u[i], in.var_e[i], in.var_n[i], vu);
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
            // The variance is the largest of: the formal 1/sum(w) and the best
            // single fix (both in var_me), and the scatter over the number of
            // independent samples, one per `correlation_s`, not one per fix.
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
                const bool any_speed = std::any_of(pending.begin(), pending.end(), [&](std::size_t j) {
                    return std::isfinite(in.speed_mps[j]);
                });
                const bool moving = std::any_of(pending.begin(), pending.end(), driving);
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
        if (cur.count == 0) {
            if (!driving(i))
                join(i);
            continue;
        }
        const double de = in.e[i] - cur.me(), dn = in.n[i] - cur.mn();
        const bool consistent =
            !driving(i) &&
            de * de / (in.var_e[i] + cur.var_me()) + dn * dn / (in.var_n[i] + cur.var_mn()) <= cfg.gate_chi2;
        if (consistent) {
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
    return out;
}

} // namespace autolien::gnss
