// SHA-256 and Keccak-256 message hashers for the Merkle kernels, written for
// Vitis HLS: a DATAFLOW of pad -> schedule -> rounds (SHA-256) and
// pad -> rounds (Keccak-256 has no message schedule), each round loop
// pipelined at II=1. The round arithmetic and constants are the shared
// kernels (cpp/include/autolien/kernels), the same code the CPU core and the
// CUDA kernels run. No interface pragmas here: fpga/top adds them.
//
// Records arrive as RecWord beats: byte i of a beat in data bits [8i+7:8i]
// (AXI-Stream byte order), `keep` the count of valid low bytes (0..8) and
// `last` on the record's final beat (an empty record is one beat with keep 0).
// A digest leaves as ap_uint<256> with digest byte k in bits [8k+7:8k].
#pragma once

#include <ap_int.h>
#include <hls_stream.h>

#include "autolien/kernels/keccak.hpp"
#include "autolien/kernels/sha256.hpp"

namespace autolien::fpga {

using kernels::u32;
using kernels::u64;
using kernels::u8;

// Longest record the loop trip counts are sized for (bytes); longer records
// work in C-simulation and on hardware, only the latency estimate assumes it.
constexpr int kMaxRecordBytes = 4096;

struct RecWord {
    ap_uint<64> data;
    ap_uint<4> keep; // valid low bytes, 0..8
    bool last;
};

typedef ap_uint<256> Digest;

// Message framing: RFC 6962 prefixes one byte (0x00 leaf, 0x01 node); a raw
// hash (the NIST vectors) has none.
struct Prefix {
    bool present;
    u8 byte;
};

enum PadPhase { kPhPrefix, kPhData, kPhPad, kPhZero, kPhTail, kPhDone };

// ---------------------------------------------------------------- SHA-256

// Pad: one byte per cycle into big-endian 32-bit words, 16 per block, plus a
// flag per block saying whether it ends the message. FIPS 180-4 5.1.1.
inline void sha256_pad(hls::stream<RecWord>& in, hls::stream<u32>& words, hls::stream<bool>& ends, u32 nmsg,
                       Prefix pre) {
msg:
    for (u32 m = 0; m < nmsg; ++m) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        int phase = pre.present ? kPhPrefix : kPhData;
        ap_uint<64> cur = 0;
        int avail = 0;
        bool last = false;
        u64 len = 0;
        u32 word = 0;
        int pos = 0; // byte position in the block, 0..63
    byte:
        while (phase != kPhDone) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 64 max = 4160
            u8 b = 0;
            bool final_byte = false;
            if (phase == kPhPrefix) {
                b = pre.byte;
                ++len;
                phase = kPhData;
            } else {
                if (phase == kPhData && avail == 0) {
                    const RecWord w = in.read();
                    cur = w.data;
                    avail = w.keep;
                    last = w.last;
                    if (avail == 0)
                        phase = kPhPad; // an empty last beat
                }
                if (phase == kPhData) {
                    b = u8(cur(7, 0));
                    cur >>= 8;
                    --avail;
                    ++len;
                    if (avail == 0 && last)
                        phase = kPhPad;
                } else if (phase == kPhPad) {
                    b = 0x80;
                    phase = pos == 55 ? kPhTail : kPhZero;
                } else if (phase == kPhZero) {
                    if (pos == 55)
                        phase = kPhTail;
                } else { // kPhTail: the bit length, big-endian, in bytes 56..63
                    b = u8((len << 3) >> (8 * (63 - pos)));
                    final_byte = pos == 63;
                }
            }
            word = (word << 8) | b;
            if ((pos & 3) == 3)
                words.write(word);
            if (pos == 63)
                ends.write(final_byte);
            if (final_byte)
                phase = kPhDone;
            pos = (pos + 1) & 63;
        }
    }
}

// Schedule: the 64 words W[t] of each block, one per cycle, from a 16-word
// shift register (w[0] = W[t-16] ... w[15] = W[t-1]).
inline void sha256_schedule(hls::stream<u32>& words, hls::stream<bool>& ends_in, hls::stream<u32>& sched,
                            hls::stream<bool>& ends_out, u32 nmsg) {
msg:
    for (u32 m = 0; m < nmsg; ++m) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        bool end = false;
    block:
        while (!end) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65
            u32 w[16];
#pragma HLS ARRAY_PARTITION variable = w complete
        init:
            for (int i = 0; i < 16; ++i)
                w[i] = 0;
        round:
            for (int t = 0; t < 64; ++t) {
#pragma HLS PIPELINE II = 1
                const u32 wt = t < 16 ? words.read() : kernels::sha256_schedule_word(w[0], w[1], w[9], w[14]);
            shift:
                for (int i = 0; i < 15; ++i)
                    w[i] = w[i + 1];
                w[15] = wt;
                sched.write(wt);
            }
            end = ends_in.read();
            ends_out.write(end);
        }
    }
}

// Rounds: one round per cycle; the chaining value is added after the 64th
// and the digest leaves at the message's last block.
inline void sha256_rounds(hls::stream<u32>& sched, hls::stream<bool>& ends, hls::stream<Digest>& out,
                          u32 nmsg) {
msg:
    for (u32 m = 0; m < nmsg; ++m) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        u32 h[8];
#pragma HLS ARRAY_PARTITION variable = h complete
    iv:
        for (int i = 0; i < 8; ++i)
            h[i] = kernels::kSha256IV[i];
        bool end = false;
    block:
        while (!end) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65
            u32 v[8];
#pragma HLS ARRAY_PARTITION variable = v complete
        load:
            for (int i = 0; i < 8; ++i)
                v[i] = h[i];
        round:
            for (int t = 0; t < 64; ++t) {
#pragma HLS PIPELINE II = 1
                kernels::sha256_round(v, kernels::kSha256K[t] + sched.read());
            }
        add:
            for (int i = 0; i < 8; ++i)
                h[i] += v[i];
            end = ends.read();
        }
        Digest d = 0;
    pack:
        for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 4; ++j)
                d(8 * (4 * i + j) + 7, 8 * (4 * i + j)) = (h[i] >> (24 - 8 * j)) & 0xff;
        out.write(d);
    }
}

// nmsg records in, nmsg digests out, in order.
inline void sha256_stream(hls::stream<RecWord>& in, hls::stream<Digest>& out, u32 nmsg, Prefix pre) {
#pragma HLS DATAFLOW
    hls::stream<u32> words("sha256_words");
    hls::stream<bool> ends_a("sha256_ends_a");
    hls::stream<u32> sched("sha256_sched");
    hls::stream<bool> ends_b("sha256_ends_b");
#pragma HLS STREAM variable = words depth = 32
#pragma HLS STREAM variable = sched depth = 64
    sha256_pad(in, words, ends_a, nmsg, pre);
    sha256_schedule(words, ends_a, sched, ends_b, nmsg);
    sha256_rounds(sched, ends_b, out, nmsg);
}

// ------------------------------------------------------------- Keccak-256

constexpr int kKeccakRateLanes = 17; // 136-byte rate for a 256-bit digest

// Pad: one byte per cycle into little-endian 64-bit lanes, 17 per block.
// Keccak-256 as Ethereum uses it: pad10*1 with the 0x01 first bit (not
// SHA3-256's 0x06).
inline void keccak_pad(hls::stream<RecWord>& in, hls::stream<u64>& lanes, hls::stream<bool>& ends, u32 nmsg,
                       Prefix pre) {
msg:
    for (u32 m = 0; m < nmsg; ++m) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        int phase = pre.present ? kPhPrefix : kPhData;
        ap_uint<64> cur = 0;
        int avail = 0;
        bool last = false;
        u64 lane = 0;
        int pos = 0; // byte position in the block, 0..135
    byte:
        while (phase != kPhDone) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 136 max = 4216
            u8 b = 0;
            bool final_byte = false;
            if (phase == kPhPrefix) {
                b = pre.byte;
                phase = kPhData;
            } else {
                if (phase == kPhData && avail == 0) {
                    const RecWord w = in.read();
                    cur = w.data;
                    avail = w.keep;
                    last = w.last;
                    if (avail == 0)
                        phase = kPhPad;
                }
                if (phase == kPhData) {
                    b = u8(cur(7, 0));
                    cur >>= 8;
                    --avail;
                    if (avail == 0 && last)
                        phase = kPhPad;
                } else if (phase == kPhPad) {
                    b = 0x01;
                    phase = kPhZero;
                } else { // kPhZero: zeros up to the 0x80 of the block's last byte
                    b = 0;
                }
                if (phase == kPhZero && pos == 135) {
                    b |= 0x80;
                    final_byte = true;
                }
            }
            lane |= u64(b) << (8 * (pos & 7));
            if ((pos & 7) == 7) {
                lanes.write(lane);
                lane = 0;
            }
            if (pos == 135)
                ends.write(final_byte);
            if (final_byte)
                phase = kPhDone;
            pos = pos == 135 ? 0 : pos + 1;
        }
    }
}

// Rounds: absorb a block (XOR into the rate lanes), then Keccak-f[1600] at
// one round per cycle; the digest is lanes 0..3 after the last block.
inline void keccak_rounds(hls::stream<u64>& lanes, hls::stream<bool>& ends, hls::stream<Digest>& out,
                          u32 nmsg) {
msg:
    for (u32 m = 0; m < nmsg; ++m) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1024
        u64 st[25];
#pragma HLS ARRAY_PARTITION variable = st complete
    clear:
        for (int i = 0; i < 25; ++i)
            st[i] = 0;
        bool end = false;
    block:
        while (!end) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 32
        absorb:
            for (int i = 0; i < kKeccakRateLanes; ++i) {
#pragma HLS PIPELINE II = 1
                st[i] ^= lanes.read();
            }
        round:
            for (int r = 0; r < 24; ++r) {
#pragma HLS PIPELINE II = 1
                kernels::keccak_round(st, kernels::kKeccakRC[r]);
            }
            end = ends.read();
        }
        Digest d = 0;
    pack:
        for (int i = 0; i < 4; ++i)
            d(64 * i + 63, 64 * i) = st[i];
        out.write(d);
    }
}

inline void keccak256_stream(hls::stream<RecWord>& in, hls::stream<Digest>& out, u32 nmsg, Prefix pre) {
#pragma HLS DATAFLOW
    hls::stream<u64> lanes("keccak_lanes");
    hls::stream<bool> ends("keccak_ends");
#pragma HLS STREAM variable = lanes depth = 34
    keccak_pad(in, lanes, ends, nmsg, pre);
    keccak_rounds(lanes, ends, out, nmsg);
}

// -------------------------------------------------------- RFC 6962 Merkle

enum HashKind { kSha256 = 0, kKeccak256 = 1 };

inline void hash_stream(hls::stream<RecWord>& in, hls::stream<Digest>& out, u32 nmsg, Prefix pre, int kind) {
    if (kind == kKeccak256)
        keccak256_stream(in, out, nmsg, pre);
    else
        sha256_stream(in, out, nmsg, pre);
}

// Feeds a 32-byte digest as four beats (the halves of an interior node).
inline void put_digest(hls::stream<RecWord>& s, const Digest& d, bool last) {
beats:
    for (int i = 0; i < 4; ++i) {
#pragma HLS PIPELINE II = 1
        RecWord w;
        w.data = d(64 * i + 63, 64 * i);
        w.keep = 8;
        w.last = last && i == 3;
        s.write(w);
    }
}

// H(0x01 || left || right).
inline Digest node_hash(const Digest& left, const Digest& right, int kind) {
    hls::stream<RecWord> in("node_in");
    hls::stream<Digest> out("node_out");
#pragma HLS STREAM variable = in depth = 8
    put_digest(in, left, false);
    put_digest(in, right, true);
    Prefix pre;
    pre.present = true;
    pre.byte = 0x01;
    hash_stream(in, out, 1, pre, kind);
    return out.read();
}

constexpr int kMaxBatch = 1024; // leaves per m_axi batch (one BRAM of digests)
constexpr int kMaxLevels = 10;  // log2(kMaxBatch)

// The RFC 6962 root MTH of the n leaf hashes in leaves[0..n) (n >= 1),
// in place, bottom-up: pairs are combined level by level and an odd last
// node moves up unchanged, which builds the same left-balanced tree as the
// RFC's split at the largest power of two below n.
inline Digest merkle_reduce(Digest leaves[kMaxBatch], int n, int kind) {
level:
    for (int l = 0; l < kMaxLevels; ++l) {
        if (n <= 1)
            break;
        const int half = n / 2;
    pair:
        for (int i = 0; i < half; ++i) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 512
            leaves[i] = node_hash(leaves[2 * i], leaves[2 * i + 1], kind);
        }
        if (n & 1)
            leaves[half] = leaves[n - 1];
        n = half + (n & 1);
    }
    return leaves[0];
}

} // namespace autolien::fpga
