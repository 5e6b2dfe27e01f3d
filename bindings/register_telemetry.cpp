// Telemetry bindings: decode under a released GIL, then move the columns out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "autolien/telemetry/jt808.hpp"
#include "buffers.hpp"
#include "columns.hpp"

namespace py = pybind11;
using autolien::bindings::BytesView;
using autolien::bindings::to_binary_column;
using autolien::bindings::to_numpy;
namespace jt = autolien::telemetry::jt808;

namespace {

template <typename T, typename F> std::vector<T> column(const std::vector<jt::Message>& ms, F f) {
    std::vector<T> out;
    out.reserve(ms.size());
    for (const auto& m : ms)
        out.push_back(static_cast<T>(f(m)));
    return out;
}

py::dict jt808_to_python(jt::Result&& r) {
    py::dict msg;
    const auto& ms = r.messages;
    msg["offset"] = to_numpy(column<std::uint64_t>(ms, [](const auto& m) { return m.offset; }));
    msg["msg_id"] = to_numpy(column<std::uint16_t>(ms, [](const auto& m) { return m.msg_id; }));
    msg["serial"] = to_numpy(column<std::uint16_t>(ms, [](const auto& m) { return m.serial; }));
    msg["v2019"] = to_numpy(column<std::uint8_t>(ms, [](const auto& m) { return m.v2019; }));
    msg["version_flag"] = to_numpy(column<std::uint8_t>(ms, [](const auto& m) { return m.version_flag; }));
    msg["protocol_version"] =
        to_numpy(column<std::uint8_t>(ms, [](const auto& m) { return m.protocol_version; }));
    msg["encryption"] = to_numpy(column<std::uint8_t>(ms, [](const auto& m) { return m.encryption; }));
    msg["pkg_total"] = to_numpy(column<std::uint16_t>(ms, [](const auto& m) { return m.pkg_total; }));
    msg["pkg_index"] = to_numpy(column<std::uint16_t>(ms, [](const auto& m) { return m.pkg_index; }));
    msg["terminal_id"] =
        to_binary_column(ms, [](const auto& m) -> const std::string& { return m.terminal_id; });
    msg["body"] =
        to_binary_column(ms, [](const auto& m) -> const std::vector<std::uint8_t>& { return m.body; });

    auto& L = r.locations;
    py::dict loc;
    loc["message_index"] = to_numpy(std::move(L.message_index));
    loc["reissue"] = to_numpy(std::move(L.reissue));
    loc["alarm"] = to_numpy(std::move(L.alarm));
    loc["status"] = to_numpy(std::move(L.status));
    loc["lat"] = to_numpy(std::move(L.lat));
    loc["lon"] = to_numpy(std::move(L.lon));
    loc["altitude_m"] = to_numpy(std::move(L.altitude_m));
    loc["speed_kmh"] = to_numpy(std::move(L.speed_kmh));
    loc["heading_deg"] = to_numpy(std::move(L.heading_deg));
    loc["time_us"] = to_numpy(std::move(L.time_us));
    loc["mileage_km"] = to_numpy(std::move(L.mileage_km));
    loc["fuel_l"] = to_numpy(std::move(L.fuel_l));
    loc["recorder_speed_kmh"] = to_numpy(std::move(L.recorder_speed_kmh));
    loc["alarm_event_id"] = to_numpy(std::move(L.alarm_event_id));
    loc["overspeed_type"] = to_numpy(std::move(L.overspeed_type));
    loc["overspeed_area_id"] = to_numpy(std::move(L.overspeed_area_id));
    loc["area_alarm_type"] = to_numpy(std::move(L.area_alarm_type));
    loc["area_alarm_id"] = to_numpy(std::move(L.area_alarm_id));
    loc["area_alarm_direction"] = to_numpy(std::move(L.area_alarm_direction));
    loc["route_id"] = to_numpy(std::move(L.route_id));
    loc["route_time_s"] = to_numpy(std::move(L.route_time_s));
    loc["route_result"] = to_numpy(std::move(L.route_result));
    loc["ext_status"] = to_numpy(std::move(L.ext_status));
    loc["io_status"] = to_numpy(std::move(L.io_status));
    loc["analog"] = to_numpy(std::move(L.analog));
    loc["signal_strength"] = to_numpy(std::move(L.signal_strength));
    loc["satellites"] = to_numpy(std::move(L.satellites));
    loc["extra_start"] = to_numpy(std::move(L.extra_start));
    loc["extra_id"] = to_numpy(std::move(L.extra_id));
    loc["extra_value_start"] = to_numpy(std::move(L.extra_value_start));
    loc["extra_value"] = to_numpy(std::move(L.extra_value));

    py::dict rej;
    const auto& rs = r.rejects;
    std::vector<std::uint64_t> offs;
    std::vector<std::uint8_t> reasons;
    py::list messages;
    for (const auto& x : rs) {
        offs.push_back(x.offset);
        reasons.push_back(static_cast<std::uint8_t>(x.reason));
        messages.append(py::str(x.message));
    }
    rej["offset"] = to_numpy(std::move(offs));
    rej["reason"] = to_numpy(std::move(reasons));
    rej["message"] = messages;
    rej["raw"] =
        to_binary_column(rs, [](const auto& x) -> const std::vector<std::uint8_t>& { return x.raw; });

    py::dict out;
    out["messages"] = msg;
    out["locations"] = loc;
    out["rejects"] = rej;
    return out;
}

} // namespace

void register_telemetry(py::module_& m) {
    m.def(
        "decode_jt808",
        [](const py::object& data, long long subpackage_window) {
            if (subpackage_window < 1)
                throw std::invalid_argument("subpackage_window must be >= 1");
            const BytesView v = BytesView::require(data, "data");
            jt::Result r;
            {
                const py::gil_scoped_release nogil;
                jt::Options opt;
                opt.subpackage_window = static_cast<std::size_t>(subpackage_window);
                r = jt::decode({v.data(), v.size()}, opt);
            }
            return jt808_to_python(std::move(r));
        },
        py::arg("data"), py::arg("subpackage_window") = 1024,
        "Decodes JT/T 808 frames; returns dicts of column arrays (messages, locations, rejects).");
}
