// Telemetry bindings: decode under a released GIL, then move the columns out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "autolien/telemetry/gb32960.hpp"
#include "autolien/telemetry/jt808.hpp"
#include "autolien/telemetry/obd.hpp"
#include "buffers.hpp"
#include "columns.hpp"

namespace py = pybind11;
using autolien::bindings::BytesView;
using autolien::bindings::rejects_dict;
using autolien::bindings::to_binary_column;
using autolien::bindings::to_numpy;
namespace jt = autolien::telemetry::jt808;
namespace gb = autolien::telemetry::gb32960;
namespace ob = autolien::telemetry::obd;

namespace {

template <typename T, typename F> std::vector<T> column(const std::vector<jt::Message>& ms, F f) {
    std::vector<T> out;
    out.reserve(ms.size());
    for (const auto& m : ms)
        out.push_back(static_cast<T>(f(m)));
    return out;
}

// numpy's name of a column's element type, for column_types().
template <typename T> constexpr const char* dtype_name() {
    if constexpr (std::is_same_v<T, double>)
        return "float64";
    else if constexpr (std::is_same_v<T, std::int64_t>)
        return "int64";
    else if constexpr (std::is_same_v<T, std::int32_t>)
        return "int32";
    else if constexpr (std::is_same_v<T, std::uint64_t>)
        return "uint64";
    else if constexpr (std::is_same_v<T, std::uint32_t>)
        return "uint32";
    else if constexpr (std::is_same_v<T, std::uint16_t>)
        return "uint16";
    else if constexpr (std::is_same_v<T, std::uint8_t>)
        return "uint8";
    else
        static_assert(sizeof(T) == 0, "no numpy name for this column type");
}

// (name, numpy dtype, output type) of every column a column list declares.
#define AUTOLIEN_COLUMN_TYPE(name, type, output)                                                            \
    out.append(py::make_tuple(#name, dtype_name<type>(), output));

py::dict column_types() {
    py::dict d;
    {
        py::list out;
        AUTOLIEN_JT808_MESSAGE_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["jt808.messages"] = out;
    }
    {
        py::list out;
        AUTOLIEN_JT808_LOCATION_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["jt808.locations"] = out;
    }
    return d;
}

py::dict jt808_to_python(jt::Result&& r) {
    py::dict msg;
    const auto& ms = r.messages;
#define AUTOLIEN_X(name, type, output)                                                                      \
    msg[#name] = to_numpy(column<type>(ms, [](const auto& m) { return m.name; }));
    AUTOLIEN_JT808_MESSAGE_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    msg["terminal_id"] =
        to_binary_column(ms, [](const auto& m) -> const std::string& { return m.terminal_id; });
    msg["body_error"] =
        to_binary_column(ms, [](const auto& m) -> const std::string& { return m.body_error; });
    msg["body"] = py::make_tuple(to_numpy(std::move(r.body_data)), to_numpy(std::move(r.body_start)));

    py::dict loc;
    r.locations.for_each_column(
        [&loc](const char* name, const char*, auto& col) { loc[name] = to_numpy(std::move(col)); });

    py::dict out;
    out["messages"] = msg;
    out["locations"] = loc;
    out["rejects"] = rejects_dict(r.rejects);
    return out;
}

py::dict gb32960_to_python(gb::Result&& r) {
    py::dict frames;
    const auto& fs = r.frames;
    std::vector<std::uint64_t> off;
    std::vector<std::uint8_t> cmd, ack, enc;
    std::vector<std::int64_t> t;
    std::vector<std::int32_t> seq;
    py::list codes;
    for (const auto& f : fs) {
        off.push_back(f.offset);
        cmd.push_back(f.cmd);
        ack.push_back(f.ack);
        enc.push_back(f.encryption);
        t.push_back(f.time_us);
        seq.push_back(f.sequence);
        py::list c;
        for (const auto& code : f.ress_codes)
            c.append(py::str(code));
        codes.append(c);
    }
    frames["offset"] = to_numpy(std::move(off));
    frames["cmd"] = to_numpy(std::move(cmd));
    frames["ack"] = to_numpy(std::move(ack));
    frames["encryption"] = to_numpy(std::move(enc));
    frames["time_us"] = to_numpy(std::move(t));
    frames["sequence"] = to_numpy(std::move(seq));
    frames["ress_codes"] = codes;
    frames["vin"] = to_binary_column(fs, [](const auto& f) -> const std::string& { return f.vin; });
    frames["iccid"] = to_binary_column(fs, [](const auto& f) -> const std::string& { return f.iccid; });
    frames["data"] =
        to_binary_column(fs, [](const auto& f) -> const std::vector<std::uint8_t>& { return f.data; });

    auto& R = r.rows;
    py::dict rows;
    rows["offset"] = to_numpy(std::move(R.offset));
    rows["frame_index"] = to_numpy(std::move(R.frame_index));
    rows["time_us"] = to_numpy(std::move(R.time_us));
    rows["reissue"] = to_numpy(std::move(R.reissue));
    py::list scalars;
    for (auto& col : R.scalars)
        scalars.append(to_numpy(std::move(col)));
    rows["scalars"] = scalars;
    rows["gear"] = to_numpy(std::move(R.gear));
    rows["lat"] = to_numpy(std::move(R.lat));
    rows["lon"] = to_numpy(std::move(R.lon));
    rows["location_status"] = to_numpy(std::move(R.location_status));
    rows["max_v_subsys"] = to_numpy(std::move(R.max_v_subsys));
    rows["max_v_cell"] = to_numpy(std::move(R.max_v_cell));
    rows["min_v_subsys"] = to_numpy(std::move(R.min_v_subsys));
    rows["min_v_cell"] = to_numpy(std::move(R.min_v_cell));
    rows["max_t_subsys"] = to_numpy(std::move(R.max_t_subsys));
    rows["max_t_probe"] = to_numpy(std::move(R.max_t_probe));
    rows["min_t_subsys"] = to_numpy(std::move(R.min_t_subsys));
    rows["min_t_probe"] = to_numpy(std::move(R.min_t_probe));
    rows["alarm_level"] = to_numpy(std::move(R.alarm_level));
    rows["alarm_flags"] = to_numpy(std::move(R.alarm_flags));
    rows["abnormal"] = to_numpy(std::move(R.abnormal));
    rows["invalid"] = to_numpy(std::move(R.invalid));
    rows["fault_start"] = to_numpy(std::move(R.fault_start));
    rows["fault_category"] = to_numpy(std::move(R.fault_category));
    rows["fault_code"] = to_numpy(std::move(R.fault_code));
    rows["motor_start"] = to_numpy(std::move(R.motor_start));
    rows["motor"] = to_numpy(std::move(R.motor));
    rows["cellset_start"] = to_numpy(std::move(R.cellset_start));
    rows["cellset"] = to_numpy(std::move(R.cellset));
    rows["cellset_cells_start"] = to_numpy(std::move(R.cellset_cells_start));
    rows["cell_v"] = to_numpy(std::move(R.cell_v));
    rows["probeset_start"] = to_numpy(std::move(R.probeset_start));
    rows["probeset_no"] = to_numpy(std::move(R.probeset_no));
    rows["probeset_temps_start"] = to_numpy(std::move(R.probeset_temps_start));
    rows["probe_c"] = to_numpy(std::move(R.probe_c));
    rows["custom_start"] = to_numpy(std::move(R.custom_start));
    rows["custom_id"] = to_numpy(std::move(R.custom_id));
    rows["custom_value_start"] = to_numpy(std::move(R.custom_value_start));
    rows["custom_value"] = to_numpy(std::move(R.custom_value));

    py::dict rej = rejects_dict(r.rejects);
    py::dict out;
    out["frames"] = frames;
    out["rows"] = rows;
    out["rejects"] = rej;
    return out;
}

} // namespace

void register_telemetry(py::module_& m) {
    m.def("column_types", &column_types,
          "Every decoder's raw columns: {table: [(name, numpy dtype, output type), ...]}.");
    m.def(
        "obd_value",
        [](int pid, const py::object& data) -> py::object {
            if (pid < 0 || pid > 255)
                throw std::invalid_argument("pid must be 0..255");
            const BytesView v = BytesView::require(data, "data");
            const ob::PidInfo* info = ob::pid_info(static_cast<std::uint8_t>(pid));
            if (info == nullptr)
                throw std::invalid_argument("pid 0x" + std::to_string(pid) + " is not decoded");
            const auto value = ob::decode_pid(static_cast<std::uint8_t>(pid), {v.data(), v.size()});
            if (!value)
                throw std::invalid_argument(std::string(info->name) + " needs " +
                                            std::to_string(info->bytes) + " data bytes, got " +
                                            std::to_string(v.size()));
            return py::float_(*value);
        },
        py::arg("pid"), py::arg("data"));
    m.def(
        "decode_obd",
        [](const py::object& data) {
            const BytesView v = BytesView::require(data, "data");
            ob::Result r;
            {
                const py::gil_scoped_release nogil;
                r = ob::decode_elm327({v.data(), v.size()});
            }
            std::vector<std::uint64_t> off;
            std::vector<std::uint8_t> pid;
            std::vector<double> value;
            for (const auto& row : r.rows) {
                off.push_back(row.offset);
                pid.push_back(row.pid);
                value.push_back(row.value);
            }
            py::dict rows;
            rows["ecu"] = to_binary_column(r.rows, [](const auto& x) -> const std::string& { return x.ecu; });
            rows["format"] =
                to_binary_column(r.rows, [](const auto& x) -> const std::string& { return x.format; });
            rows["data"] = to_binary_column(
                r.rows, [](const auto& x) -> const std::vector<std::uint8_t>& { return x.data; });
            rows["offset"] = to_numpy(std::move(off));
            rows["pid"] = to_numpy(std::move(pid));
            rows["value"] = to_numpy(std::move(value));
            py::dict rej = rejects_dict(r.rejects);
            py::dict out;
            out["rows"] = rows;
            out["rejects"] = rej;
            return out;
        },
        py::arg("data"), "Decodes ELM327 mode 01 response lines.");

    m.def(
        "decode_gb32960",
        [](const py::object& data) {
            const BytesView v = BytesView::require(data, "data");
            gb::Result r;
            {
                const py::gil_scoped_release nogil;
                r = gb::decode({v.data(), v.size()});
            }
            return gb32960_to_python(std::move(r));
        },
        py::arg("data"),
        "Decodes GB/T 32960 frames; returns dicts of column arrays (frames, rows, rejects).");
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
