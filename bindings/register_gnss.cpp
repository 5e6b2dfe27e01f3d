// GNSS bindings: NMEA/UBX decoding, fusion, parking and geofences; each
// converts its arguments, then works under a released GIL, columns moved out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "autolien/common/thread_pool.hpp"
#include "autolien/gnss/columns.hpp"
#include "autolien/gnss/fusion.hpp"
#include "autolien/gnss/geodesy.hpp"
#include "autolien/gnss/geofence.hpp"
#include "autolien/gnss/nmea.hpp"
#include "autolien/gnss/parked.hpp"
#include "buffers.hpp"
#include "columns.hpp"

namespace py = pybind11;
using autolien::bindings::BytesView;
using autolien::bindings::rejects_dict;
using autolien::bindings::to_numpy;
namespace nm = autolien::gnss::nmea;
namespace ag = autolien::gnss;

namespace {

using autolien::bindings::to_numpy; // beside the overload below, not hidden by it

// An NMEA output column (its buffer from the decoder's pool, which takes it
// back when the array is freed) moved into a numpy array.
template <typename T> py::array_t<T> to_numpy(nm::Column<T>&& v) {
    auto* owned = new nm::Column<T>(std::move(v));
    py::capsule free_when_done(owned, [](void* p) { delete static_cast<nm::Column<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(owned->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                          owned->data(), free_when_done);
}

// A column struct's vectors, moved into numpy arrays under their list's names.
template <typename Columns> py::dict columns_dict(Columns& c) {
    py::dict d;
    c.for_each_column([&d](const char* name, const char*, auto& col) { d[name] = to_numpy(std::move(col)); });
    return d;
}

} // namespace

void register_gnss(py::module_& m) {
    m.def(
        "decode_nmea",
        [](const py::object& data) {
            const BytesView v = BytesView::require(data, "data");
            nm::Result r;
            {
                const py::gil_scoped_release nogil;
                r = nm::decode({v.data(), v.size()});
            }
            // The validity bitmaps of the columns that have them, by name.
            py::dict validity;
            std::size_t column = 0;
            r.fixes.for_each_column([&](const char* name, const char* output, auto&) {
                const auto c = nm::FixColumn(column++);
                if (nm::has_validity(c, output))
                    validity[name] = to_numpy(std::move(r.fixes.validity[std::size_t(c)]));
            });
            py::dict fixes = columns_dict(r.fixes), msgs = columns_dict(r.messages);
            msgs["kind"] = py::make_tuple(to_numpy(std::move(r.messages.kind_data)),
                                          to_numpy(std::move(r.messages.kind_start)));
            py::dict rej = rejects_dict(r.rejects);
            py::dict out;
            out["fixes"] = fixes;
            out["messages"] = msgs;
            out["rejects"] = rej;
            out["validity"] = validity;
            return out;
        },
        py::arg("data"), "Decodes interleaved NMEA 0183 and UBX; returns dicts of column arrays.");
}

namespace {

template <typename T> using carray = py::array_t<T, py::array::c_style>;

void config_from(const py::dict& d, ag::FusionConfig& c, ag::ParkConfig& pk) {
    for (auto item : d) {
        const auto key = py::str(item.first).cast<std::string>();
        const auto& v = item.second;
        try {
            if (key == "floor_m")
                c.floor_m = v.cast<std::array<double, 7>>();
            else if (key == "default_m")
                c.default_m = v.cast<std::array<double, 7>>();
            else if (key == "vertical_factor")
                c.vertical_factor = v.cast<double>();
            else if (key == "accel_psd")
                c.accel_psd = v.cast<double>();
            else if (key == "gate_chi2")
                c.gate_chi2 = v.cast<double>();
            else if (key == "reinit_gap_s")
                c.reinit_gap_s = v.cast<double>();
            else if (key == "reinit_after_rejects")
                c.reinit_after_rejects = v.cast<int>();
            else if (key == "adapt_inflation")
                c.adapt_inflation = v.cast<bool>();
            else if (key == "adapt_rate")
                c.adapt_rate = v.cast<double>();
            else if (key == "max_inflation")
                c.max_inflation = v.cast<double>();
            else if (key == "zupt_speed_mps")
                c.zupt_speed_mps = v.cast<double>();
            else if (key == "zupt_sigma_mps")
                c.zupt_sigma_mps = v.cast<double>();
            else if (key == "speed_sigma_mps")
                c.speed_sigma_mps = v.cast<double>();
            else if (key == "speed_sigma_fraction")
                c.speed_sigma_fraction = v.cast<double>();
            else if (key == "min_heading_speed_mps")
                c.min_heading_speed_mps = v.cast<double>();
            else if (key == "min_parked_s")
                pk.min_duration_s = v.cast<double>();
            else if (key == "parked_gate_chi2")
                pk.gate_chi2 = v.cast<double>();
            else if (key == "parked_confirm")
                pk.confirm = v.cast<int>();
            else if (key == "stationary_mps")
                pk.stationary_mps = v.cast<double>();
            else if (key == "offline_gap_s")
                pk.offline_gap_s = v.cast<double>();
            else if (key == "correlation_s")
                pk.correlation_s = v.cast<double>();
            else if (key == "parked_bias_m")
                pk.bias_m = v.cast<std::array<double, 7>>();
            else if (key == "bias_time_s")
                pk.bias_time_s = v.cast<double>();
            else if (key == "reacquire_gap_s")
                pk.reacquire_gap_s = v.cast<double>();
            else if (key == "reset_sigma_ratio")
                pk.reset_sigma_ratio = v.cast<double>();
            else
                throw std::invalid_argument("unknown fusion config key '" + key + "'");
        } catch (const py::cast_error&) {
            throw std::invalid_argument("fusion config key '" + key + "' has the wrong type or length");
        }
    }
    // Ranges outside these make the filter meaningless rather than wrong-but-running.
    const bool ok = c.vertical_factor > 0 && c.accel_psd > 0 && c.gate_chi2 > 0 && c.reinit_gap_s > 0 &&
                    c.reinit_after_rejects > 0 && c.adapt_rate > 0 && c.adapt_rate <= 1 &&
                    c.max_inflation >= 1 && c.initial_speed_sigma > 0 && c.zupt_speed_mps >= 0 &&
                    c.zupt_sigma_mps > 0 && c.speed_sigma_mps > 0 && c.speed_sigma_fraction >= 0 &&
                    c.min_heading_speed_mps > 0 &&
                    std::all_of(c.floor_m.begin(), c.floor_m.end(), [](double x) { return x >= 0; }) &&
                    std::all_of(c.default_m.begin(), c.default_m.end(), [](double x) { return x >= 0; }) &&
                    pk.min_duration_s >= 0 && pk.gate_chi2 > 0 && pk.confirm >= 1 && pk.stationary_mps >= 0 &&
                    pk.offline_gap_s > 0 && pk.correlation_s > 0 && pk.bias_time_s > 0 &&
                    pk.reacquire_gap_s >= 0 && pk.reset_sigma_ratio >= 1 &&
                    std::all_of(pk.bias_m.begin(), pk.bias_m.end(), [](double x) { return x >= 0; });
    pk.vertical_factor = c.vertical_factor;
    if (!ok)
        throw std::invalid_argument(
            "fusion config out of range (sigmas, rates and thresholds must be positive, "
            "adapt_rate <= 1, max_inflation >= 1)");
}

} // namespace

void register_gnss_fusion(py::module_& m) {
    m.def(
        "geodetic_to_enu",
        [](double lat0, double lon0, double h0, const carray<double>& lat, const carray<double>& lon,
           const carray<double>& h) {
            const auto n = static_cast<std::size_t>(lat.size());
            if (std::size_t(lon.size()) != n || std::size_t(h.size()) != n)
                throw std::invalid_argument("lat, lon and h must have the same length");
            std::vector<double> e(n), no(n), u(n);
            {
                const py::gil_scoped_release nogil;
                const ag::EnuFrame frame(lat0, lon0, h0);
                for (std::size_t i = 0; i < n; ++i) {
                    const auto v = frame.from_geodetic(lat.data()[i], lon.data()[i], h.data()[i]);
                    e[i] = v[0];
                    no[i] = v[1];
                    u[i] = v[2];
                }
            }
            return py::make_tuple(to_numpy(std::move(e)), to_numpy(std::move(no)), to_numpy(std::move(u)));
        },
        py::arg("lat0"), py::arg("lon0"), py::arg("h0"), py::arg("lat").noconvert(),
        py::arg("lon").noconvert(), py::arg("h").noconvert());
    m.def(
        "enu_to_geodetic",
        [](double lat0, double lon0, double h0, const carray<double>& e, const carray<double>& n_,
           const carray<double>& u) {
            const auto n = static_cast<std::size_t>(e.size());
            if (std::size_t(n_.size()) != n || std::size_t(u.size()) != n)
                throw std::invalid_argument("e, n and u must have the same length");
            std::vector<double> lat(n), lon(n), h(n);
            {
                const py::gil_scoped_release nogil;
                const ag::EnuFrame frame(lat0, lon0, h0);
                for (std::size_t i = 0; i < n; ++i) {
                    const auto v = frame.to_geodetic({e.data()[i], n_.data()[i], u.data()[i]});
                    lat[i] = v[0];
                    lon[i] = v[1];
                    h[i] = v[2];
                }
            }
            return py::make_tuple(to_numpy(std::move(lat)), to_numpy(std::move(lon)), to_numpy(std::move(h)));
        },
        py::arg("lat0"), py::arg("lon0"), py::arg("h0"), py::arg("e").noconvert(), py::arg("n").noconvert(),
        py::arg("u").noconvert());
    m.def(
        "fuse_groups",
        [](const carray<std::int64_t>& groups, const carray<double>& t, const carray<double>& lat,
           const carray<double>& lon, const carray<double>& h, const carray<std::int32_t>& quality,
           const carray<double>& sn, const carray<double>& se, const carray<double>& su,
           const carray<double>& speed, bool smooth, const py::dict& config) {
            const auto n = static_cast<std::size_t>(t.size());
            for (const auto size : {lat.size(), lon.size(), h.size(), quality.size(), sn.size(), se.size(),
                                    su.size(), speed.size()})
                if (std::size_t(size) != n)
                    throw std::invalid_argument("every fix column must have the same length");
            const auto ng = static_cast<std::size_t>(groups.size());
            if (ng == 0 || groups.data()[0] != 0 || std::size_t(groups.data()[ng - 1]) != n)
                throw std::invalid_argument("groups must be offsets from 0 to the number of fixes");
            ag::FusionConfig cfg;
            ag::ParkConfig pk;
            config_from(config, cfg, pk);
            // Parked episodes and moves per vehicle, gathered in vehicle order after the pool.
            std::vector<ag::ParkOutput> parked(ng - 1);
            ag::TrackColumns T;
            T.for_each_column([n](const char*, const char*, auto& col) {
                using V = typename std::decay_t<decltype(col)>::value_type;
                col.assign(n, std::is_floating_point_v<V> ? V(NAN) : V(0));
            });
            std::fill(T.status.begin(), T.status.end(), std::uint8_t(1));
            {
                const py::gil_scoped_release nogil;
                autolien::global_pool()->parallel_for(ng - 1, 1, [&](std::size_t b, std::size_t end) {
                    for (std::size_t g = b; g < end; ++g) {
                        const auto lo = std::size_t(groups.data()[g]), hi = std::size_t(groups.data()[g + 1]);
                        // Each vehicle gets an ENU frame at its first valid fix.
                        std::size_t ref = lo;
                        // A fix off the globe (|lat| > 90, |lon| > 180, |h| > 1e5 km) is invalid.
                        auto on_globe = [&](std::size_t k) {
                            return std::abs(lat.data()[k]) <= 90 && std::abs(lon.data()[k]) <= 180 &&
                                   std::abs(h.data()[k]) <= 1e8;
                        };
                        while (ref < hi && !(quality.data()[ref] >= 1 && on_globe(ref)))
                            ++ref;
                        if (ref == hi)
                            continue;
                        const ag::EnuFrame frame(lat.data()[ref], lon.data()[ref], h.data()[ref]);
                        const std::size_t m_ = hi - lo;
                        std::vector<double> e(m_), no(m_), u(m_);
                        for (std::size_t i = 0; i < m_; ++i) {
                            const auto v = on_globe(lo + i)
                                               ? frame.from_geodetic(lat.data()[lo + i], lon.data()[lo + i],
                                                                     h.data()[lo + i])
                                               : ag::Vec3{NAN, NAN, NAN};
                            e[i] = v[0];
                            no[i] = v[1];
                            u[i] = v[2];
                        }
                        ag::FixInput in{{t.data() + lo, m_},
                                        e,
                                        no,
                                        u,
                                        {quality.data() + lo, m_},
                                        {sn.data() + lo, m_},
                                        {se.data() + lo, m_},
                                        {su.data() + lo, m_},
                                        {speed.data() + lo, m_}};
                        const auto res = ag::fuse(in, cfg, smooth);
                        // Parking works on the raw fixes (with the filter's noise model),
                        // so that a towing the filter smooths over still shows.
                        ag::ParkInput pin{{t.data() + lo, m_},
                                          e,
                                          no,
                                          u,
                                          res.r_e,
                                          res.r_n,
                                          res.r_u,
                                          {speed.data() + lo, m_},
                                          {quality.data() + lo, m_}};
                        auto& po = parked[g];
                        po = ag::find_parked(pin, pk);
                        for (auto& ep : po.episodes) {
                            const auto g3 = frame.to_geodetic({ep.e, ep.n, ep.u});
                            ep.e = g3[0]; // from here on: lat, lon, height
                            ep.n = g3[1];
                            ep.u = g3[2];
                            ep.first += lo;
                            ep.last += lo;
                        }
                        for (auto& mv : po.moves) {
                            mv.first_fix += lo;
                            mv.last_fix += lo;
                        }
                        for (std::size_t i = 0; i < m_; ++i) {
                            if (std::isfinite(res.e[i])) {
                                const auto g3 = frame.to_geodetic({res.e[i], res.n[i], res.u[i]});
                                T.lat[lo + i] = g3[0];
                                T.lon[lo + i] = g3[1];
                                T.height_m[lo + i] = g3[2];
                            }
                            T.ve_mps[lo + i] = res.ve[i];
                            T.vn_mps[lo + i] = res.vn[i];
                            T.vu_mps[lo + i] = res.vu[i];
                            T.var_e_m2[lo + i] = res.var_e[i];
                            T.var_n_m2[lo + i] = res.var_n[i];
                            T.var_u_m2[lo + i] = res.var_u[i];
                            T.nis[lo + i] = res.nis[i];
                            T.inflation[lo + i] = res.inflation[i];
                            T.status[lo + i] = res.status[i];
                            T.segment[lo + i] = res.segment[i];
                        }
                    }
                });
            }
            ag::ParkedColumns P;
            ag::MoveColumns M;
            for (std::size_t g = 0; g + 1 < ng; ++g) {
                const std::size_t base = P.group.size();
                for (const auto& ep : parked[g].episodes) {
                    P.group.push_back(std::int64_t(g));
                    P.first.push_back(std::int64_t(ep.first));
                    P.last.push_back(std::int64_t(ep.last));
                    P.lat.push_back(ep.e);
                    P.lon.push_back(ep.n);
                    P.height_m.push_back(ep.u);
                    P.var_e_m2.push_back(ep.var_e);
                    P.var_n_m2.push_back(ep.var_n);
                    P.var_u_m2.push_back(ep.var_u);
                    P.n_fixes.push_back(ep.n_fixes);
                }
                for (const auto& mv : parked[g].moves) {
                    M.group.push_back(std::int64_t(g));
                    M.episode.push_back(std::int64_t(base + mv.episode));
                    M.first_fix.push_back(std::int64_t(mv.first_fix));
                    M.last_fix.push_back(std::int64_t(mv.last_fix));
                    M.distance_m.push_back(mv.distance_m);
                    M.sigma_m.push_back(mv.sigma_m);
                    M.kind.push_back(static_cast<std::uint8_t>(mv.kind));
                }
            }
            py::dict out = columns_dict(T);
            out["parked"] = columns_dict(P);
            out["moves"] = columns_dict(M);
            return out;
        },
        py::arg("groups").noconvert(), py::arg("t").noconvert(), py::arg("lat").noconvert(),
        py::arg("lon").noconvert(), py::arg("h").noconvert(), py::arg("quality").noconvert(),
        py::arg("sigma_n").noconvert(), py::arg("sigma_e").noconvert(), py::arg("sigma_u").noconvert(),
        py::arg("speed_mps").noconvert(), py::arg("smooth"), py::arg("config"),
        "Filters (and smooths) fixes grouped by vehicle; groups are offsets into the sorted columns.");
}

void register_gnss_geofence(py::module_& m) {
    m.def(
        "geofence_events",
        [](const carray<std::int64_t>& groups, const carray<double>& lat, const carray<double>& lon,
           const carray<double>& sigma_h, const carray<std::uint8_t>& usable,
           const carray<std::int64_t>& fence_offsets, const carray<double>& fence_lon,
           const carray<double>& fence_lat, double k_sigma) {
            const auto n = std::size_t(lat.size());
            if (std::size_t(lon.size()) != n || std::size_t(sigma_h.size()) != n ||
                std::size_t(usable.size()) != n)
                throw std::invalid_argument("every track column must have the same length");
            const auto ng = std::size_t(groups.size());
            if (ng == 0 || groups.data()[0] != 0 || std::size_t(groups.data()[ng - 1]) != n)
                throw std::invalid_argument("groups must be offsets from 0 to the number of rows");
            if (fence_lon.size() != fence_lat.size())
                throw std::invalid_argument("fence lon and lat must have the same length");
            if (!(k_sigma >= 0))
                throw std::invalid_argument("k_sigma must be >= 0");
            const auto nf = std::size_t(fence_offsets.size());
            std::vector<ag::Fence> fences;
            for (std::size_t f = 0; f + 1 < nf; ++f) {
                const auto a = fence_offsets.data()[f], b = fence_offsets.data()[f + 1];
                if (a < 0 || b < a || b > fence_lon.size())
                    throw std::invalid_argument("fence offsets out of order");
                fences.emplace_back(std::span<const double>(fence_lon.data() + a, std::size_t(b - a)),
                                    std::span<const double>(fence_lat.data() + a, std::size_t(b - a)));
            }
            std::vector<std::vector<ag::FenceEvent>> per(ng - 1);
            {
                const py::gil_scoped_release nogil;
                autolien::global_pool()->parallel_for(ng - 1, 1, [&](std::size_t b, std::size_t e) {
                    for (std::size_t g = b; g < e; ++g) {
                        const auto lo = std::size_t(groups.data()[g]), hi = std::size_t(groups.data()[g + 1]);
                        per[g] = ag::fence_events({lat.data() + lo, hi - lo}, {lon.data() + lo, hi - lo},
                                                  {sigma_h.data() + lo, hi - lo},
                                                  {usable.data() + lo, hi - lo}, fences, k_sigma);
                        for (auto& ev : per[g]) {
                            ev.row += lo;
                            ev.before += lo;
                        }
                    }
                });
            }
            ag::FenceEventColumns E;
            for (const auto& evs : per)
                for (const auto& ev : evs) {
                    E.row.push_back(std::int64_t(ev.row));
                    E.before.push_back(std::int64_t(ev.before));
                    E.fence.push_back(ev.fence);
                    E.enter.push_back(ev.enter ? 1 : 0);
                }
            py::dict out = columns_dict(E);
            return out;
        },
        py::arg("groups").noconvert(), py::arg("lat").noconvert(), py::arg("lon").noconvert(),
        py::arg("sigma_h").noconvert(), py::arg("usable").noconvert(), py::arg("fence_offsets").noconvert(),
        py::arg("fence_lon").noconvert(), py::arg("fence_lat").noconvert(), py::arg("k_sigma"),
        "Enter/exit events of tracks grouped by vehicle against simple polygons.");
    m.def(
        "fence_locate",
        [](const carray<double>& fence_lon, const carray<double>& fence_lat, const carray<double>& lat,
           const carray<double>& lon) {
            const ag::Fence f({fence_lon.data(), std::size_t(fence_lon.size())},
                              {fence_lat.data(), std::size_t(fence_lat.size())});
            if (lat.size() != lon.size())
                throw std::invalid_argument("lat and lon must have the same length");
            std::vector<std::uint8_t> inside(std::size_t(lat.size()));
            std::vector<double> dist(std::size_t(lat.size()));
            for (std::size_t i = 0; i < inside.size(); ++i) {
                bool in = false;
                f.locate(lat.data()[i], lon.data()[i], in, dist[i]);
                inside[i] = in ? 1 : 0;
            }
            return py::make_tuple(to_numpy(std::move(inside)), to_numpy(std::move(dist)));
        },
        py::arg("fence_lon").noconvert(), py::arg("fence_lat").noconvert(), py::arg("lat").noconvert(),
        py::arg("lon").noconvert(),
        "Inside (even-odd) and distance to the nearest edge in metres, per point.");
    m.def(
        "great_circle_m",
        [](const carray<double>& lat1, const carray<double>& lon1, const carray<double>& lat2,
           const carray<double>& lon2, double radius_m) {
            const auto n = lat1.size();
            if (lon1.size() != n || lat2.size() != n || lon2.size() != n)
                throw std::invalid_argument("lat1, lon1, lat2 and lon2 must have the same length");
            std::vector<double> out(std::size_t(n), 0.0);
            {
                py::gil_scoped_release nogil;
                for (std::size_t i = 0; i < out.size(); ++i)
                    out[i] = ag::great_circle_m(lat1.data()[i], lon1.data()[i], lat2.data()[i],
                                                lon2.data()[i], radius_m);
            }
            return to_numpy(std::move(out));
        },
        py::arg("lat1").noconvert(), py::arg("lon1").noconvert(), py::arg("lat2").noconvert(),
        py::arg("lon2").noconvert(), py::arg("radius_m"),
        "Great-circle (haversine) distance in metres between point pairs, element-wise.");
    m.def(
        "great_circle_nearest_m",
        [](const carray<double>& lat, const carray<double>& lon, const carray<double>& to_lat,
           const carray<double>& to_lon, double radius_m) {
            const std::span<const double> a{lat.data(), std::size_t(lat.size())},
                b{lon.data(), std::size_t(lon.size())}, c{to_lat.data(), std::size_t(to_lat.size())},
                d{to_lon.data(), std::size_t(to_lon.size())};
            std::vector<double> out;
            {
                py::gil_scoped_release nogil;
                out = ag::nearest_m(a, b, c, d, radius_m);
            }
            return to_numpy(std::move(out));
        },
        py::arg("lat").noconvert(), py::arg("lon").noconvert(), py::arg("to_lat").noconvert(),
        py::arg("to_lon").noconvert(), py::arg("radius_m"),
        "Great-circle distance in metres from each point to the nearest target (min over targets).");
}
