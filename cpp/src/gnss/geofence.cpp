#include "autolien/gnss/geofence.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

#include "autolien/gnss/geodesy.hpp"

namespace autolien::gnss {

namespace {
constexpr double kDeg = std::numbers::pi / 180.0;
// Metres per degree of latitude on a sphere of the WGS84 semi-major axis: the
// distance is for the hysteresis margin, where 0.3 % does not matter.
constexpr double kMPerDeg = kWgs84A * kDeg;
} // namespace

Fence::Fence(std::span<const double> lon, std::span<const double> lat) {
    if (lon.size() != lat.size())
        throw std::invalid_argument("fence lon and lat must have the same length");
    for (std::size_t i = 0; i < lon.size(); ++i) {
        if (!std::isfinite(lon[i]) || !std::isfinite(lat[i]) || std::abs(lat[i]) > 90 ||
            std::abs(lon[i]) > 180)
            throw std::invalid_argument("fence vertices must be finite WGS84 degrees");
        lon_.push_back(lon[i]);
        lat_.push_back(lat[i]);
    }
    if (lon_.size() > 1 && lon_.front() == lon_.back() && lat_.front() == lat_.back()) {
        lon_.pop_back();
        lat_.pop_back();
    }
    if (lon_.size() < 3)
        throw std::invalid_argument("a fence needs at least 3 distinct vertices");
}

void Fence::locate(double lat, double lon, bool& inside, double& distance_m) const noexcept {
    const double kx = kMPerDeg * std::cos(lat * kDeg), ky = kMPerDeg;
    bool in = false;
    double best = std::numeric_limits<double>::infinity();
    const std::size_t n = lon_.size();
    for (std::size_t i = 0, j = n - 1; i < n; j = i++) {
        const double xi = (lon_[i] - lon) * kx, yi = (lat_[i] - lat) * ky;
        const double xj = (lon_[j] - lon) * kx, yj = (lat_[j] - lat) * ky;
        // Even-odd rule: a ray from the point towards +x crosses this edge.
        if ((yi > 0) != (yj > 0) && 0 < xj + (0 - yj) * (xi - xj) / (yi - yj))
            in = !in;
        const double ex = xi - xj, ey = yi - yj, len2 = ex * ex + ey * ey;
        const double s = len2 > 0 ? std::clamp(-(xj * ex + yj * ey) / len2, 0.0, 1.0) : 0.0;
        best = std::min(best, std::hypot(xj + s * ex, yj + s * ey));
    }
    inside = in;
    distance_m = best;
}

std::vector<FenceEvent> fence_events(std::span<const double> lat, std::span<const double> lon,
                                     std::span<const double> sigma_h, std::span<const std::uint8_t> usable,
                                     const std::vector<Fence>& fences, double k_sigma) {
    std::vector<FenceEvent> out;
    for (std::uint32_t f = 0; f < fences.size(); ++f) {
        int state = -1; // unknown, 0 outside, 1 inside
        std::size_t last_on_side = 0;
        for (std::size_t i = 0; i < lat.size(); ++i) {
            if (!usable[i] || !std::isfinite(lat[i]) || !std::isfinite(lon[i]))
                continue;
            bool in = false;
            double d = 0;
            fences[f].locate(lat[i], lon[i], in, d);
            const double margin = std::isfinite(sigma_h[i]) ? k_sigma * sigma_h[i] : 0.0;
            if (state < 0) {
                state = in ? 1 : 0;
                if (in)
                    out.push_back({i, i, f, true});
                last_on_side = i;
            } else if (int(in) == state) {
                last_on_side = i;
            } else if (d >= margin) {
                out.push_back({i, last_on_side, f, in});
                state = in ? 1 : 0;
                last_on_side = i;
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const FenceEvent& a, const FenceEvent& b) {
        return a.row != b.row ? a.row < b.row : a.fence < b.fence;
    });
    return out;
}

} // namespace autolien::gnss
