// SHA-256 compression (FIPS 180-4 6.2.2) on one 64-byte block given as its 16
// big-endian words: the portable CPU path, the CUDA leaf/node kernels and the
// FPGA kernel all call this function. The SHA-NI path of the CPU core is
// separate (instructions, not arithmetic) and tested against it.
#pragma once

#include "autolien/kernels/config.hpp"

namespace autolien::kernels {

AUTOLIEN_TABLE u32 kSha256K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

AUTOLIEN_TABLE u32 kSha256IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

AUTOLIEN_HD u32 sha256_rotr(u32 x, int n) {
    return (x >> n) | (x << (32 - n));
}

// The message-schedule word W[t] for t >= 16 from W[t-16], W[t-15], W[t-7]
// and W[t-2] (FIPS 180-4 6.2.2 step 1).
AUTOLIEN_HD u32 sha256_schedule_word(u32 w16, u32 w15, u32 w7, u32 w2) {
    const u32 s0 = sha256_rotr(w15, 7) ^ sha256_rotr(w15, 18) ^ (w15 >> 3);
    const u32 s1 = sha256_rotr(w2, 17) ^ sha256_rotr(w2, 19) ^ (w2 >> 10);
    return w16 + s0 + w7 + s1;
}

// One round on the working variables v = {a, ..., h} with K[t] + W[t] given
// (step 3): the FPGA kernel pipelines this at one round per cycle.
AUTOLIEN_HD void sha256_round(u32 v[8], u32 k_plus_w) {
    const u32 a = v[0], b = v[1], c = v[2], d = v[3], e = v[4], f = v[5], g = v[6], h = v[7];
    const u32 S1 = sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^ sha256_rotr(e, 25);
    const u32 ch = (e & f) ^ (~e & g);
    const u32 t1 = h + S1 + ch + k_plus_w;
    const u32 S0 = sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^ sha256_rotr(a, 22);
    const u32 maj = (a & b) ^ (a & c) ^ (b & c);
    v[7] = g;
    v[6] = f;
    v[5] = e;
    v[4] = d + t1;
    v[3] = c;
    v[2] = b;
    v[1] = a;
    v[0] = t1 + S0 + maj;
}

// Compresses one block into `state`. `w` holds the block's 16 words and is
// used as the rolling message schedule (overwritten).
AUTOLIEN_HD void sha256_compress_words(u32 state[8], u32 w[16]) {
    u32 v[8];
    AUTOLIEN_UNROLL
    for (int i = 0; i < 8; ++i)
        v[i] = state[i];
    AUTOLIEN_UNROLL
    for (int i = 0; i < 64; ++i) {
        u32 wi;
        if (i < 16) {
            wi = w[i];
        } else {
            wi = sha256_schedule_word(w[i & 15], w[(i - 15) & 15], w[(i - 7) & 15], w[(i - 2) & 15]);
            w[i & 15] = wi;
        }
        sha256_round(v, kSha256K[i] + wi);
    }
    AUTOLIEN_UNROLL
    for (int i = 0; i < 8; ++i)
        state[i] += v[i];
}

AUTOLIEN_HD u32 load_be32(const u8* p) {
    return (u32(p[0]) << 24) | (u32(p[1]) << 16) | (u32(p[2]) << 8) | u32(p[3]);
}

AUTOLIEN_HD void store_be32(u8* p, u32 v) {
    p[0] = u8(v >> 24);
    p[1] = u8(v >> 16);
    p[2] = u8(v >> 8);
    p[3] = u8(v);
}

// Compresses `nblocks` consecutive 64-byte blocks.
AUTOLIEN_HD void sha256_compress_blocks(u32 state[8], const u8* blocks, u64 nblocks) {
    for (u64 blk = 0; blk < nblocks; ++blk, blocks += 64) {
        u32 w[16];
        AUTOLIEN_UNROLL
        for (int i = 0; i < 16; ++i)
            w[i] = load_be32(blocks + 4 * i);
        sha256_compress_words(state, w);
    }
}

} // namespace autolien::kernels
