// GB/T 32960.3-2016 EV data: the "##" frame, BCC check, VIN, real-time (0x02)
// and reissue (0x03) data with its information units, login (0x01), logout
// (0x04), heartbeat (0x07) and time calibration (0x08).
//
// Values of 0xFE.. (abnormal) and 0xFF.. (invalid) become NaN with a flag bit
// (see Field), and the standard's offsets are applied.
#pragma once

#include "autolien/common/reject.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace autolien::telemetry::gb32960 {

// Reject reasons. A frame is rejected only when nothing in it can be trusted
// (checksum, truncation) or it has no collection time; a bad unit inside a
// good frame is flagged in units_error and the units before it are kept.
enum class Reason : std::uint8_t {
    junk = 1,
    bad_checksum = 2, // BCC (XOR from the command byte through the data) mismatch
    bad_body = 3,     // real-time data without its 6-byte time, or login/logout data cut short
    truncated = 4,    // input ends inside a frame
};

// Why a row's information units did not all decode (column units_error).
enum class UnitsError : std::uint8_t {
    none = 0,
    unknown_unit = 1, // an id with no defined layout and no length: it and the rest kept raw
    cut_short = 2,    // a unit runs past the end of the data: it and the rest kept raw
};

// Scalar fields that can carry the abnormal/invalid markers: X(id, column
// name, output type). Bit i of the row's flag words refers to Field i, and the
// Python schema's scalar columns are generated from this list.
#define AUTOLIEN_GB32960_FIELDS(X)                                                                           \
    X(vehicle_status, "vehicle_status", "uint8?")                                                            \
    X(charging_status, "charging_status", "uint8?")                                                          \
    X(run_mode, "run_mode", "uint8?")                                                                        \
    X(speed, "speed_kmh", "float64?")                                                                        \
    X(odometer, "odometer_km", "float64?")                                                                   \
    X(voltage, "pack_voltage_v", "float64?")                                                                 \
    X(current, "pack_current_a", "float64?")                                                                 \
    X(soc, "soc_pct", "float64?")                                                                            \
    X(dcdc, "dcdc_status", "uint8?")                                                                         \
    X(insulation, "insulation_kohm", "float64?")                                                             \
    X(accel, "accel_pedal_pct", "float64?")                                                                  \
    X(brake, "brake_pedal", "float64?")                                                                      \
    X(max_cell_v, "max_cell_v", "float64?")                                                                  \
    X(min_cell_v, "min_cell_v", "float64?")                                                                  \
    X(max_temp, "max_temp_c", "float64?")                                                                    \
    X(min_temp, "min_temp_c", "float64?")                                                                    \
    X(engine_status, "engine_status", "uint8?")                                                              \
    X(crank_rpm, "crankshaft_rpm", "float64?")                                                               \
    X(fuel_rate, "fuel_rate_l_per_100km", "float64?")

enum Field : std::uint8_t {
#define AUTOLIEN_X(id, name, output) f_##id,
    AUTOLIEN_GB32960_FIELDS(AUTOLIEN_X)
#undef AUTOLIEN_X
        f_field_count
};

// The row columns besides `scalars`: X(name, element type, output type), as
// in jt808.hpp ("?": -1 or NaN becomes null; "": reshaped in Python).
#define AUTOLIEN_GB32960_ROW_COLUMNS(X)                                                                      \
    X(offset, std::uint64_t, "")                                                                             \
    X(frame_index, std::uint32_t, "") /* into the frames list */                                             \
    X(time_us, std::int64_t, "")      /* UTC; INT64_MIN when invalid */                                      \
    X(reissue, std::uint8_t, "")                                                                             \
    X(gear, std::uint8_t, "")  /* raw gear byte, 0xFF when absent */                                         \
    X(lat, double, "float64?") /* NaN when absent or invalid */                                              \
    X(lon, double, "float64?")                                                                               \
    X(location_status, std::int32_t, "uint8?")                                                               \
    X(max_v_subsys, std::int32_t, "uint8?")                                                                  \
    X(max_v_cell, std::int32_t, "uint8?")                                                                    \
    X(min_v_subsys, std::int32_t, "uint8?")                                                                  \
    X(min_v_cell, std::int32_t, "uint8?")                                                                    \
    X(max_t_subsys, std::int32_t, "uint8?")                                                                  \
    X(max_t_probe, std::int32_t, "uint8?")                                                                   \
    X(min_t_subsys, std::int32_t, "uint8?")                                                                  \
    X(min_t_probe, std::int32_t, "uint8?")                                                                   \
    X(alarm_level, std::int32_t, "uint8?")                                                                   \
    X(alarm_flags, std::int64_t, "uint32?")                                                                  \
    X(abnormal, std::uint64_t, "") /* Field bit masks */                                                     \
    X(invalid, std::uint64_t, "")                                                                            \
    X(units_error, std::uint8_t, "")        /* UnitsError */                                                 \
    X(units_error_offset, std::int32_t, "") /* byte in the frame's data; -1 when none */                     \
    X(tail_start, std::uint32_t, "")        /* row i's raw undecoded units: [tail_start[i], [i + 1]) */      \
    X(tail, std::uint8_t, "")                                                                                \
    X(fault_start, std::uint32_t, "") /* faults: (category 0-3, code) */                                     \
    X(fault_category, std::uint8_t, "")                                                                      \
    X(fault_code, std::uint32_t, "")                                                                         \
    X(motor_start, std::uint32_t, "") /* 8 doubles per motor */                                              \
    X(motor, double, "")                                                                                     \
    X(cellset_start, std::uint32_t, "") /* per subsystem: no, V, A, total, start, cells */                   \
    X(cellset, double, "")                                                                                   \
    X(cellset_cells_start, std::uint32_t, "")                                                                \
    X(cell_v, double, "")                                                                                    \
    X(probeset_start, std::uint32_t, "") /* per subsystem: no */                                             \
    X(probeset_no, std::uint8_t, "")                                                                         \
    X(probeset_temps_start, std::uint32_t, "")                                                               \
    X(probe_c, double, "")                                                                                   \
    X(custom_start, std::uint32_t, "") /* custom units 0x80-0xFE and 0x03, raw */                            \
    X(custom_id, std::uint8_t, "")                                                                           \
    X(custom_value_start, std::uint32_t, "")                                                                 \
    X(custom_value, std::uint8_t, "")

struct Rows {
#define AUTOLIEN_X(name, type, output) std::vector<type> name;
    AUTOLIEN_GB32960_ROW_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    std::vector<double> scalars[f_field_count]; // NaN when absent or marked

    // The offset columns start with their 0 (list ranges, one per row or set).
    Rows()
        : tail_start{0}, fault_start{0}, motor_start{0}, cellset_start{0}, cellset_cells_start{0},
          probeset_start{0}, probeset_temps_start{0}, custom_start{0}, custom_value_start{0} {}

    std::size_t size() const { return offset.size(); }

    // Calls f(name, output, column) for every column but `scalars`, in order.
    template <typename F> void for_each_column(F&& f) {
#define AUTOLIEN_X(name, type, output) f(#name, output, name);
        AUTOLIEN_GB32960_ROW_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
    }
};

// The frame columns the binding builds from `Frame` (the strings and lists
// are columns beside these).
#define AUTOLIEN_GB32960_FRAME_COLUMNS(X)                                                                    \
    X(offset, std::uint64_t, "uint64")                                                                       \
    X(cmd, std::uint8_t, "uint8")                                                                            \
    X(ack, std::uint8_t, "uint8")                                                                            \
    X(encryption, std::uint8_t, "uint8")                                                                     \
    X(time_us, std::int64_t, "")                                                                             \
    X(sequence, std::int32_t, "uint16?")

struct Frame {
    std::uint64_t offset;
    std::uint8_t cmd, ack, encryption;
    std::string vin;
    std::int64_t time_us;                // INT64_MIN when the frame has no (valid) time
    std::int32_t sequence;               // login/logout serial, -1 otherwise
    std::string iccid;                   // login
    std::vector<std::string> ress_codes; // login
    std::string data_error;              // login/logout data cut short after its time: what is missing
    std::vector<std::uint8_t> data;
};

using Reject = autolien::Reject<Reason>;

struct Result {
    std::vector<Frame> frames;
    Rows rows;
    std::vector<Reject> rejects;
};

Result decode(std::span<const std::uint8_t> data);

// yy mm dd hh mi ss (binary, GMT+8) to UTC microseconds; INT64_MIN if invalid.
std::int64_t binary_time_gmt8_to_utc_us(const std::uint8_t* p);

} // namespace autolien::telemetry::gb32960
