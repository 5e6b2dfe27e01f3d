#include "autolien/gnss/geodesy.hpp"

#include <cmath>
#include <numbers>

// Internal arithmetic is long double (x86 extended precision), so that only
// the final rounding to double is left: a round trip then stays within 1e-9 m
// plus half an ulp of the degree values (which, near +-180 degrees longitude,
// cannot resolve finer than about 1.6e-9 m on the equator).

namespace autolien::gnss {

namespace {
using ld = long double;
constexpr ld kF = 1.0L / 298.257223563L;
constexpr ld kA = 6378137.0L;
constexpr ld kE2 = kF * (2.0L - kF);
constexpr ld kDeg = std::numbers::pi_v<long double> / 180.0L;

struct L3 {
    ld x, y, z;
};

L3 ecef_ld(ld lat_deg, ld lon_deg, ld h) {
    const ld lat = lat_deg * kDeg, lon = lon_deg * kDeg;
    const ld sp = std::sin(lat), cp = std::cos(lat);
    const ld n = kA / std::sqrt(1.0L - kE2 * sp * sp);
    return {(n + h) * cp * std::cos(lon), (n + h) * cp * std::sin(lon), (n * (1.0L - kE2) + h) * sp};
}

L3 geodetic_ld(ld x, ld y, ld z) {
    const ld p = std::hypot(x, y);
    const ld lon = std::atan2(y, x);
    // Bowring's closed form is already within ~1e-10 rad near the surface; the
    // fixed-point iteration after it gains a factor e^2 per step.
    constexpr ld kB = kA * (1.0L - kF);
    constexpr ld kEp2 = kE2 / (1.0L - kE2);
    const ld th = std::atan2(z * kA, p * kB);
    const ld st = std::sin(th), ct = std::cos(th);
    ld lat = std::atan2(z + kEp2 * kB * st * st * st, p - kE2 * kA * ct * ct * ct);
    ld h = 0;
    for (int i = 0; i < 8; ++i) {
        const ld sp = std::sin(lat);
        const ld n = kA / std::sqrt(1.0L - kE2 * sp * sp);
        const ld cp = std::cos(lat);
        h = std::abs(cp) > 1e-12L ? p / cp - n : std::abs(z) - n * (1.0L - kE2);
        const ld next = std::atan2(z, p * (1.0L - kE2 * n / (n + h)));
        const bool done = std::abs(next - lat) < 1e-18L;
        lat = next;
        if (done)
            break;
    }
    return {lat / kDeg, lon / kDeg, h};
}
} // namespace

Vec3 geodetic_to_ecef(double lat_deg, double lon_deg, double h) noexcept {
    const L3 v = ecef_ld(lat_deg, lon_deg, h);
    return {double(v.x), double(v.y), double(v.z)};
}

Vec3 ecef_to_geodetic(const Vec3& xyz) noexcept {
    const L3 v = geodetic_ld(xyz[0], xyz[1], xyz[2]);
    return {double(v.x), double(v.y), double(v.z)};
}

EnuFrame::EnuFrame(double lat0_deg, double lon0_deg, double h0) noexcept
    : origin_(geodetic_to_ecef(lat0_deg, lon0_deg, h0)), sl_(std::sin(lon0_deg * double(kDeg))),
      cl_(std::cos(lon0_deg * double(kDeg))), sp_(std::sin(lat0_deg * double(kDeg))),
      cp_(std::cos(lat0_deg * double(kDeg))) {
    const L3 o = ecef_ld(lat0_deg, lon0_deg, h0);
    ox_ = o.x;
    oy_ = o.y;
    oz_ = o.z;
    lsl_ = std::sin(lon0_deg * kDeg);
    lcl_ = std::cos(lon0_deg * kDeg);
    lsp_ = std::sin(lat0_deg * kDeg);
    lcp_ = std::cos(lat0_deg * kDeg);
}

Vec3 EnuFrame::from_ecef(const Vec3& xyz) const noexcept {
    const double dx = xyz[0] - origin_[0], dy = xyz[1] - origin_[1], dz = xyz[2] - origin_[2];
    return {-sl_ * dx + cl_ * dy, -sp_ * cl_ * dx - sp_ * sl_ * dy + cp_ * dz,
            cp_ * cl_ * dx + cp_ * sl_ * dy + sp_ * dz};
}

Vec3 EnuFrame::to_ecef(const Vec3& enu) const noexcept {
    const double e = enu[0], n = enu[1], u = enu[2];
    return {origin_[0] - sl_ * e - sp_ * cl_ * n + cp_ * cl_ * u,
            origin_[1] + cl_ * e - sp_ * sl_ * n + cp_ * sl_ * u, origin_[2] + cp_ * n + sp_ * u};
}

// The geodetic paths work on differences from the origin in long double, so
// no precision is lost in the large absolute ECEF values.
Vec3 EnuFrame::from_geodetic(double lat_deg, double lon_deg, double h) const noexcept {
    const L3 p = ecef_ld(lat_deg, lon_deg, h);
    const ld dx = p.x - ox_, dy = p.y - oy_, dz = p.z - oz_;
    return {double(-lsl_ * dx + lcl_ * dy), double(-lsp_ * lcl_ * dx - lsp_ * lsl_ * dy + lcp_ * dz),
            double(lcp_ * lcl_ * dx + lcp_ * lsl_ * dy + lsp_ * dz)};
}

Vec3 EnuFrame::to_geodetic(const Vec3& enu) const noexcept {
    const ld e = enu[0], n = enu[1], u = enu[2];
    const L3 g = geodetic_ld(ox_ - lsl_ * e - lsp_ * lcl_ * n + lcp_ * lcl_ * u,
                             oy_ + lcl_ * e - lsp_ * lsl_ * n + lcp_ * lsl_ * u, oz_ + lcp_ * n + lsp_ * u);
    return {double(g.x), double(g.y), double(g.z)};
}

} // namespace autolien::gnss
