// Geofences: simple polygons in WGS84 (lon/lat vertices, edges straight in
// the equirectangular plane, which is how GeoJSON-style fences are drawn), and
// enter/exit events along a track with a sigma-scaled hysteresis margin.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace autolien::gnss {

class Fence {
  public:
    // One closed ring (the closing vertex may be repeated or not). Throws
    // std::invalid_argument on fewer than 3 distinct vertices or non-finite ones.
    Fence(std::span<const double> lon, std::span<const double> lat);
    // Inside (even-odd rule) and the distance in metres to the nearest edge.
    void locate(double lat, double lon, bool& inside, double& distance_m) const noexcept;

  private:
    std::vector<double> lon_, lat_;
};

struct FenceEvent {
    std::size_t row = 0;    // the fix that confirmed the new side
    std::size_t before = 0; // the last fix on the old side (== row for a start inside)
    std::uint32_t fence = 0;
    bool enter = false;
};

// Events along one vehicle's track (rows in time order). A side change needs
// the fix to be at least k_sigma * sigma_h past the edge; unusable rows are skipped.
// A track that starts inside a fence gives an enter event at its first usable fix.
std::vector<FenceEvent> fence_events(std::span<const double> lat, std::span<const double> lon,
                                     std::span<const double> sigma_h, std::span<const std::uint8_t> usable,
                                     const std::vector<Fence>& fences, double k_sigma);

} // namespace autolien::gnss
