// WGS84 geodesy in double precision: geodetic <-> ECEF <-> local ENU. A round
// trip through ENU holds 1e-7 m within 100 km of the origin (see geodesy.cpp).
#pragma once

#include <array>
#include <span>
#include <vector>

namespace autolien::gnss {

inline constexpr double kWgs84A = 6378137.0;
inline constexpr double kWgs84F = 1.0 / 298.257223563;

using Vec3 = std::array<double, 3>;

// Latitude and longitude in degrees, height above the ellipsoid in metres.
Vec3 geodetic_to_ecef(double lat_deg, double lon_deg, double h) noexcept;
// Returns {lat_deg, lon_deg, h}; latitude within 1e-12 rad near the surface.
Vec3 ecef_to_geodetic(const Vec3& xyz) noexcept;

// Great-circle distance in metres between two points (degrees) on a sphere of
// the given radius (haversine; the argument is clamped to [0, 1], so
// antipodal and coincident points stay finite). NaN in, NaN out.
double great_circle_m(double lat1_deg, double lon1_deg, double lat2_deg, double lon2_deg,
                      double radius_m) noexcept;

// For each point, the great-circle distance to the nearest of the targets:
// the minimum of its row of great_circle_m, NaN where that row holds a NaN
// (as numpy's min), +infinity without targets. Throws std::invalid_argument
// on mismatched lengths.
std::vector<double> nearest_m(std::span<const double> lat, std::span<const double> lon,
                              std::span<const double> to_lat, std::span<const double> to_lon,
                              double radius_m);

// A local east-north-up frame at a reference point.
class EnuFrame {
  public:
    EnuFrame(double lat0_deg, double lon0_deg, double h0) noexcept;
    [[nodiscard]] Vec3 from_geodetic(double lat_deg, double lon_deg, double h) const noexcept;
    [[nodiscard]] Vec3 to_geodetic(const Vec3& enu) const noexcept;
    [[nodiscard]] Vec3 from_ecef(const Vec3& xyz) const noexcept;
    [[nodiscard]] Vec3 to_ecef(const Vec3& enu) const noexcept;

  private:
    Vec3 origin_;
    double sl_, cl_, sp_, cp_; // sin/cos of longitude and latitude
};

} // namespace autolien::gnss
