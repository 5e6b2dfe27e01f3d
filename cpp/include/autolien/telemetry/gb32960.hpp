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

enum class Reason : std::uint8_t {
    junk = 1,
    bad_checksum = 2, // BCC (XOR from the command byte through the data) mismatch
    bad_body = 3,     // data shorter than its units need, or an unknown unit id
    truncated = 4,    // input ends inside a frame
};

// Scalar fields that can carry the abnormal/invalid markers; bit i of the
// row's flag words refers to Field i.
enum Field : std::uint8_t {
    f_vehicle_status,
    f_charging_status,
    f_run_mode,
    f_speed,
    f_odometer,
    f_voltage,
    f_current,
    f_soc,
    f_dcdc,
    f_insulation,
    f_accel,
    f_brake,
    f_max_cell_v,
    f_min_cell_v,
    f_max_temp,
    f_min_temp,
    f_engine_status,
    f_crank_rpm,
    f_fuel_rate,
    f_field_count
};

struct Rows {
    std::vector<std::uint64_t> offset;
    std::vector<std::uint32_t> frame_index; // into the frames list
    std::vector<std::int64_t> time_us;      // UTC; INT64_MIN when invalid
    std::vector<std::uint8_t> reissue;
    std::vector<double> scalars[f_field_count]; // NaN when absent or marked
    std::vector<std::uint8_t> gear;             // raw gear byte, 0xFF when absent
    std::vector<double> lat, lon;               // NaN when absent or invalid
    std::vector<std::int32_t> location_status;  // -1 when absent
    std::vector<std::int32_t> max_v_subsys, max_v_cell, min_v_subsys, min_v_cell, max_t_subsys, max_t_probe,
        min_t_subsys, min_t_probe;
    std::vector<std::int32_t> alarm_level;        // -1 when absent
    std::vector<std::int64_t> alarm_flags;        // -1 when absent
    std::vector<std::uint64_t> abnormal, invalid; // Field bit masks
    // Lists, as offsets into flat arrays (one range per row).
    std::vector<std::uint32_t> fault_start{0}; // faults: (category 0-3, code)
    std::vector<std::uint8_t> fault_category;
    std::vector<std::uint32_t> fault_code;
    std::vector<std::uint32_t> motor_start{0}; // 8 doubles per motor
    std::vector<double> motor;
    std::vector<std::uint32_t> cellset_start{0}; // per subsystem: no, V, A, total, start, first cell index
    std::vector<double> cellset;
    std::vector<std::uint32_t> cellset_cells_start{0};
    std::vector<double> cell_v;
    std::vector<std::uint32_t> probeset_start{0}; // per subsystem: no
    std::vector<std::uint8_t> probeset_no;
    std::vector<std::uint32_t> probeset_temps_start{0};
    std::vector<double> probe_c;
    std::vector<std::uint32_t> custom_start{0}; // custom units 0x80-0xFE, raw
    std::vector<std::uint8_t> custom_id;
    std::vector<std::uint32_t> custom_value_start{0};
    std::vector<std::uint8_t> custom_value;
    std::size_t size() const { return offset.size(); }
};

struct Frame {
    std::uint64_t offset;
    std::uint8_t cmd, ack, encryption;
    std::string vin;
    std::int64_t time_us;                // INT64_MIN when the frame has no (valid) time
    std::int32_t sequence;               // login/logout serial, -1 otherwise
    std::string iccid;                   // login
    std::vector<std::string> ress_codes; // login
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
