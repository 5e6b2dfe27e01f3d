// Hash primitives of the ledger: SHA-256 (FIPS 180-4) and Keccak-256 (the
// original Keccak padding that Ethereum's keccak256 uses, not FIPS 202 SHA3).
//
// SHA-256 has two back ends with identical results: a portable one and one on
// the x86 SHA extensions (SHA-NI), chosen at run time from CPUID.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace autolien::ledger {

using Hash32 = std::array<std::uint8_t, 32>;

enum class Sha256Backend { portable, shani };

[[nodiscard]] bool sha256_shani_supported() noexcept;
[[nodiscard]] Sha256Backend sha256_backend() noexcept;
// Selects the back end for the whole process (for tests and benchmarks).
// Throws std::invalid_argument when SHA-NI is asked for but not supported.
void sha256_set_backend(Sha256Backend backend);
[[nodiscard]] std::string_view sha256_backend_name(Sha256Backend backend) noexcept;

// Compresses whole 64-byte blocks into an 8-word state.
void sha256_compress(std::uint32_t state[8], const std::uint8_t* blocks, std::size_t nblocks) noexcept;
void sha256_compress_portable(std::uint32_t state[8], const std::uint8_t* blocks,
                              std::size_t nblocks) noexcept;
// Only call when sha256_shani_supported().
void sha256_compress_shani(std::uint32_t state[8], const std::uint8_t* blocks, std::size_t nblocks) noexcept;

// Streaming SHA-256 on the active back end.
class Sha256 {
  public:
    Sha256() noexcept;
    void update(const std::uint8_t* data, std::size_t len) noexcept;
    void update(std::span<const std::uint8_t> data) noexcept { update(data.data(), data.size()); }
    void final(std::uint8_t out[32]) noexcept;

  private:
    std::uint32_t state_[8];
    std::uint8_t buf_[64];
    std::size_t buf_len_ = 0;
    std::uint64_t total_ = 0;
};

// One-shot digests. `prefix` (if not negative) is one byte hashed before the
// data, which is how RFC 6962 domain-separates leaves and nodes.
void sha256(const std::uint8_t* data, std::size_t len, std::uint8_t out[32]) noexcept;
void sha256_prefixed(std::uint8_t prefix, const std::uint8_t* data, std::size_t len,
                     std::uint8_t out[32]) noexcept;
// SHA-256(prefix || a || b) for two 32-byte inputs: two fixed blocks.
void sha256_pair(std::uint8_t prefix, const std::uint8_t* a, const std::uint8_t* b,
                 std::uint8_t out[32]) noexcept;

// Keccak-256.
class Keccak256 {
  public:
    Keccak256() noexcept;
    void update(const std::uint8_t* data, std::size_t len) noexcept;
    void final(std::uint8_t out[32]) noexcept;

    static constexpr std::size_t rate = 136;

  private:
    std::uint64_t st_[25];
    std::size_t pos_ = 0;
};

void keccak_f1600(std::uint64_t st[25]) noexcept;
void keccak256(const std::uint8_t* data, std::size_t len, std::uint8_t out[32]) noexcept;
void keccak256_prefixed(std::uint8_t prefix, const std::uint8_t* data, std::size_t len,
                        std::uint8_t out[32]) noexcept;

} // namespace autolien::ledger
