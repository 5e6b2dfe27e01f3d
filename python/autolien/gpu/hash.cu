// Batch RFC 6962 hashing: leaf hashes H(0x00 || record) of variable-length
// records in Arrow binary layout (one offsets array, one bytes buffer), and
// one tree level of node hashes H(0x01 || left || right). One record or node
// per thread (launch bounds cap the registers at 85, 6 blocks of 128 a SM,
// without spills: ncu showed 107 registers holding occupancy to 25 %); the
// compression rounds and the permutation come from the
// shared kernel headers that the CPU core compiles too.
#include "autolien/kernels/keccak.hpp"
#include "autolien/kernels/sha256.hpp"

using namespace autolien::kernels;

namespace {

// Byte m of the message prefix || data[0..len).
__device__ __forceinline__ u32 msg_byte(const u8* data, u64 len, u8 prefix, u64 m) {
    if (m == 0)
        return prefix;
    return m - 1 < len ? u32(__ldg(data + (m - 1))) : 0u;
}

__device__ void sha256_message(const u8* data, u64 len, u8 prefix, u8* out) {
    u32 st[8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
        st[i] = kSha256IV[i];
    const u64 total = len + 1;                // message bytes
    const u64 nblocks = (total + 8) / 64 + 1; // with 0x80 and the 64-bit length
    for (u64 b = 0; b < nblocks; ++b) {
        u32 w[16];
        const u64 base = b * 64;
        if (base + 64 <= total) {
            // A whole block of message: the record bytes, shifted by the prefix.
#pragma unroll
            for (int i = 0; i < 16; ++i) {
                const u64 m = base + 4 * i;
                w[i] = (msg_byte(data, len, prefix, m) << 24) | (msg_byte(data, len, prefix, m + 1) << 16) |
                       (msg_byte(data, len, prefix, m + 2) << 8) | msg_byte(data, len, prefix, m + 3);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 16; ++i) {
                u32 word = 0;
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    const u64 m = base + 4 * i + k;
                    u32 byte = m < total ? msg_byte(data, len, prefix, m) : (m == total ? 0x80u : 0u);
                    word = (word << 8) | byte;
                }
                w[i] = word;
            }
            if (b + 1 == nblocks) {
                const u64 bits = total * 8;
                w[14] = u32(bits >> 32);
                w[15] = u32(bits);
            }
        }
        sha256_compress_words(st, w);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
        store_be32(out + 4 * i, st[i]);
}

__device__ void keccak256_message(const u8* data, u64 len, u8 prefix, u8* out) {
    u64 st[25];
#pragma unroll
    for (int i = 0; i < 25; ++i)
        st[i] = 0;
    const u64 total = len + 1;
    const u64 rate = 136;
    // Original Keccak pad10*1: 0x01 after the message, 0x80 in the block's last byte.
    const u64 nblocks = total / rate + 1;
    for (u64 b = 0; b < nblocks; ++b) {
        const u64 base = b * rate;
#pragma unroll
        for (int lane = 0; lane < 17; ++lane) {
            u64 v = 0;
#pragma unroll
            for (int k = 7; k >= 0; --k) {
                const u64 m = base + 8 * lane + k;
                u64 byte = m < total ? msg_byte(data, len, prefix, m) : (m == total ? 0x01u : 0u);
                v = (v << 8) | byte;
            }
            st[lane] ^= v;
        }
        if (b + 1 == nblocks)
            st[16] ^= u64(0x80) << 56;
        keccak_f1600(st);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        u64 v = st[i];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            out[8 * i + k] = u8(v);
            v >>= 8;
        }
    }
}

template <typename Off>
__device__ void leaf_hashes(const u8* data, const Off* offsets, u64 n, int keccak, u8* out) {
    const u64 i = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const u64 lo = u64(offsets[i]), hi = u64(offsets[i + 1]);
    if (keccak)
        keccak256_message(data + lo, hi - lo, 0x00, out + 32 * i);
    else
        sha256_message(data + lo, hi - lo, 0x00, out + 32 * i);
}

} // namespace

extern "C" __global__ void __launch_bounds__(128, 6)
    leaf_hashes_i32(const u8* data, const int* offsets, u64 n, int keccak, u8* out) {
    leaf_hashes(data, offsets, n, keccak, out);
}

extern "C" __global__ void __launch_bounds__(128, 6)
    leaf_hashes_i64(const u8* data, const long long* offsets, u64 n, int keccak, u8* out) {
    leaf_hashes(data, offsets, n, keccak, out);
}

// parent[i] = H(0x01 || child[2i] || child[2i+1]) for i < count.
extern "C" __global__ void __launch_bounds__(128, 6)
    node_hashes(const u8* child, u64 count, int keccak, u8* parent) {
    const u64 i = u64(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= count)
        return;
    if (keccak)
        keccak256_message(child + 64 * i, 64, 0x01, parent + 32 * i);
    else
        sha256_message(child + 64 * i, 64, 0x01, parent + 32 * i);
}
