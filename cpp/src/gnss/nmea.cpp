#include "autolien/gnss/nmea.hpp"

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace autolien::gnss::nmea {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t kNoTime = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kDayUs = 86'400'000'000LL;
constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::min(); // a day or time not known

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t(era) * 146097 + std::int64_t(doe) - 719468;
}

// Powers of ten that a double holds exactly.
constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// The hot parsers return plain values with an impossible one for "bad" (NaN,
// -1): a std::optional<double> built in one register and a flag byte was
// stored in two parts and read back as one 16-byte load, and each such
// store-forwarding stall cost more than the parse (a fifth of RMC's time).

double num_slow(std::string_view s) {
    double v = 0;
    const auto* first = s.data();
    if (*first == '+')
        ++first; // from_chars takes no '+'; "+-1" stays an error, as in Python
    if (first == s.data() + s.size() || (*first == '-' && first != s.data()))
        return kNaN;
    auto [p, ec] = std::from_chars(first, s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v))
        return kNaN;
    return v;
}

// The value of p[0, 8) when all eight bytes are ASCII digits (else -1), in
// a few word operations instead of eight multiply-adds: for the long
// fractions of positions (ddmm.mmmmmmmm).
inline std::int64_t eight_digits(const char* p) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    if ((((w & 0xF0F0F0F0F0F0F0F0ULL) | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) !=
         0x3333333333333333ULL))
        return -1;
    w -= 0x3030303030303030ULL; // the first digit is the lowest byte
    w = (w * 10) + (w >> 8);
    w = (((w & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((w >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
        32;
    return std::int64_t(w & 0xFFFFFFFFULL);
}

// A decimal field in place. NMEA numbers are [+-]digits[.digits]: as an
// integer mantissa below 2^53 over an exact power of ten, one IEEE division
// rounds correctly, so this equals from_chars, which takes everything else.
// NaN when the text is not a number (a number is never NaN: see num_slow).
[[gnu::always_inline]] inline double num(std::string_view s) {
    if (s.empty())
        return kNaN;
    const char* p = s.data();
    const char* const end = p + s.size();
    const bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        ++p;
    std::uint64_t m = 0; // wraps past 19 digits, but then from_chars decides
    const char* const whole = p;
    unsigned d = 0;
    while (p < end && (d = unsigned(*p) - '0') < 10) {
        m = m * 10 + d;
        ++p;
    }
    std::ptrdiff_t digits = p - whole, frac = 0;
    if (p < end && *p == '.') {
        const char* const first = ++p;
        for (std::int64_t eight; end - p >= 8 && (eight = eight_digits(p)) >= 0; p += 8)
            m = m * 100'000'000 + std::uint64_t(eight);
        while (p < end && (d = unsigned(*p) - '0') < 10) {
            m = m * 10 + d;
            ++p;
        }
        frac = p - first;
        digits += frac;
    }
    if (p != end || digits == 0 || digits > 15) [[unlikely]]
        return num_slow(s);
    double v = double(std::int64_t(m)); // below 10^15: exact, and one instruction signed
    if (frac > 0)
        v /= kPow10[frac];
    return neg ? -v : v;
}

// Up to three plain digits as an integer; -1 for any other text (which the
// caller then reads by the general rule).
inline std::int32_t small_uint(std::string_view s) {
    if (s.empty() || s.size() > 3)
        return -1;
    std::int32_t v = 0;
    for (const char ch : s) {
        const unsigned d = unsigned(ch) - '0';
        if (d >= 10)
            return -1;
        v = v * 10 + std::int32_t(d);
    }
    return v;
}

// a == b for short texts, inline (a memcmp call costs more than it compares).
inline bool same_text(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    std::size_t i = 0;
    for (; i + 8 <= a.size(); i += 8) {
        std::uint64_t x, y;
        std::memcpy(&x, a.data() + i, 8);
        std::memcpy(&y, b.data() + i, 8);
        if (x != y)
            return false;
    }
    for (; i < a.size(); ++i)
        if (a[i] != b[i])
            return false;
    return true;
}

// ddmm.mmmm / dddmm.mmmm with a hemisphere letter; NaN when malformed.
double coord(std::string_view v, std::string_view hemi, int deg_digits) {
    if (v.size() < std::size_t(deg_digits) + 2 || hemi.size() != 1)
        return kNaN;
    int deg = 0;
    for (int i = 0; i < deg_digits; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return kNaN;
        deg = deg * 10 + (v[i] - '0');
    }
    const double minutes = num(v.substr(deg_digits));
    if (!(minutes >= 0 && minutes < 60)) // NaN too
        return kNaN;
    double out = deg + minutes / 60.0;
    const char h = hemi[0];
    if (h == 'S' || h == 'W')
        out = -out;
    else if (h != 'N' && h != 'E')
        return kNaN;
    return out;
}

// hhmmss(.sss) to microseconds of the day; -1 when malformed.
std::int64_t time_of_day(std::string_view s) {
    if (s.size() < 6)
        return -1;
    int v[3];
    for (int i = 0; i < 3; ++i) {
        const char a = s[2 * i], b = s[2 * i + 1];
        if (a < '0' || a > '9' || b < '0' || b > '9')
            return -1;
        v[i] = (a - '0') * 10 + (b - '0');
    }
    if (v[0] > 23 || v[1] > 59 || v[2] > 60)
        return -1;
    std::int64_t frac_us = 0;
    if (s.size() > 6) {
        if (s[6] != '.')
            return -1;
        std::int64_t scale = 100'000;
        for (std::size_t i = 7; i < s.size(); ++i) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            frac_us += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    return (v[0] * 3600LL + v[1] * 60LL + v[2]) * 1'000'000LL + frac_us;
}

// ddmmyy to days since 1970 (years 80-99 are 19xx, as NMEA has it);
// -1 when malformed (the days it can give are all after 1980).
std::int64_t date_days(std::string_view s) {
    if (s.size() != 6)
        return -1;
    int v[3];
    for (int i = 0; i < 3; ++i) {
        const char a = s[2 * i], b = s[2 * i + 1];
        if (a < '0' || a > '9' || b < '0' || b > '9')
            return -1;
        v[i] = (a - '0') * 10 + (b - '0');
    }
    if (v[1] < 1 || v[1] > 12 || v[0] < 1 || v[0] > 31)
        return -1;
    const int year = v[2] >= 80 ? 1900 + v[2] : 2000 + v[2];
    return days_from_civil(year, unsigned(v[1]), unsigned(v[0]));
}

// Comma-separated fields as bounds in a fixed array: no allocation and no
// view built per sentence. Field i is (text + bound[i], text + bound[i + 1])
// exclusive: bound[0] is the '$', then the commas, then the '*' or the end. A
// sentence with more fields than kMaxFields keeps the rest in the last one.
constexpr std::size_t kMaxFields = 40;
struct Fields {
    const char* text = nullptr;
    // The scan writes a 32-byte block's commas (up to 32) before it caps the
    // count.
    std::array<std::uint32_t, kMaxFields + 33> bound{};
    std::size_t n = 0;
    std::size_t size() const { return n; }
    std::string_view operator[](std::size_t i) const {
        return {text + bound[i] + 1, std::size_t(bound[i + 1] - bound[i] - 1)};
    }
};

#if defined(__SSE2__)
// 32 bytes of 0xFF then 32 of 0. The mask that keeps the first k bytes of a
// 32-byte block: kPrefixMask + 32 - k for its first register and
// kPrefixMask + 48 - k for its second (which keeps k - 16 bytes, or none).
alignas(64) constexpr std::uint8_t kPrefixMask[64] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
#endif

// A hex digit's value, -1 for any other byte: one table load (the compares
// branched on every checksum).
constexpr std::array<std::int8_t, 256> kHexValue = [] {
    std::array<std::int8_t, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[std::size_t(c)] = std::int8_t(c >= '0' && c <= '9'   ? c - '0'
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                               : -1);
    return t;
}();

int hex_digit(char c) {
    return kHexValue[std::uint8_t(c)];
}

// An optional number: empty is absent (NaN); malformed is NaN with the
// column's bit set in `bad`, so that the row says why it is null.
[[gnu::always_inline]] inline double opt_num(std::string_view s, std::uint32_t& bad, FixColumn c) {
    if (s.empty())
        return kNaN;
    if (const double v = num(s); v == v)
        return v;
    bad |= bit(c);
    return kNaN;
}

// An optional whole number in [0, hi]; -1 when absent or malformed.
std::int32_t opt_count(std::string_view s, std::int32_t hi, std::uint32_t& bad, FixColumn c) {
    if (s.empty())
        return -1;
    if (const std::int32_t v = small_uint(s); v >= 0 && v <= hi)
        return v;
    if (const double v = num(s); v >= 0 && v <= hi && v == std::floor(v))
        return std::int32_t(v);
    bad |= bit(c);
    return -1;
}

// An optional one-letter field (status, mode); 0 when absent or malformed.
std::uint8_t opt_letter(std::string_view s, std::uint32_t& bad, FixColumn c) {
    if (s.empty())
        return 0;
    if (s.size() == 1 && s[0] >= 'A' && s[0] <= 'Z')
        return std::uint8_t(s[0]);
    bad |= bit(c);
    return 0;
}

struct Epoch {
    bool open = false;
    std::uint64_t offset = 0;
    std::uint8_t source = 1;
    // kNone when not known (no std::optional: see num_slow).
    std::int64_t tod_us = kNone;
    std::int64_t day = kNone; // from RMC or UBX
    double lat = kNaN, lon = kNaN, alt = kNaN, height = kNaN, speed = kNaN, heading = kNaN;
    std::int32_t quality = -1, num_sats = -1, fix_type = -1, carr_soln = -1;
    double hdop = kNaN, pdop = kNaN, sn = kNaN, se = kNaN, su = kNaN, age = kNaN;
    std::uint8_t rmc_status = 0, rmc_mode = 0;
    bool checksum_present = true;
    std::uint32_t bad_fields = 0;
    std::int64_t ubx_time_us = kNoTime;
};

// A sentence's checked, parsed fields, applied to the epoch only once every
// field is known good: a rejected sentence leaves no trace in a fix row.
struct Parsed {
    std::int64_t tod = 0;
    bool has_pos = false;
    double lat = kNaN, lon = kNaN;
    std::uint32_t bad = 0;
};

class Decoder {
  public:
    explicit Decoder(std::span<const std::uint8_t> d) : d_(d) {}

    Result run() {
        const std::size_t n = d_.size();
        // Sentences are 60-90 bytes and receivers send two or more an epoch
        // (GGA and RMC at least): one message per 64 bytes and one epoch per
        // 128 rarely regrow (a GGA-only log grows its fix columns once).
        // Capacity never written costs no memory pages, but it counts in the
        // buffer cache's bound (nmea.hpp), so it is not reserved at will.
        const std::size_t rows = n / 64 + 16;
        out_.messages.for_each_column([rows](const char*, const char*, auto& col) { col.reserve(rows); });
        out_.messages.kind_start.reserve(rows + 1);
        out_.messages.kind_data.reserve(rows * 5);
        out_.fixes.reserve(n / 128 + 16);
        std::size_t pos = 0, junk = SIZE_MAX;
        while (pos < n) {
            const std::uint8_t c = d_[pos];
            if (c == '$' || c == '!') {
                flush_junk(junk, pos);
                pos = sentence(pos);
            } else if (c == 0xB5 && pos + 1 < n && d_[pos + 1] == 0x62) {
                flush_junk(junk, pos);
                pos = ubx(pos);
            } else if (c == '\r' || c == '\n') {
                flush_junk(junk, pos);
                ++pos;
            } else {
                if (junk == SIZE_MAX)
                    junk = pos;
                ++pos;
            }
        }
        flush_junk(junk, n);
        close_epoch();
        build_validity(nfix_);
        // Down to the rows written (within capacity: nothing moves).
        resize_columns(out_.fixes, nfix_);
        for (std::size_t c = 0; c < out_.fixes.validity.size(); ++c) // none absent: no bitmap
            out_.fixes.validity[c].resize(null_seen_ & (std::uint32_t(1) << c) ? (nfix_ + 7) / 8 : 0);
        resize_columns(out_.messages, nmsg_);
        out_.messages.kind_start.resize(nmsg_ + 1);
        out_.messages.kind_data.resize(kind_len_);
        return std::move(out_);
    }

  private:
    void flush_junk(std::size_t& start, std::size_t end) {
        if (start == SIZE_MAX) [[likely]]
            return; // called at every sentence: no run of junk is the rule
        autolien::flush_junk(out_.rejects, d_, start, end, "sentence or message");
    }

    void reject(std::size_t off, Reason r, std::string msg, std::size_t b, std::size_t e) {
        add_reject(out_.rejects, d_, off, r, std::move(msg), b, e);
    }

    // The output columns are written by index into room made a block of rows
    // at a time (left uninitialised: every row made is written), and cut to
    // the rows written at the end. push_back would reload every column's end
    // pointer after each one-byte store, which may alias it.
    static constexpr std::size_t kBlock = 256;
    template <typename Columns> static void resize_columns(Columns& c, std::size_t rows) {
        c.for_each_column([rows](const char*, const char*, auto& col) { col.resize(rows); });
    }

    void add_message(std::size_t offset, std::size_t length, std::string_view kind, bool used,
                     bool checksum) {
        Messages& M = out_.messages;
        if (nmsg_ == msg_room_) [[unlikely]] {
            msg_room_ += kBlock;
            resize_columns(M, msg_room_);
            M.kind_start.resize(msg_room_ + 1);
        }
        if (kind_len_ + kind.size() > M.kind_data.size()) [[unlikely]]
            M.kind_data.resize(kind_len_ + kind.size() + kBlock * 8);
        const std::size_t i = nmsg_++;
        M.offset.data()[i] = offset;
        M.length.data()[i] = std::uint32_t(length);
        M.used.data()[i] = used;
        M.checksum_present.data()[i] = checksum;
        // Printable ASCII only, so always valid UTF-8.
        std::uint8_t* const out = M.kind_data.data() + kind_len_;
        const auto printable = [](char ch) {
            return ch >= 0x20 && ch < 0x7F ? std::uint8_t(ch) : std::uint8_t('?');
        };
        if (kind.size() == 5) { // an NMEA address: unrolled
            for (std::size_t k = 0; k < 5; ++k)
                out[k] = printable(kind[k]);
        } else {
            for (std::size_t k = 0; k < kind.size(); ++k)
                out[k] = printable(kind[k]);
        }
        kind_len_ += kind.size();
        M.kind_start.data()[i + 1] = std::int64_t(kind_len_);
    }

    // The end of the sentence that starts at `start` (CR, LF, another '$', a
    // UBX sync or `limit`), its commas (into fields_.bound[1, ncomma]), its
    // last '*', and the XOR of its bytes after the '$' (the checksum is that
    // XOR less the "*hh" tail): one pass over the bytes.
    std::size_t scan(std::size_t start, std::size_t limit, std::size_t& star, std::size_t& ncomma,
                     std::uint8_t& xor_all) {
        const std::size_t n = d_.size();
        const std::uint8_t* d = d_.data();
        auto& bound = fields_.bound;
        auto is_stop = [&](std::size_t i) {
            const std::uint8_t c = d[i];
            return c == '\r' || c == '\n' || c == '$' || (c == 0xB5 && i + 1 < n && d[i + 1] == 0x62);
        };
#if defined(__SSE2__)
        // 32 bytes (two SSE2 registers) at a time: a sentence is 3 blocks,
        // and the bookkeeping per block (masks, star, stop, loop) is paid
        // once for 32 bytes. A stop is CR, LF, '$' or a UBX sync: every byte
        // below 0x20 or above 0x7F (signed, one compare) and every '$' is a
        // candidate, which is_stop confirms (plain text has none but the stop).
        const __m128i space = _mm_set1_epi8(0x20), dollar = _mm_set1_epi8('$'), comma = _mm_set1_epi8(','),
                      asterisk = _mm_set1_epi8('*');
        __m128i acc = _mm_setzero_si128();
        std::size_t pos = start + 1, end = limit;
        for (; pos < limit; pos += 32) {
            __m128i v0, v1;
            if (n - pos >= 32) [[likely]] {
                v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + pos));
                v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + pos + 16));
            } else {
                alignas(16) std::uint8_t buf[32] = {};
                std::memcpy(buf, d + pos, n - pos);
                v0 = _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
                v1 = _mm_load_si128(reinterpret_cast<const __m128i*>(buf + 16));
            }
            const auto bits = [](__m128i lo_half, __m128i hi_half) {
                return std::uint32_t(_mm_movemask_epi8(lo_half)) |
                       (std::uint32_t(_mm_movemask_epi8(hi_half)) << 16);
            };
            const std::size_t avail = limit - pos;
            const std::uint32_t valid = avail >= 32 ? 0xFFFFFFFFu : (std::uint32_t(1) << avail) - 1;
            std::uint32_t stop = bits(_mm_or_si128(_mm_cmplt_epi8(v0, space), _mm_cmpeq_epi8(v0, dollar)),
                                      _mm_or_si128(_mm_cmplt_epi8(v1, space), _mm_cmpeq_epi8(v1, dollar))) &
                                 valid;
            while (stop && !is_stop(pos + unsigned(std::countr_zero(stop))))
                stop &= stop - 1; // a byte that ends nothing (a 0xB5 that starts no UBX message)
            const std::uint32_t upto = stop ? (std::uint32_t(1) << std::countr_zero(stop)) - 1 : valid;
            std::uint32_t commas = bits(_mm_cmpeq_epi8(v0, comma), _mm_cmpeq_epi8(v1, comma)) & upto;
            const std::uint32_t stars =
                bits(_mm_cmpeq_epi8(v0, asterisk), _mm_cmpeq_epi8(v1, asterisk)) & upto;
            const auto rel = std::uint32_t(pos - start);
            for (; commas; commas &= commas - 1)
                bound[++ncomma] = rel + unsigned(std::countr_zero(commas));
            ncomma = std::min(ncomma, kMaxFields - 1);
            if (stars)
                star = pos + unsigned(31 - std::countl_zero(stars));
            if (upto != 0xFFFFFFFFu) [[unlikely]] { // the last block: its first bytes only
                const auto keep = unsigned(std::countr_zero(~upto));
                v0 = _mm_and_si128(
                    v0, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kPrefixMask + 32 - keep)));
                v1 = _mm_and_si128(
                    v1, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kPrefixMask + 48 - keep)));
            }
            acc = _mm_xor_si128(acc, _mm_xor_si128(v0, v1));
            if (stop) {
                end = pos + unsigned(std::countr_zero(stop));
                break;
            }
        }
        std::uint64_t x = std::uint64_t(_mm_cvtsi128_si64(acc)) ^
                          std::uint64_t(_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)));
        x ^= x >> 32;
        x ^= x >> 16;
        x ^= x >> 8;
        xor_all = std::uint8_t(x);
        return end;
#else
        std::uint8_t x = 0;
        std::size_t end = start + 1;
        for (; end < limit && !is_stop(end); ++end) {
            x ^= d[end];
            if (d[end] == ',' && ncomma < kMaxFields - 1)
                bound[++ncomma] = std::uint32_t(end - start);
            else if (d[end] == '*')
                star = end;
        }
        xor_all = x;
        return end;
#endif
    }

    std::size_t sentence(std::size_t start) {
        const std::size_t n = d_.size();
        const std::uint8_t* d = d_.data();
        constexpr std::size_t npos = std::string_view::npos;
        std::size_t star = npos, ncomma = 0;
        std::uint8_t xor_all = 0;
        const std::size_t end = scan(start, std::min(n, start + 200), star, ncomma, xor_all);
        const std::string_view s(reinterpret_cast<const char*>(d) + start, end - start);
        // Where the fields end: at the '*', or at CR/LF for a sentence sent
        // without a checksum (accepted, as pynmea2 and gpsd do, and flagged).
        std::size_t fields_end = 0;
        if (star == npos) {
            if (end == n) {
                reject(start, Reason::truncated, "input ends inside an NMEA sentence", start, end);
                return end;
            }
            if (d[end] != '\r' && d[end] != '\n') {
                reject(start, Reason::no_checksum,
                       "NMEA sentence without *hh cut short by another sentence or message", start, end);
                return end;
            }
            fields_end = s.size();
        } else {
            star -= start;
            if (star + 3 != s.size()) {
                reject(start, end == n && s.size() < star + 3 ? Reason::truncated : Reason::bad_checksum,
                       "NMEA checksum must be two hex digits after '*'", start, end);
                return end;
            }
            const int hi = hex_digit(s[star + 1]), lo = hex_digit(s[star + 2]);
            // The XOR of the bytes between '$' and '*': the scan's, less "*hh".
            const auto sum = std::uint8_t(xor_all ^ '*' ^ d[start + star + 1] ^ d[start + star + 2]);
            if (hi < 0 || lo < 0 || unsigned(hi * 16 + lo) != sum) {
                reject(start, Reason::bad_checksum, "NMEA checksum mismatch", start, end);
                return end;
            }
            fields_end = star;
        }
        const bool checksum = star != npos;
        // The fields lie between the commas before the end of the fields (a
        // sentence with a checksum has none after the '*').
        Fields& f = fields_;
        f.text = s.data();
        f.bound[0] = 0;
        f.bound[ncomma + 1] = std::uint32_t(fields_end);
        f.n = ncomma + 1;
        const std::string_view addr = f[0];
        bool used = false;
        if (addr.size() == 5) {
            // The sentence type as one integer: a switch, not five compares.
            const auto type = std::uint32_t(std::uint8_t(addr[2])) << 16 |
                              std::uint32_t(std::uint8_t(addr[3])) << 8 | std::uint8_t(addr[4]);
            constexpr auto key = [](const char* t) {
                return std::uint32_t(std::uint8_t(t[0])) << 16 | std::uint32_t(std::uint8_t(t[1])) << 8 |
                       std::uint8_t(t[2]);
            };
            bool supported = true, ok = false;
            switch (type) {
            case key("GGA"):
                ok = gga(f, start, checksum);
                break;
            case key("RMC"):
                ok = rmc(f, start, checksum);
                break;
            case key("GST"):
                ok = gst(f, start, checksum);
                break;
            case key("GSA"):
                ok = gsa(f, start, checksum);
                break;
            case key("VTG"):
                ok = vtg(f, start, checksum);
                break;
            default:
                supported = false; // another sentence type: listed, not used
            }
            if (supported && !ok) [[unlikely]] {
                std::string kind;
                for (const char ch : addr)
                    kind.push_back(ch >= 0x20 && ch < 0x7F ? ch : '?');
                reject(start, Reason::bad_field, kind + ": " + err_, start, end);
                return end;
            }
            used = supported;
        }
        add_message(start, end - start, addr, used, checksum);
        return end;
    }

    // Starts a new epoch when a timed sentence carries another time of day.
    void timed(std::int64_t tod, std::size_t offset) {
        if (ep_.open && (ep_.source != 1 || (ep_.tod_us != kNone && ep_.tod_us != tod)))
            close_epoch();
        if (!ep_.open) {
            ep_ = Epoch{};
            ep_.open = true;
            ep_.offset = offset;
            ep_.source = 1;
        }
        ep_.tod_us = tod;
    }

    void untimed(std::size_t offset) {
        if (!ep_.open || ep_.source != 1) {
            close_epoch();
            ep_ = Epoch{};
            ep_.open = true;
            ep_.offset = offset;
            ep_.source = 1;
        }
    }

    // What every applied sentence adds to its epoch.
    void applied(const Parsed& p, bool checksum) {
        ep_.bad_fields |= p.bad;
        ep_.checksum_present = ep_.checksum_present && checksum;
    }

    // False, with why in err_: the handlers return this on a malformed
    // sentence, and true once it is applied (errors are rare: no string is
    // built for a good sentence).
    bool fail(std::string why) {
        err_ = std::move(why);
        return false;
    }

    // Whether the sentence has `need` fields (else false, and why in err_).
    bool has_fields(const Fields& f, std::size_t need, const char* what) {
        if (f.size() >= need) [[likely]]
            return true;
        return fail(std::string(what) + " needs " + std::to_string(need) + " fields, got " +
                    std::to_string(f.size()));
    }

    // The time of day and, when either coordinate is sent, the position
    // (ddmm.mmmm fields from lat_field); false (why in err_) unless both are
    // good. GGA and RMC of one epoch repeat the same text: that is parsed once.
    bool time_and_position(const Fields& f, std::size_t lat_field, Parsed& p) {
        if (!same_text(f[1], tod_text_)) {
            const std::int64_t tod = time_of_day(f[1]);
            if (tod < 0)
                return fail("bad time '" + std::string(f[1]) + "'");
            tod_text_ = f[1];
            tod_value_ = tod;
        }
        p.tod = tod_value_;
        if (f[lat_field].empty() && f[lat_field + 2].empty())
            return true;
        // The four fields and their commas as one text: equal text, equal fields.
        const char* const first = f[lat_field].data();
        const std::string_view text(first,
                                    std::size_t(f[lat_field + 3].data() + f[lat_field + 3].size() - first));
        if (!same_text(text, pos_text_)) {
            const double lat = coord(f[lat_field], f[lat_field + 1], 2),
                         lon = coord(f[lat_field + 2], f[lat_field + 3], 3);
            if (std::isnan(lat) || std::isnan(lon))
                return fail("bad position");
            pos_text_ = text;
            pos_value_ = {lat, lon};
        }
        p.has_pos = true;
        p.lat = pos_value_[0];
        p.lon = pos_value_[1];
        return true;
    }

    bool gga(const Fields& f, std::size_t off, bool checksum) {
        if (!has_fields(f, 15, "GGA"))
            return false;
        Parsed p;
        if (!time_and_position(f, 2, p))
            return false;
        std::int32_t quality = small_uint(f[6]);
        if (quality < 0 || quality > 9) { // not one plain digit: the general rule ("+4", "4.0")
            const double q = num(f[6]);
            if (!(q >= 0 && q <= 9) || q != std::floor(q)) // NaN too
                return fail("bad quality '" + std::string(f[6]) + "'");
            quality = std::int32_t(q);
        }
        const std::int32_t sats = opt_count(f[7], 255, p.bad, FixColumn::num_sats);
        const double hdop = opt_num(f[8], p.bad, FixColumn::hdop);
        const double alt = opt_num(f[9], p.bad, FixColumn::altitude_m);
        const double sep = opt_num(f[11], p.bad, FixColumn::height_m);
        if (std::isnan(alt) && !f[9].empty() && !f[11].empty())
            p.bad |= bit(FixColumn::height_m); // the height needs the altitude
        const double age = opt_num(f[13], p.bad, FixColumn::diff_age_s);
        timed(p.tod, off);
        applied(p, checksum);
        ep_.quality = quality;
        if (p.has_pos) {
            ep_.lat = p.lat;
            ep_.lon = p.lon;
        }
        if (sats >= 0)
            ep_.num_sats = sats;
        if (!std::isnan(hdop))
            ep_.hdop = hdop;
        if (!std::isnan(alt)) {
            ep_.alt = alt;
            if (!std::isnan(sep))
                ep_.height = alt + sep;
        }
        if (!std::isnan(age))
            ep_.age = age;
        return true;
    }

    bool rmc(const Fields& f, std::size_t off, bool checksum) {
        if (!has_fields(f, 10, "RMC"))
            return false;
        Parsed p;
        if (!time_and_position(f, 3, p))
            return false;
        const std::int64_t day = date_days(f[9]);
        if (day < 0 && !f[9].empty())
            return fail("bad date '" + std::string(f[9]) + "'");
        const std::uint8_t status = opt_letter(f[2], p.bad, FixColumn::rmc_status);
        const std::uint8_t mode = f.size() > 12 ? opt_letter(f[12], p.bad, FixColumn::rmc_mode) : 0;
        const double knots = opt_num(f[7], p.bad, FixColumn::speed_kmh);
        const double course = opt_num(f[8], p.bad, FixColumn::heading_deg);
        timed(p.tod, off);
        applied(p, checksum);
        if (status)
            ep_.rmc_status = status;
        if (mode)
            ep_.rmc_mode = mode;
        if (day >= 0)
            ep_.day = day;
        if (p.has_pos && std::isnan(ep_.lat)) {
            ep_.lat = p.lat;
            ep_.lon = p.lon;
        }
        if (!std::isnan(knots))
            ep_.speed = knots * 1.852;
        if (!std::isnan(course))
            ep_.heading = course;
        return true;
    }

    bool gst(const Fields& f, std::size_t off, bool checksum) {
        if (!has_fields(f, 9, "GST"))
            return false;
        const std::int64_t tod = time_of_day(f[1]);
        if (tod < 0)
            return fail("bad time '" + std::string(f[1]) + "'");
        Parsed p;
        const double sn = opt_num(f[6], p.bad, FixColumn::sigma_n_m),
                     se = opt_num(f[7], p.bad, FixColumn::sigma_e_m),
                     su = opt_num(f[8], p.bad, FixColumn::sigma_u_m);
        timed(tod, off);
        applied(p, checksum);
        if (!std::isnan(sn))
            ep_.sn = sn;
        if (!std::isnan(se))
            ep_.se = se;
        if (!std::isnan(su))
            ep_.su = su;
        return true;
    }

    bool gsa(const Fields& f, std::size_t off, bool checksum) {
        if (!has_fields(f, 18, "GSA"))
            return false;
        Parsed p;
        const double pdop = opt_num(f[15], p.bad, FixColumn::pdop),
                     hdop = opt_num(f[16], p.bad, FixColumn::hdop);
        untimed(off);
        applied(p, checksum);
        if (!std::isnan(pdop))
            ep_.pdop = pdop;
        if (std::isnan(ep_.hdop))
            ep_.hdop = hdop;
        return true;
    }

    bool vtg(const Fields& f, std::size_t off, bool checksum) {
        if (!has_fields(f, 9, "VTG"))
            return false;
        Parsed p;
        const double course = opt_num(f[1], p.bad, FixColumn::heading_deg),
                     kmh = opt_num(f[7], p.bad, FixColumn::speed_kmh);
        untimed(off);
        applied(p, checksum);
        if (std::isnan(ep_.heading))
            ep_.heading = course;
        if (std::isnan(ep_.speed))
            ep_.speed = kmh;
        return true;
    }

    std::size_t ubx(std::size_t start) {
        const std::size_t n = d_.size();
        if (start + 6 > n) {
            reject(start, Reason::truncated, "input ends inside a UBX header", start, n);
            return n;
        }
        const std::uint8_t cls = d_[start + 2], id = d_[start + 3];
        const std::size_t len = d_[start + 4] | (std::size_t(d_[start + 5]) << 8);
        const std::size_t end = start + 6 + len + 2;
        if (end > n) {
            reject(start, Reason::truncated, "input ends inside a UBX message", start, n);
            return n;
        }
        std::uint8_t a = 0, b = 0;
        for (std::size_t i = start + 2; i < start + 6 + len; ++i) {
            a = std::uint8_t(a + d_[i]);
            b = std::uint8_t(b + a);
        }
        if (a != d_[end - 2] || b != d_[end - 1]) {
            // A corrupt length could swallow good data: resync just after the sync bytes.
            reject(start, Reason::bad_checksum, "UBX Fletcher checksum mismatch", start, start + 2);
            return start + 2;
        }
        static const char* hex = "0123456789ABCDEF";
        const char kind_chars[] = {'U',           'B', 'X',          '-',         hex[cls >> 4],
                                   hex[cls & 15], '-', hex[id >> 4], hex[id & 15]};
        const std::string_view kind(kind_chars, sizeof kind_chars);
        bool used = false;
        if (cls == 0x01 && id == 0x07) {
            if (len != 92) {
                reject(start, Reason::bad_field, "NAV-PVT must be 92 bytes, got " + std::to_string(len),
                       start, end);
                return end;
            }
            nav_pvt(d_.data() + start + 6, start);
            used = true;
        }
        add_message(start, end - start, kind, used, true);
        return end;
    }

    static std::uint32_t u4(const std::uint8_t* p) {
        return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
               (std::uint32_t(p[3]) << 24);
    }
    static std::int32_t i4(const std::uint8_t* p) { return static_cast<std::int32_t>(u4(p)); }

    void nav_pvt(const std::uint8_t* p, std::size_t off) {
        close_epoch();
        ep_ = Epoch{};
        ep_.open = true;
        ep_.offset = off;
        ep_.source = 2;
        const int year = p[4] | (p[5] << 8);
        const std::uint8_t valid = p[11];
        const std::uint8_t fix = p[20], flags = p[21];
        if ((valid & 0x3) == 0x3 && p[6] >= 1 && p[6] <= 12 && p[7] >= 1 && p[7] <= 31 && p[8] < 24 &&
            p[9] < 60 && p[10] < 61) {
            const std::int64_t secs =
                days_from_civil(year, p[6], p[7]) * 86400 + p[8] * 3600LL + p[9] * 60LL + p[10];
            ep_.ubx_time_us = secs * 1'000'000 + std::llround(i4(p + 16) / 1000.0);
        }
        const int carr = (flags >> 6) & 3;
        const bool fix_ok = flags & 1;
        ep_.fix_type = fix;
        ep_.carr_soln = carr;
        // NAV-PVT onto the GGA quality classes. Only a DR-only fix (fixType 1)
        // is class 6, as receivers write it in GGA; GNSS+DR (fixType 4) is
        // classed by its GNSS solution, and fix_type keeps the DR flag.
        if (fix == 0 || fix == 5 || !fix_ok)
            ep_.quality = 0;
        else if (fix == 1)
            ep_.quality = 6;
        else if (carr == 2)
            ep_.quality = 4;
        else if (carr == 1)
            ep_.quality = 5;
        else
            ep_.quality = (flags & 2) ? 2 : 1;
        ep_.num_sats = p[23];
        ep_.lon = i4(p + 24) / 1e7;
        ep_.lat = i4(p + 28) / 1e7;
        ep_.height = i4(p + 32) / 1000.0;
        ep_.alt = i4(p + 36) / 1000.0;
        // hAcc is used as the 1-sigma of both north and east (as ROS drivers do).
        ep_.sn = ep_.se = u4(p + 40) / 1000.0;
        ep_.su = u4(p + 44) / 1000.0;
        ep_.speed = i4(p + 60) / 1000.0 * 3.6;
        ep_.heading = i4(p + 64) / 1e5;
        ep_.pdop = (p[76] | (p[77] << 8)) / 100.0;
        close_epoch();
    }

    // Whether a value is present (not its column's absent marker).
    static bool present(double v) { return v == v; } // NaN is absent
    static bool present(std::int32_t v) { return v != -1; }
    static bool present(std::int64_t v) { return v != kNoTime; }

    // Validity bits of rows [first, last) of one column (first a multiple of 8).
    template <typename T> void validity_bits(const T* v, std::size_t first, std::size_t last, FixColumn c) {
        std::uint8_t* const bits = out_.fixes.validity[std::size_t(c)].data();
        unsigned all = 0xFF; // AND of the full bytes
        std::size_t i = first;
        for (; i + 8 <= last; i += 8) {
            unsigned byte = 0;
#if defined(__SSE2__)
            if constexpr (std::is_same_v<T, double>) {
                for (unsigned k = 0; k < 8; k += 2) {
                    const __m128d x = _mm_loadu_pd(v + i + k);
                    byte |= unsigned(_mm_movemask_pd(_mm_cmpord_pd(x, x))) << k;
                }
            } else if constexpr (std::is_same_v<T, std::int32_t>) {
                const __m128i absent = _mm_set1_epi32(-1);
                for (unsigned k = 0; k < 8; k += 4) {
                    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i + k));
                    byte |= (~unsigned(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, absent)))) & 15u)
                            << k;
                }
            } else
#endif
            {
                for (unsigned k = 0; k < 8; ++k)
                    byte |= unsigned(present(v[i + k])) << k;
            }
            bits[i / 8] = std::uint8_t(byte);
            all &= byte;
        }
        if (i < last) { // the last rows of the input
            unsigned byte = 0;
            for (unsigned k = 0; i + k < last; ++k)
                byte |= unsigned(present(v[i + k])) << k;
            bits[i / 8] = std::uint8_t(byte);
            if (byte != (1u << (last - i)) - 1)
                all = 0;
        }
        if (all != 0xFF)
            null_seen_ |= bit(c);
    }

    // The validity bitmaps of the rows written since the last call.
    void build_validity(std::size_t last) {
        Fixes& F = out_.fixes;
#define AUTOLIEN_X(name, type, output)                                                                       \
    if constexpr (has_validity(FixColumn::name, output))                                                     \
        validity_bits(F.name.data(), valid_done_, last, FixColumn::name);
        AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
        valid_done_ = last;
    }

    void close_epoch() {
        if (!ep_.open)
            return;
        ep_.open = false;
        Fixes& F = out_.fixes;
        std::int64_t t = kNoTime;
        if (ep_.source == 2) {
            t = ep_.ubx_time_us;
            if (t != kNoTime) {
                last_day_ = t / kDayUs;
                last_tod_ = t % kDayUs;
            }
        } else if (ep_.tod_us != kNone) {
            std::int64_t day = ep_.day;
            if (day == kNone && last_day_ != kNone) {
                day = last_day_;
                if (last_tod_ != kNone && ep_.tod_us + kDayUs / 2 < last_tod_)
                    day += 1; // the time of day wrapped past midnight
            }
            if (day != kNone) {
                t = day * kDayUs + ep_.tod_us;
                last_day_ = day;
                last_tod_ = ep_.tod_us;
            }
        }
        if (nfix_ == fix_room_) [[unlikely]] {
            build_validity(nfix_); // the block just filled, still in cache
            fix_room_ += kBlock;
            resize_columns(F, fix_room_);
            for (auto& bits : F.validity)
                bits.resize(fix_room_ / 8);
        }
        const std::size_t i = nfix_++;
#define AUTOLIEN_X(name, type, output) type* const name = F.name.data();
        AUTOLIEN_NMEA_FIX_COLUMNS(AUTOLIEN_X)
#undef AUTOLIEN_X
        time_us[i] = t;
        lat[i] = ep_.lat;
        lon[i] = ep_.lon;
        altitude_m[i] = ep_.alt;
        height_m[i] = ep_.height;
        speed_kmh[i] = ep_.speed;
        heading_deg[i] = ep_.heading;
        quality[i] = ep_.quality;
        num_sats[i] = ep_.num_sats;
        hdop[i] = ep_.hdop;
        pdop[i] = ep_.pdop;
        sigma_n_m[i] = ep_.sn;
        sigma_e_m[i] = ep_.se;
        sigma_u_m[i] = ep_.su;
        diff_age_s[i] = ep_.age;
        fix_type[i] = ep_.fix_type;
        carr_soln[i] = ep_.carr_soln;
        rmc_status[i] = ep_.rmc_status;
        rmc_mode[i] = ep_.rmc_mode;
        checksum_present[i] = ep_.checksum_present;
        bad_fields[i] = ep_.bad_fields;
        source[i] = ep_.source;
        offset[i] = ep_.offset;
    }

    std::span<const std::uint8_t> d_;
    Result out_;
    Epoch ep_;
    Fields fields_;
    // The last good time and position fields (views into the input) and their values.
    std::string_view tod_text_;
    std::int64_t tod_value_ = 0;
    std::string_view pos_text_;
    std::array<double, 2> pos_value_{};
    std::int64_t last_day_ = kNone, last_tod_ = kNone;
    std::string err_; // why the last sentence handler returned false
    // Rows written and rows of room made (see add_message); kind bytes written.
    std::size_t nfix_ = 0, fix_room_ = 0, nmsg_ = 0, msg_room_ = 0, kind_len_ = 0;
    // Rows whose validity bits are built (a multiple of kBlock until the end),
    // and the columns (FixColumn bits) with an absent row among them.
    std::size_t valid_done_ = 0;
    std::uint32_t null_seen_ = 0;
};

} // namespace

namespace {

// Every pool block starts with a header holding its size; the caller's
// memory follows, aligned as operator new aligns.
constexpr std::size_t kHeader = alignof(std::max_align_t) > 16 ? alignof(std::max_align_t) : 16;

struct Pool {
    std::mutex mu;
    std::vector<std::pair<void*, std::size_t>> free; // (block, bytes), oldest first
    std::size_t cached = 0;
};

Pool& pool() {
    // Never destroyed: a numpy array freed during interpreter shutdown, after
    // static destructors, still finds it (the OS takes the cache at exit).
    static Pool* const p = new Pool;
    return *p;
}

std::size_t block_bytes(void* user) {
    std::size_t bytes;
    std::memcpy(&bytes, static_cast<char*>(user) - kHeader, sizeof bytes);
    return bytes;
}

} // namespace

void* pool_allocate(std::size_t bytes) {
    if (bytes >= kPoolMinBytes) {
        Pool& P = pool();
        const std::lock_guard lock(P.mu);
        // The smallest cached block that fits and wastes at most half of itself.
        std::size_t best = P.free.size();
        for (std::size_t i = 0; i < P.free.size(); ++i) {
            const std::size_t have = P.free[i].second;
            if (have >= bytes && have / 2 <= bytes && (best == P.free.size() || have < P.free[best].second))
                best = i;
        }
        if (best != P.free.size()) {
            void* const b = P.free[best].first;
            P.cached -= P.free[best].second;
            P.free.erase(P.free.begin() + std::ptrdiff_t(best));
            return static_cast<char*>(b) + kHeader;
        }
    }
    void* const b = std::malloc(bytes + kHeader);
    if (b == nullptr)
        throw std::bad_alloc();
    std::memcpy(b, &bytes, sizeof bytes);
    return static_cast<char*>(b) + kHeader;
}

void pool_free(void* user) noexcept {
    if (user == nullptr)
        return;
    void* const b = static_cast<char*>(user) - kHeader;
    const std::size_t bytes = block_bytes(user);
    if (bytes < kPoolMinBytes || bytes > kPoolMaxBytes) {
        std::free(b);
        return;
    }
    Pool& P = pool();
    const std::lock_guard lock(P.mu);
    P.free.emplace_back(b, bytes);
    P.cached += bytes;
    while (P.cached > kPoolMaxBytes) { // the oldest go back to malloc
        std::free(P.free.front().first);
        P.cached -= P.free.front().second;
        P.free.erase(P.free.begin());
    }
}

Result decode(std::span<const std::uint8_t> data) {
    return Decoder(data).run();
}

} // namespace autolien::gnss::nmea
