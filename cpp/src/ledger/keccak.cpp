#include <cstring>

#include "autolien/ledger/hash.hpp"

namespace autolien::ledger {

namespace {

constexpr std::uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};

// Rotation offsets and lane order of the combined rho and pi steps, walking
// the pi permutation from lane 1.
constexpr int ROT[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                         27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
constexpr int PI[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                        15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

inline std::uint64_t rotl(std::uint64_t x, int n) {
    return (x << n) | (x >> (64 - n));
}

inline std::uint64_t load_le64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

} // namespace

void keccak_f1600(std::uint64_t st[25]) noexcept {
    std::uint64_t bc[5];
    for (int round = 0; round < 24; ++round) {
        for (int i = 0; i < 5; ++i)
            bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
        for (int i = 0; i < 5; ++i) {
            const std::uint64_t t = bc[(i + 4) % 5] ^ rotl(bc[(i + 1) % 5], 1);
            for (int j = 0; j < 25; j += 5)
                st[j + i] ^= t;
        }
        std::uint64_t t = st[1];
        for (int i = 0; i < 24; ++i) {
            const int j = PI[i];
            const std::uint64_t next = st[j];
            st[j] = rotl(t, ROT[i]);
            t = next;
        }
        for (int j = 0; j < 25; j += 5) {
            for (int i = 0; i < 5; ++i)
                bc[i] = st[j + i];
            for (int i = 0; i < 5; ++i)
                st[j + i] ^= (~bc[(i + 1) % 5]) & bc[(i + 2) % 5];
        }
        st[0] ^= RC[round];
    }
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
