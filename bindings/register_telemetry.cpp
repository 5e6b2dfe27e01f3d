// Telemetry bindings: decode under a released GIL, then move the columns out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "autolien/gnss/columns.hpp"
#include "autolien/gnss/nmea.hpp"
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

template <typename T, typename Item, typename F> std::vector<T> column(const std::vector<Item>& ms, F f) {
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
#define AUTOLIEN_COLUMN_TYPE(name, type, output)                                                             \
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
    {
        py::list out;
        AUTOLIEN_GB32960_FRAME_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gb32960.frames"] = out;
    }
    {
        py::list out;
        AUTOLIEN_GB32960_ROW_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gb32960.rows"] = out;
    }
    {
        // rows["scalars"][i] is Field i: every one float64, NaN when absent.
        py::list out;
#define AUTOLIEN_X(id, name, output) out.append(py::make_tuple(name, "float64", output));
        AUTOLIEN_GB32960_FIELDS(AUTOLIEN_X)
#undef AUTOLIEN_X
        d["gb32960.scalars"] = out;
    }
    {
        py::list out;
        AUTOLIEN_OBD_ROW_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["obd.rows"] = out;
    }
    {
        py::list out;
        AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["nmea.fixes"] = out;
    }
    {
        py::list out;
        AUTOLIEN_NMEA_MESSAGE_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["nmea.messages"] = out;
    }
    {
        py::list out;
        AUTOLIEN_GNSS_TRACK_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gnss.track"] = out;
    }
    {
        py::list out;
        AUTOLIEN_GNSS_PARKED_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gnss.parked"] = out;
    }
    {
        py::list out;
        AUTOLIEN_GNSS_MOVE_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gnss.moves"] = out;
    }
    {
        py::list out;
        AUTOLIEN_GNSS_FENCE_EVENT_COLUMNS(AUTOLIEN_COLUMN_TYPE)
        d["gnss.fence_events"] = out;
    }
    return d;
}

py::dict jt808_to_python(jt::Result&& r) {
    py::dict msg;
    const auto& ms = r.messages;
#define AUTOLIEN_X(name, type, output)                                                                       \
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
#define AUTOLIEN_X(name, type, output)                                                                       \
    frames[#name] = to_numpy(column<type>(fs, [](const auto& f) { return f.name; }));
    AUTOLIEN_GB32960_FRAME_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    py::list codes;
    for (const auto& f : fs) {
        py::list c;
        for (const auto& code : f.ress_codes)
            c.append(py::str(code));
        codes.append(c);
    }
    frames["ress_codes"] = codes;
    frames["vin"] = to_binary_column(fs, [](const auto& f) -> const std::string& { return f.vin; });
    frames["iccid"] = to_binary_column(fs, [](const auto& f) -> const std::string& { return f.iccid; });
    frames["data_error"] =
        to_binary_column(fs, [](const auto& f) -> const std::string& { return f.data_error; });
    frames["data"] =
        to_binary_column(fs, [](const auto& f) -> const std::vector<std::uint8_t>& { return f.data; });

    auto& R = r.rows;
    py::dict rows;
    R.for_each_column(
        [&rows](const char* name, const char*, auto& col) { rows[name] = to_numpy(std::move(col)); });
    py::list scalars;
    for (auto& col : R.scalars)
        scalars.append(to_numpy(std::move(col)));
    rows["scalars"] = scalars;

    py::dict out;
    out["frames"] = frames;
    out["rows"] = rows;
    out["rejects"] = rejects_dict(r.rejects);
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
            py::dict rows;
#define AUTOLIEN_X(name, type, output)                                                                       \
    rows[#name] = to_numpy(column<type>(r.rows, [](const auto& x) { return x.name; }));
            AUTOLIEN_OBD_ROW_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
            rows["ecu"] = to_binary_column(r.rows, [](const auto& x) -> const std::string& { return x.ecu; });
            rows["format"] =
                to_binary_column(r.rows, [](const auto& x) -> const std::string& { return x.format; });
            rows["data"] = to_binary_column(
                r.rows, [](const auto& x) -> const std::vector<std::uint8_t>& { return x.data; });
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
    m.def(
        "jt808_safe_cut",
        [](const py::object& data, long long target, long long subpackage_window) -> py::object {
            if (subpackage_window < 1)
                throw std::invalid_argument("subpackage_window must be >= 1");
            if (target < 0)
                throw std::invalid_argument("target must be >= 0");
            const BytesView v = BytesView::require(data, "data");
            std::optional<std::size_t> cut;
            {
                const py::gil_scoped_release nogil;
                jt::Options opt;
                opt.subpackage_window = static_cast<std::size_t>(subpackage_window);
                cut = jt::safe_cut({v.data(), v.size()}, static_cast<std::size_t>(target), opt);
            }
            if (!cut)
                return py::none();
            return py::int_(*cut);
        },
        py::arg("data"), py::arg("target"), py::arg("subpackage_window") = 1024,
        "The end of the first frame at or past target after which no split message waits for "
        "parts (None: none before the data ends): a cut there decodes as the whole does.");
}
