#include <cstring>

#include "autolien/kernels/keccak.hpp"
#include "autolien/ledger/hash.hpp"

namespace autolien::ledger {

namespace {

inline std::uint64_t load_le64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

} // namespace

void keccak_f1600(std::uint64_t st[25]) noexcept {
    kernels::keccak_f1600(st); // the shared kernel header (GPU and FPGA compile it too)
}

Keccak256::Keccak256() noexcept {
    std::memset(st_, 0, sizeof(st_));
}

void Keccak256::update(const std::uint8_t* data, std::size_t len) noexcept {
    // Whole lanes go in as 64-bit words when aligned to a lane boundary.
    while (len > 0) {
        if (pos_ % 8 == 0 && len >= 8) {
            while (len >= 8 && pos_ < rate) {
                st_[pos_ / 8] ^= load_le64(data);
                pos_ += 8;
                data += 8;
                len -= 8;
            }
        } else {
            st_[pos_ / 8] ^= std::uint64_t(*data) << (8 * (pos_ % 8));
            ++pos_;
            ++data;
            --len;
        }
        if (pos_ == rate) {
            keccak_f1600(st_);
            pos_ = 0;
        }
    }
}

void Keccak256::final(std::uint8_t out[32]) noexcept {
    // Original Keccak pad10*1: 0x01 after the message, 0x80 in the last byte of
    // the block (FIPS 202 SHA3 would use 0x06 instead of 0x01).
    st_[pos_ / 8] ^= std::uint64_t(0x01) << (8 * (pos_ % 8));
    st_[(rate - 1) / 8] ^= std::uint64_t(0x80) << (8 * ((rate - 1) % 8));
    keccak_f1600(st_);
    for (int i = 0; i < 4; ++i) {
        std::uint64_t v = st_[i];
        for (int b = 0; b < 8; ++b) {
            out[8 * i + b] = std::uint8_t(v);
            v >>= 8;
        }
    }
}

void keccak256(const std::uint8_t* data, std::size_t len, std::uint8_t out[32]) noexcept {
    Keccak256 h;
    h.update(data, len);
    h.final(out);
}

void keccak256_prefixed(std::uint8_t prefix, const std::uint8_t* data, std::size_t len,
                        std::uint8_t out[32]) noexcept {
    Keccak256 h;
    h.update(&prefix, 1);
    h.update(data, len);
    h.final(out);
}

} // namespace autolien::ledger
