// GNSS bindings: NMEA/UBX decoding under a released GIL, columns moved out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "autolien/gnss/nmea.hpp"
#include "buffers.hpp"
#include "columns.hpp"

namespace py = pybind11;
using autolien::bindings::BytesView;
using autolien::bindings::to_binary_column;
using autolien::bindings::to_numpy;
namespace nm = autolien::gnss::nmea;

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
            auto& F = r.fixes;
            py::dict fixes;
            fixes["offset"] = to_numpy(std::move(F.offset));
            fixes["source"] = to_numpy(std::move(F.source));
            fixes["time_us"] = to_numpy(std::move(F.time_us));
            fixes["lat"] = to_numpy(std::move(F.lat));
            fixes["lon"] = to_numpy(std::move(F.lon));
            fixes["altitude_m"] = to_numpy(std::move(F.altitude_m));
            fixes["height_m"] = to_numpy(std::move(F.height_m));
            fixes["speed_kmh"] = to_numpy(std::move(F.speed_kmh));
            fixes["heading_deg"] = to_numpy(std::move(F.heading_deg));
            fixes["quality"] = to_numpy(std::move(F.quality));
            fixes["num_sats"] = to_numpy(std::move(F.num_sats));
            fixes["fix_type"] = to_numpy(std::move(F.fix_type));
            fixes["carr_soln"] = to_numpy(std::move(F.carr_soln));
            fixes["hdop"] = to_numpy(std::move(F.hdop));
            fixes["pdop"] = to_numpy(std::move(F.pdop));
            fixes["sigma_n_m"] = to_numpy(std::move(F.sigma_n_m));
            fixes["sigma_e_m"] = to_numpy(std::move(F.sigma_e_m));
            fixes["sigma_u_m"] = to_numpy(std::move(F.sigma_u_m));
            fixes["diff_age_s"] = to_numpy(std::move(F.diff_age_s));
            fixes["rmc_status"] = to_numpy(std::move(F.rmc_status));
            fixes["rmc_mode"] = to_numpy(std::move(F.rmc_mode));
            py::dict msgs;
            std::vector<std::uint64_t> offs;
            std::vector<std::uint32_t> lens;
            std::vector<std::uint8_t> used;
            for (const auto& x : r.messages) {
                offs.push_back(x.offset);
                lens.push_back(x.length);
                used.push_back(x.used);
            }
            msgs["offset"] = to_numpy(std::move(offs));
            msgs["length"] = to_numpy(std::move(lens));
            msgs["used"] = to_numpy(std::move(used));
            msgs["kind"] =
                to_binary_column(r.messages, [](const auto& x) -> const std::string& { return x.kind; });
            py::dict rej;
            std::vector<std::uint64_t> roffs;
            std::vector<std::uint8_t> reasons;
            py::list texts;
            for (const auto& x : r.rejects) {
                roffs.push_back(x.offset);
                reasons.push_back(static_cast<std::uint8_t>(x.reason));
                texts.append(py::str(x.message));
            }
            rej["offset"] = to_numpy(std::move(roffs));
            rej["reason"] = to_numpy(std::move(reasons));
            rej["message"] = texts;
            rej["raw"] = to_binary_column(
                r.rejects, [](const auto& x) -> const std::vector<std::uint8_t>& { return x.raw; });
            py::dict out;
            out["fixes"] = fixes;
            out["messages"] = msgs;
            out["rejects"] = rej;
            return out;
        },
        py::arg("data"), "Decodes interleaved NMEA 0183 and UBX; returns dicts of column arrays.");
}
