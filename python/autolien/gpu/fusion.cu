// Constant-velocity Kalman filtering of many vehicles' fixes at once, one
// vehicle per thread: the fix is taken into the vehicle's local ENU frame (at
// its first fix of quality >= 1 on the globe, as the CPU binding picks it),
// run through the shared kf_step (kernels/kf_cv.hpp) and the filtered state
// is taken back to latitude, longitude and height. Geodesy is in double here
// (the CPU core uses x87 long double), hence a tolerance, not bit identity.
#include "autolien/kernels/kf_cv.hpp"

using namespace autolien::kernels;

namespace {

constexpr double kA = 6378137.0;
constexpr double kF = 1.0 / 298.257223563;
constexpr double kE2 = kF * (2.0 - kF);
constexpr double kDeg = 3.14159265358979323846 / 180.0;

struct Frame {
    double ox, oy, oz, sl, cl, sp, cp;
};

__device__ void ecef(double lat_deg, double lon_deg, double h, double& x, double& y, double& z) {
    const double lat = lat_deg * kDeg, lon = lon_deg * kDeg;
    const double sp = sin(lat), cp = cos(lat);
    const double n = kA / sqrt(1.0 - kE2 * sp * sp);
    x = (n + h) * cp * cos(lon);
    y = (n + h) * cp * sin(lon);
    z = (n * (1.0 - kE2) + h) * sp;
}

__device__ Frame make_frame(double lat0, double lon0, double h0) {
    Frame f;
    ecef(lat0, lon0, h0, f.ox, f.oy, f.oz);
    f.sl = sin(lon0 * kDeg);
    f.cl = cos(lon0 * kDeg);
    f.sp = sin(lat0 * kDeg);
    f.cp = cos(lat0 * kDeg);
    return f;
}

__device__ void to_enu(const Frame& f, double lat, double lon, double h, double& e, double& n, double& u) {
    double x, y, z;
    ecef(lat, lon, h, x, y, z);
    const double dx = x - f.ox, dy = y - f.oy, dz = z - f.oz;
    e = -f.sl * dx + f.cl * dy;
    n = -f.sp * f.cl * dx - f.sp * f.sl * dy + f.cp * dz;
    u = f.cp * f.cl * dx + f.cp * f.sl * dy + f.sp * dz;
}

__device__ void to_geodetic(const Frame& f, double e, double n, double u, double& lat_deg, double& lon_deg,
                            double& h) {
    const double x = f.ox - f.sl * e - f.sp * f.cl * n + f.cp * f.cl * u;
    const double y = f.oy + f.cl * e - f.sp * f.sl * n + f.cp * f.sl * u;
    const double z = f.oz + f.cp * n + f.sp * u;
    const double p = hypot(x, y);
    const double lon = atan2(y, x);
    const double kB = kA * (1.0 - kF);
    const double kEp2 = kE2 / (1.0 - kE2);
    const double th = atan2(z * kA, p * kB);
    const double st = sin(th), ct = cos(th);
    double lat = atan2(z + kEp2 * kB * st * st * st, p - kE2 * kA * ct * ct * ct);
    double hh = 0;
    for (int i = 0; i < 8; ++i) {
        const double sp = sin(lat);
        const double nn = kA / sqrt(1.0 - kE2 * sp * sp);
        const double cp = cos(lat);
        hh = fabs(cp) > 1e-12 ? p / cp - nn : fabs(z) - nn * (1.0 - kE2);
        const double next = atan2(z, p * (1.0 - kE2 * nn / (nn + hh)));
        const bool done = next == lat;
        lat = next;
        if (done)
            break;
    }
    lat_deg = lat / kDeg;
    lon_deg = lon / kDeg;
    h = hh;
}

__device__ bool on_globe(double lat, double lon, double h) {
    return fabs(lat) <= 90 && fabs(lon) <= 180 && fabs(h) <= 1e8;
}

} // namespace

// cfg: the KfConfig fields in declaration order as doubles (ints as values).
// Outputs are per fix; rows before a vehicle's first valid fix (all of them
// for a vehicle without a usable reference) stay as
// the caller initialised them (NaN, status 1, segment 0).
extern "C" __global__ void fuse_groups(const long long* groups, long long ngroups, const double* t,
                                       const double* lat, const double* lon, const double* hgt,
                                       const int* quality, const double* sn, const double* se,
                                       const double* su, const double* speed, const double* cfgv,
                                       double* olat, double* olon, double* oh, double* ove, double* ovn,
                                       double* ovu, double* ovare, double* ovarn, double* ovaru, double* onis,
                                       double* oinfl, u8* ostatus, u32* osegment) {
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= ngroups)
        return;
    KfConfig c;
    for (int i = 0; i < 7; ++i) {
        c.floor_m[i] = cfgv[i];
        c.default_m[i] = cfgv[7 + i];
    }
    c.vertical_factor = cfgv[14];
    c.accel_psd = cfgv[15];
    c.gate_chi2 = cfgv[16];
    c.reinit_gap_s = cfgv[17];
    c.reinit_after_rejects = int(cfgv[18]);
    c.adapt_inflation = int(cfgv[19]);
    c.adapt_rate = cfgv[20];
    c.max_inflation = cfgv[21];
    c.initial_speed_sigma = cfgv[22];
    c.zupt_speed_mps = cfgv[23];
    c.zupt_sigma_mps = cfgv[24];
    c.speed_sigma_mps = cfgv[25];
    c.speed_sigma_fraction = cfgv[26];
    c.min_heading_speed_mps = cfgv[27];

    const long long lo = groups[g], hi = groups[g + 1];
    long long ref = lo;
    while (ref < hi && !(quality[ref] >= 1 && on_globe(lat[ref], lon[ref], hgt[ref])))
        ++ref;
    if (ref == hi)
        return;
    const Frame f = make_frame(lat[ref], lon[ref], hgt[ref]);
    KfState s;
    kf_init(s);
    for (long long i = lo; i < hi; ++i) {
        KfFix fx;
        fx.t = t[i];
        if (on_globe(lat[i], lon[i], hgt[i])) {
            to_enu(f, lat[i], lon[i], hgt[i], fx.e, fx.n, fx.u);
        } else {
            fx.e = fx.n = fx.u = AUTOLIEN_NAN;
        }
        fx.quality = quality[i];
        fx.sigma_n = sn[i];
        fx.sigma_e = se[i];
        fx.sigma_u = su[i];
        fx.speed = speed[i];
        KfOut o;
        kf_step(s, fx, c, o);
        ostatus[i] = o.status;
        if (!s.started) // before the vehicle's first valid fix: the CPU leaves the row NaN
            continue;
        to_geodetic(f, o.e, o.n, o.u, olat[i], olon[i], oh[i]);
        ove[i] = o.ve;
        ovn[i] = o.vn;
        ovu[i] = o.vu;
        ovare[i] = o.var_e;
        ovarn[i] = o.var_n;
        ovaru[i] = o.var_u;
        onis[i] = o.nis;
        oinfl[i] = o.inflation;
        osegment[i] = o.segment;
    }
}
