#include "autolien/telemetry/jt808.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>

namespace autolien::telemetry::jt808 {

namespace {

constexpr std::uint8_t kFlag = 0x7E;
constexpr std::uint8_t kEsc = 0x7D;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();

inline std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

std::string hex2(unsigned v) {
    static const char* d = "0123456789ABCDEF";
    return std::string("0x") + d[(v >> 4) & 15] + d[v & 15];
}

// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t(era) * 146097 + std::int64_t(doe) - 719468;
}

bool bcd_byte(std::uint8_t b, int& out) {
    const int hi = b >> 4, lo = b & 15;
    if (hi > 9 || lo > 9)
        return false;
    out = hi * 10 + lo;
    return true;
}

// Terminal number: its nibbles as digits with leading zeros removed (at
// least one digit). Returns false when a nibble is above 9 (not BCD): real
// devices send such numbers, which are then kept as their hex digits.
bool terminal_number(const std::uint8_t* p, std::size_t n, std::string& out) {
    static const char* hx = "0123456789ABCDEF";
    out.clear();
    bool bcd = true;
    for (std::size_t i = 0; i < n; ++i) {
        const int hi = p[i] >> 4, lo = p[i] & 15;
        bcd = bcd && hi <= 9 && lo <= 9;
        out.push_back(hx[hi]);
        out.push_back(hx[lo]);
    }
    const auto first = out.find_first_not_of('0');
    out = first == std::string::npos ? "0" : out.substr(first);
    return bcd;
}

// Defined length of a standard additional item (2013 edition), -1 for others.
int standard_item_length(std::uint8_t id) {
    switch (id) {
    case 0x01:
    case 0x25:
    case 0x2B:
        return 4;
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x2A:
        return 2;
    case 0x11:
    case 0x30:
    case 0x31:
        return 1;
    case 0x12:
        return 6;
    case 0x13:
        return 7;
    default:
        return -1;
    }
}

void push_location_defaults(Locations& L) {
    L.mileage_km.push_back(kNaN);
    L.fuel_l.push_back(kNaN);
    L.recorder_speed_kmh.push_back(kNaN);
    for (auto* v : {&L.alarm_event_id, &L.overspeed_type, &L.overspeed_area_id, &L.area_alarm_type,
                    &L.area_alarm_id, &L.area_alarm_direction, &L.route_id, &L.route_time_s, &L.route_result,
                    &L.ext_status, &L.io_status, &L.analog, &L.signal_strength, &L.satellites})
        v->push_back(-1);
}

struct Pending {
    std::uint64_t first_frame;
    std::uint64_t offset;
    std::uint16_t total;
    std::map<std::uint16_t, Message> parts;
    std::vector<std::uint8_t> raw; // every part's frame bytes, for a reject
};

class Decoder {
  public:
    Decoder(std::span<const std::uint8_t> data, const Options& opt) : data_(data), opt_(opt) {}

    Result run() {
        frames(SIZE_MAX);
        expire_all();
        return std::move(out_);
    }

    // Frames only as far as the pending split messages need (see safe_cut):
    // no rows, no rejects.
    std::optional<std::size_t> scan(std::size_t target) {
        scan_ = true;
        return frames(target);
    }

  private:
    // Walks the frames. Returns the position after the first frame that ends
    // at or past `target` with no split message waiting for parts; the
    // decoder then holds nothing but counters, so the input can be cut there.
    std::optional<std::size_t> frames(std::size_t target) {
        const std::size_t n = data_.size();
        std::size_t pos = 0;
        std::size_t junk_start = SIZE_MAX;
        while (pos < n) {
            if (data_[pos] != kFlag) {
                if (junk_start == SIZE_MAX)
                    junk_start = pos;
                ++pos;
                continue;
            }
            flush_junk(junk_start, pos);
            const auto* close =
                static_cast<const std::uint8_t*>(std::memchr(data_.data() + pos + 1, kFlag, n - pos - 1));
            if (close == nullptr) {
                reject(pos, Reason::truncated, "frame has no closing 0x7E (truncated input)", pos, n);
                pos = n;
                break;
            }
            const auto end = static_cast<std::size_t>(close - data_.data());
            if (end == pos + 1) { // 7E 7E: the second flag opens the next frame
                pos = end;
                continue;
            }
            frame(pos, end);
            pos = end + 1;
            if (pos >= target && pending_.empty())
                return pos;
        }
        flush_junk(junk_start, pos);
        return std::nullopt;
    }

    void flush_junk(std::size_t& start, std::size_t end) {
        if (scan_) {
            start = SIZE_MAX;
            return;
        }
        autolien::flush_junk(out_.rejects, data_, start, end, "0x7E frame");
    }

    void reject(std::uint64_t offset, Reason r, std::string msg, std::size_t b, std::size_t e) {
        if (scan_)
            return;
        add_reject(out_.rejects, data_, offset, r, std::move(msg), b, e);
    }

    // Whether the frame may be part of a split message: false only when its
    // unescaped properties have bit 13 clear. Anything odd goes the full way.
    bool maybe_part(std::size_t start, std::size_t end) const {
        std::uint8_t h[4];
        std::size_t k = 0;
        for (std::size_t i = start + 1; k < 4 && i < end; ++k) {
            std::uint8_t b = data_[i++];
            if (b == kEsc) {
                if (i >= end || (data_[i] != 0x01 && data_[i] != 0x02))
                    return true;
                b = data_[i++] == 0x01 ? kEsc : kFlag;
            }
            h[k] = b;
        }
        return k < 4 || ((h[2] >> 5) & 1) != 0;
    }

    void frame(std::size_t start, std::size_t end) {
        ++frame_no_;
        expire_old();
        if (scan_ && !maybe_part(start, end))
            return;
        const std::size_t raw_end = end + 1;
        buf_.clear();
        // Unescape in runs: copy up to the next 0x7D, then translate it.
        const std::uint8_t* cur = data_.data() + start + 1;
        const std::uint8_t* const stop = data_.data() + end;
        while (cur < stop) {
            const auto* esc =
                static_cast<const std::uint8_t*>(std::memchr(cur, kEsc, std::size_t(stop - cur)));
            const std::uint8_t* run_end = esc != nullptr ? esc : stop;
            buf_.insert(buf_.end(), cur, run_end);
            if (esc == nullptr)
                break;
            if (esc + 1 >= stop || (esc[1] != 0x01 && esc[1] != 0x02)) {
                reject(start, Reason::bad_escape,
                       "0x7D at byte " + std::to_string(esc - (data_.data() + start)) +
                           " is not followed by 0x01 or 0x02",
                       start, raw_end);
                return;
            }
            buf_.push_back(esc[1] == 0x01 ? kEsc : kFlag);
            cur = esc + 2;
        }
        if (buf_.size() < 13) {
            reject(start, Reason::header_too_short,
                   std::to_string(buf_.size()) + " unescaped bytes: too short for a header and check code",
                   start, raw_end);
            return;
        }
        std::uint8_t x = 0;
        for (std::size_t i = 0; i + 1 < buf_.size(); ++i)
            x ^= buf_[i];
        if (x != buf_.back()) {
            reject(start, Reason::bad_checksum,
                   "check code " + hex2(buf_.back()) + " but the XOR of header and body is " + hex2(x), start,
                   raw_end);
            return;
        }
        const std::size_t L = buf_.size() - 1;
        const std::uint8_t* c = buf_.data();
        const std::uint16_t props = be16(c + 2);
        const std::size_t body_len = props & 0x3FF;
        const bool sub = (props >> 13) & 1;
        const std::size_t h13 = 12 + (sub ? 4 : 0);
        const std::size_t h19 = 17 + (sub ? 4 : 0);
        Message m{};
        m.offset = start;
        m.msg_id = be16(c);
        m.encryption = static_cast<std::uint8_t>((props >> 10) & 7);
        m.version_flag = (props >> 14) & 1;
        // The version follows from the length: bit 14 alone is wrong on real devices.
        if (L == h13 + body_len) {
            m.v2019 = false;
        } else if (L == h19 + body_len) {
            m.v2019 = true;
        } else {
            const auto why = L < h13 ? Reason::header_too_short : Reason::body_length_mismatch;
            reject(start, why,
                   "declared body length " + std::to_string(body_len) + " fits neither a 2013 header (" +
                       std::to_string(h13 + body_len) + " bytes) nor a 2019 header (" +
                       std::to_string(h19 + body_len) + " bytes); got " + std::to_string(L),
                   start, raw_end);
            return;
        }
        const std::size_t phone_at = m.v2019 ? 5 : 4;
        const std::size_t phone_len = m.v2019 ? 10 : 6;
        if (m.v2019)
            m.protocol_version = c[4];
        // A non-BCD number costs nothing else in the frame: kept as hex, flagged.
        m.terminal_id_bcd = terminal_number(c + phone_at, phone_len, m.terminal_id);
        std::size_t p = phone_at + phone_len;
        m.serial = be16(c + p);
        p += 2;
        if (sub) {
            m.pkg_total = be16(c + p);
            m.pkg_index = be16(c + p + 2);
            p += 4;
        }
        const std::span<const std::uint8_t> body(buf_.data() + p, L - p);
        if (sub && m.pkg_total > 1) {
            m.body.assign(body.begin(), body.end());
            part(std::move(m), start, raw_end);
            return;
        }
        deliver(std::move(m), body, start, raw_end, {});
    }

    void part(Message&& m, std::size_t start, std::size_t raw_end) {
        if (m.pkg_index == 0 || m.pkg_index > m.pkg_total) {
            reject(start, Reason::bad_body,
                   "package index " + std::to_string(m.pkg_index) + " outside 1.." +
                       std::to_string(m.pkg_total),
                   start, raw_end);
            return;
        }
        const auto base_serial = static_cast<std::uint16_t>(m.serial - (m.pkg_index - 1));
        const auto key = std::make_tuple(m.terminal_id, m.msg_id, m.pkg_total, base_serial);
        auto it = pending_.find(key);
        if (it == pending_.end())
            it = pending_.emplace(key, Pending{frame_no_, start, m.pkg_total, {}, {}}).first;
        Pending& pend = it->second;
        if (scan_) { // which parts arrived is all a scan needs
            pend.parts[m.pkg_index] = Message{};
            if (pend.parts.size() >= pend.total)
                pending_.erase(it);
            return;
        }
        pend.raw.insert(pend.raw.end(), data_.begin() + static_cast<std::ptrdiff_t>(start),
                        data_.begin() + static_cast<std::ptrdiff_t>(raw_end));
        pend.parts[m.pkg_index] = std::move(m);
        if (pend.parts.size() < pend.total)
            return;
        Message whole = pend.parts.begin()->second;
        whole.offset = pend.offset;
        std::vector<std::uint8_t> assembled;
        for (auto& [idx, pm] : pend.parts)
            assembled.insert(assembled.end(), pm.body.begin(), pm.body.end());
        whole.body.clear();
        std::vector<std::uint8_t> raw = std::move(pend.raw);
        pending_.erase(it);
        deliver(std::move(whole), assembled, 0, 0, std::move(raw));
    }

    void expire_old() {
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (frame_no_ - it->second.first_frame > opt_.subpackage_window) {
                expire(it->second,
                       "not all parts seen within " + std::to_string(opt_.subpackage_window) + " frames");
                it = pending_.erase(it);
            } else {
                ++it;
            }
        }
    }

    void expire_all() {
        for (auto& [key, pend] : pending_)
            expire(pend, "input ended before all parts arrived");
        pending_.clear();
    }

    void expire(Pending& pend, const std::string& why) {
        if (scan_)
            return;
        out_.rejects.push_back({pend.offset, Reason::subpackage_timeout,
                                "split message: " + std::to_string(pend.parts.size()) + " of " +
                                    std::to_string(pend.total) + " parts; " + why,
                                std::move(pend.raw)});
    }

    // raw_override holds the frames of a reassembled message; otherwise the
    // frame is data_[start, raw_end). A body that yields no location at all is
    // rejected; one that yields some keeps them and says what it could not read.
    void deliver(Message&& m, std::span<const std::uint8_t> body, std::size_t start, std::size_t raw_end,
                 std::vector<std::uint8_t> raw_override) {
        if (scan_) // a whole message: nothing waits on it
            return;
        const auto index = static_cast<std::uint32_t>(out_.messages.size());
        std::string err;
        if (m.encryption & 1) {
            // RSA-encrypted bodies are kept (in messages) but not decoded.
        } else if (m.msg_id == 0x0200) {
            err = decode_location_body(body, out_.locations, index, false);
        } else if (m.msg_id == 0x0704) {
            const std::size_t rows = out_.locations.size();
            err = decode_batch(body, index);
            if (!err.empty() && out_.locations.size() > rows) {
                m.body_error = std::move(err);
                err.clear();
            }
        }
        if (!err.empty()) {
            std::vector<std::uint8_t> raw =
                raw_override.empty()
                    ? std::vector<std::uint8_t>(data_.begin() + static_cast<std::ptrdiff_t>(start),
                                                data_.begin() + static_cast<std::ptrdiff_t>(raw_end))
                    : std::move(raw_override);
            out_.rejects.push_back({m.offset, Reason::bad_body,
                                    hex2(m.msg_id >> 8) + hex2(m.msg_id & 0xFF).substr(2) + " body: " + err,
                                    std::move(raw)});
            return;
        }
        out_.body_data.insert(out_.body_data.end(), body.begin(), body.end());
        out_.body_start.push_back(static_cast<std::int64_t>(out_.body_data.size()));
        out_.messages.push_back(std::move(m));
    }

    // Decodes every item the batch frames correctly: an item that is not a
    // location is skipped (its bytes stay in the message body), the items
    // after it still decode. Returns "" when the whole body framed cleanly,
    // else the first problem with its byte offset.
    std::string decode_batch(std::span<const std::uint8_t> body, std::uint32_t index) {
        if (body.size() < 3)
            return "0x0704 needs count and type (3 bytes), got " + std::to_string(body.size());
        const std::size_t count = be16(body.data());
        const bool reissue = body[2] == 1;
        std::size_t p = 3;
        std::string first;
        for (std::size_t i = 0; i < count; ++i) {
            if (p + 2 > body.size())
                return first.empty() ? "item " + std::to_string(i) + " of " + std::to_string(count) +
                                           " is missing (body ends at byte " + std::to_string(p) + ")"
                                     : first;
            const std::size_t len = be16(body.data() + p);
            if (p + 2 + len > body.size())
                return first.empty() ? "item " + std::to_string(i) + " at byte " + std::to_string(p) +
                                           " declares " + std::to_string(len) + " bytes but only " +
                                           std::to_string(body.size() - p - 2) + " remain"
                                     : first;
            auto err = decode_location_body(body.subspan(p + 2, len), out_.locations, index, reissue);
            if (!err.empty() && first.empty())
                first = "item " + std::to_string(i) + " at byte " + std::to_string(p) + ": " + err;
            p += 2 + len;
        }
        if (!first.empty())
            return first;
        if (p != body.size())
            return std::to_string(body.size() - p) + " byte(s) after the last of " + std::to_string(count) +
                   " items (from byte " + std::to_string(p) + ")";
        return {};
    }

    std::span<const std::uint8_t> data_;
    Options opt_;
    Result out_;
    std::vector<std::uint8_t> buf_;
    std::uint64_t frame_no_ = 0;
    bool scan_ = false;
    std::map<std::tuple<std::string, std::uint16_t, std::uint16_t, std::uint16_t>, Pending> pending_;
};

} // namespace

std::int64_t bcd_time_gmt8_to_utc_us(const std::uint8_t* b) {
    int v[6];
    for (int i = 0; i < 6; ++i)
        if (!bcd_byte(b[i], v[i]))
            return kNoTime;
    const int year = 2000 + v[0];
    const auto month = static_cast<unsigned>(v[1]);
    const auto day = static_cast<unsigned>(v[2]);
    if (month < 1 || month > 12 || day < 1 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return kNoTime;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[month - 1] + (month == 2 && leap ? 1u : 0u))
        return kNoTime;
    const std::int64_t secs = days_from_civil(year, month, day) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
    return (secs - 8 * 3600) * 1'000'000; // GMT+8 to UTC
}

std::string decode_location_body(std::span<const std::uint8_t> body, Locations& L,
                                 std::uint32_t message_index, bool reissue) {
    if (body.size() < 28)
        return "location needs 28 bytes, got " + std::to_string(body.size());
    const std::uint8_t* b = body.data();
    const std::uint32_t status = be32(b + 4);
    const double lat = be32(b + 8) / 1e6; // division rounds correctly, a 1e-6 product does not
    const double lon = be32(b + 12) / 1e6;
    L.message_index.push_back(message_index);
    L.reissue.push_back(reissue ? 1 : 0);
    L.alarm.push_back(be32(b));
    L.status.push_back(status);
    // Magnitudes are unsigned; bit 2 is south, bit 3 is west.
    L.lat.push_back((status & 0x4) ? -lat : lat);
    L.lon.push_back((status & 0x8) ? -lon : lon);
    L.altitude_m.push_back(be16(b + 16));
    L.speed_kmh.push_back(be16(b + 18) / 10.0);
    L.heading_deg.push_back(be16(b + 20));
    L.time_us.push_back(bcd_time_gmt8_to_utc_us(b + 22));
    push_location_defaults(L);
    const std::size_t row = L.size() - 1;
    // The basic block is good: a bad item never costs the position. Items
    // decode until the first one that does not frame; the rest is kept raw
    // in `tail` and flagged in items_error / items_error_offset.
    // A bad tail outranks an earlier short item (which stays in extras).
    auto error = ItemsError::none;
    std::size_t error_at = 0;
    const auto flag = [&](ItemsError e, std::size_t at) {
        if (error == ItemsError::none || e != ItemsError::short_item) {
            error = e;
            error_at = at;
        }
    };
    const std::size_t n = body.size();
    std::size_t p = 28;
    while (p < n) {
        const std::uint8_t id = b[p];
        if (id == 0) { // 0x00 is reserved: devices pad the body with zero ids
            flag(ItemsError::padding, p);
            break;
        }
        if (p + 2 > n) {
            flag(ItemsError::truncated_header, p);
            break;
        }
        const std::size_t len = b[p + 1];
        if (p + 2 + len > n) {
            flag(ItemsError::overrun, p);
            break;
        }
        const std::uint8_t* v = b + p + 2;
        // Shorter than the standard defines cannot be read (kept raw, flagged);
        // longer is read from its defined prefix and also kept raw (vendors
        // extend items).
        const int want = standard_item_length(id);
        bool known = want >= 0 && len >= std::size_t(want);
        if (want >= 0 && !known)
            flag(ItemsError::short_item, p);
        if (known) {
            switch (id) {
            case 0x01:
                L.mileage_km[row] = be32(v) / 10.0;
                break;
            case 0x02:
                L.fuel_l[row] = be16(v) / 10.0;
                break;
            case 0x03:
                L.recorder_speed_kmh[row] = be16(v) / 10.0;
                break;
            case 0x04:
                L.alarm_event_id[row] = be16(v);
                break;
            case 0x11:
                L.overspeed_type[row] = v[0];
                if (len >= 5)
                    L.overspeed_area_id[row] = be32(v + 1);
                break;
            case 0x12:
                L.area_alarm_type[row] = v[0];
                L.area_alarm_id[row] = be32(v + 1);
                L.area_alarm_direction[row] = v[5];
                break;
            case 0x13:
                L.route_id[row] = be32(v);
                L.route_time_s[row] = be16(v + 4);
                L.route_result[row] = v[6];
                break;
            case 0x25:
                L.ext_status[row] = be32(v);
                break;
            case 0x2A:
                L.io_status[row] = be16(v);
                break;
            case 0x2B:
                L.analog[row] = be32(v);
                break;
            case 0x30:
                L.signal_strength[row] = v[0];
                break;
            case 0x31:
                L.satellites[row] = v[0];
                break;
            default:
                known = false;
            }
        }
        const bool exact = want < 0 || std::size_t(want) == len || (id == 0x11 && len == 5);
        if (!known || !exact) {
            // Vendor items (0xE0-0xFF), items of later editions and items of an
            // unexpected length are kept raw, never dropped.
            L.extra_id.push_back(id);
            L.extra_value.insert(L.extra_value.end(), v, v + len);
            L.extra_value_start.push_back(static_cast<std::uint32_t>(L.extra_value.size()));
        }
        p += 2 + len;
    }
    L.extra_start.push_back(static_cast<std::uint32_t>(L.extra_id.size()));
    L.items_error.push_back(static_cast<std::uint8_t>(error));
    L.items_error_offset.push_back(error == ItemsError::none ? -1 : static_cast<std::int32_t>(error_at));
    if (p < n)
        L.tail.insert(L.tail.end(), b + p, b + n);
    L.tail_start.push_back(static_cast<std::uint32_t>(L.tail.size()));
    return {};
}

Result decode(std::span<const std::uint8_t> data, const Options& options) {
    return Decoder(data, options).run();
}

std::optional<std::size_t> safe_cut(std::span<const std::uint8_t> data, std::size_t target,
                                    const Options& options) {
    return Decoder(data, options).scan(target);
}

} // namespace autolien::telemetry::jt808
