// The three .cu files of autolien.gpu built for the host (see cuda_shim.hpp),
// with a C entry point per kernel for ctypes. Launched as the Python wrappers
// launch them; any block size gives the same result.
#include "cuda_shim.hpp"

#include "hash.cu"

#include "entropy.cu"

#include "fusion.cu"

namespace {
unsigned blocks_for(unsigned long long n, unsigned threads) {
    return unsigned((n + threads - 1) / threads);
}
} // namespace

extern "C" {

void host_leaf_hashes_i64(const u8* data, const long long* offsets, u64 n, int keccak, u8* out) {
    shim_launch(blocks_for(n, 128), 128, [&] { leaf_hashes_i64(data, offsets, n, keccak, out); });
}

void host_leaf_hashes_i32(const u8* data, const int* offsets, u64 n, int keccak, u8* out) {
    shim_launch(blocks_for(n, 128), 128, [&] { leaf_hashes_i32(data, offsets, n, keccak, out); });
}

void host_node_hashes(const u8* child, u64 count, int keccak, u8* parent) {
    shim_launch(blocks_for(count, 128), 128, [&] { node_hashes(child, count, keccak, parent); });
}

void host_fixed_table(u64* table, u32 max_count) {
    shim_launch(blocks_for(u64(max_count) + 1, 256), 256, [&] { fixed_table(table, max_count); });
}

void host_rolling_fixed(const double* x, const double* t, const long long* offsets, const int* seg_group,
                        const long long* seg_begin, const long long* seg_end, long long nseg, long long count,
                        double span, int shannon, int order, int delay, const double* edges, int nedges,
                        const u64* table, u32* counts, int slots, int shared, int warps, u64* out) {
    // One warp per segment, `warps` per block, as autolien.gpu.entropy launches.
    const unsigned threads = 32u * unsigned(warps);
    shim_launch_warps(blocks_for(u64(nseg), unsigned(warps)), threads, [&] {
        rolling_fixed(x, t, offsets, seg_group, seg_begin, seg_end, nseg, count, span, shannon, order, delay,
                      edges, nedges, table, counts, slots, shared, out);
    });
}

void host_fuse_groups(const long long* groups, long long ngroups, const double* t, const double* lat,
                      const double* lon, const double* hgt, const int* quality, const double* sn,
                      const double* se, const double* su, const double* speed, const double* cfgv,
                      double* const* outs, u8* ostatus, u32* osegment) {
    shim_launch(blocks_for(u64(ngroups), 64), 64, [&] {
        fuse_groups(groups, ngroups, t, lat, lon, hgt, quality, sn, se, su, speed, cfgv, outs[0], outs[1],
                    outs[2], outs[3], outs[4], outs[5], outs[6], outs[7], outs[8], outs[9], outs[10], ostatus,
                    osegment);
    });
}

} // extern "C"
