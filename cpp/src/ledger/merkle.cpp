#include "autolien/ledger/merkle.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "autolien/common/thread_pool.hpp"

namespace autolien::ledger {

namespace {

// Below these counts a batch stays on the calling thread: waking workers costs
// more than hashing a few thousand items.
constexpr std::size_t kLeafChunk = 2048;
constexpr std::size_t kNodeChunk = 4096;

// Largest power of two strictly below n (n >= 2).
inline std::uint64_t split_point(std::uint64_t n) {
    return std::bit_floor(n - 1);
}

std::string num(std::uint64_t v) {
    return std::to_string(v);
}

} // namespace

HashKind parse_hash_kind(std::string_view name) {
    if (name == "sha256")
        return HashKind::sha256;
    if (name == "keccak256")
        return HashKind::keccak256;
    throw std::invalid_argument("hash must be 'sha256' or 'keccak256', got '" + std::string(name) + "'");
}

std::string_view hash_kind_name(HashKind kind) noexcept {
    return kind == HashKind::sha256 ? "sha256" : "keccak256";
}

Hash32 rfc6962_leaf_hash(HashKind kind, const std::uint8_t* data, std::size_t len) noexcept {
    Hash32 out;
    if (kind == HashKind::sha256)
        sha256_prefixed(0x00, data, len, out.data());
    else
        keccak256_prefixed(0x00, data, len, out.data());
    return out;
}

Hash32 rfc6962_node_hash(HashKind kind, const Hash32& left, const Hash32& right) noexcept {
    Hash32 out;
    if (kind == HashKind::sha256) {
        sha256_pair(0x01, left.data(), right.data(), out.data());
    } else {
        std::uint8_t buf[65];
        buf[0] = 0x01;
        std::memcpy(buf + 1, left.data(), 32);
        std::memcpy(buf + 33, right.data(), 32);
        keccak256(buf, sizeof(buf), out.data());
    }
    return out;
}

Hash32 rfc6962_empty_root(HashKind kind) noexcept {
    Hash32 out;
    if (kind == HashKind::sha256)
        sha256(nullptr, 0, out.data());
    else
        keccak256(nullptr, 0, out.data());
    return out;
}

MerkleLog::MerkleLog(HashKind kind) : kind_(kind), levels_(1) {
    // 64-bit sizes never need more than 65 levels; reserving them means that
    // growing a level never moves the others under a reference.
    levels_.reserve(65);
}

std::uint64_t MerkleLog::size() const {
    const std::shared_lock lock(mu_);
    return levels_[0].size();
}

void MerkleLog::grow_levels_locked(std::uint64_t old_size) {
    // Level k must hold size >> k perfect subtrees; fill in what the new leaves
    // completed, one level at a time, each level in parallel.
    const std::uint64_t new_size = levels_[0].size();
    for (std::size_t k = 0;; ++k) {
        const std::uint64_t have = old_size >> (k + 1);
        const std::uint64_t want = new_size >> (k + 1);
        if (want == have)
            break;
        if (levels_.size() <= k + 1)
            levels_.emplace_back();
        auto& child = levels_[k];
        auto& parent = levels_[k + 1];
        parent.resize(want);
        const std::size_t count = want - have;
        global_pool()->parallel_for(count, kNodeChunk, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) {
                const std::uint64_t p = have + i;
                parent[p] = rfc6962_node_hash(kind_, child[2 * p], child[2 * p + 1]);
            }
        });
    }
    const std::lock_guard<std::mutex> lock(root_mu_);
    root_valid_ = false;
}

std::uint64_t MerkleLog::append(const std::uint8_t* data, std::size_t len) {
    return append_leaf_hash(rfc6962_leaf_hash(kind_, data, len));
}

std::uint64_t MerkleLog::append_leaf_hash(const Hash32& leaf) {
    const std::unique_lock lock(mu_);
    const std::uint64_t index = levels_[0].size();
    levels_[0].push_back(leaf);
    // Carry up while this leaf closes a perfect subtree.
    std::uint64_t i = index;
    std::size_t k = 0;
    while (i & 1u) {
        if (levels_.size() <= k + 1)
            levels_.emplace_back();
        levels_[k + 1].push_back(rfc6962_node_hash(kind_, levels_[k][i - 1], levels_[k][i]));
        i >>= 1;
        ++k;
    }
    const std::lock_guard<std::mutex> rlock(root_mu_);
    root_valid_ = false;
    return index;
}

std::pair<std::uint64_t, std::uint64_t> MerkleLog::extend(std::span<const ByteView> items) {
    const std::unique_lock lock(mu_);
    auto& leaves = levels_[0];
    const std::uint64_t old_size = leaves.size();
    leaves.resize(old_size + items.size());
    Hash32* out = leaves.data() + old_size;
    const HashKind kind = kind_;
    global_pool()->parallel_for(items.size(), kLeafChunk, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i)
            out[i] = rfc6962_leaf_hash(kind, items[i].data, items[i].size);
    });
    grow_levels_locked(old_size);
    return {old_size, levels_[0].size()};
}

std::pair<std::uint64_t, std::uint64_t> MerkleLog::extend_leaf_hashes(std::span<const Hash32> leaves_in) {
    const std::unique_lock lock(mu_);
    auto& leaves = levels_[0];
    const std::uint64_t old_size = leaves.size();
    leaves.insert(leaves.end(), leaves_in.begin(), leaves_in.end());
    grow_levels_locked(old_size);
    return {old_size, levels_[0].size()};
}

namespace {
// ceil(n / 2^k) for k in 0..64.
std::uint64_t ceil_shift(std::uint64_t n, std::size_t k) {
    if (k >= 64)
        return n != 0 ? 1 : 0;
    return (n >> k) + ((n & ((std::uint64_t{1} << k) - 1)) != 0 ? 1 : 0);
}
std::uint64_t floor_shift(std::uint64_t n, std::size_t k) {
    return k >= 64 ? 0 : n >> k;
}
} // namespace

std::pair<std::uint64_t, std::uint64_t>
MerkleLog::extend_with_levels(std::span<const Hash32> leaves_in,
                              std::span<const std::span<const Hash32>> levels) {
    const std::unique_lock lock(mu_);
    const std::uint64_t old_size = levels_[0].size();
    const std::uint64_t new_size = old_size + leaves_in.size();
    // Check every level before changing anything.
    for (std::size_t k = 1; k <= 64; ++k) {
        const std::uint64_t lo = ceil_shift(old_size, k), hi = floor_shift(new_size, k);
        const std::uint64_t want = hi > lo ? hi - lo : 0;
        const std::uint64_t got = k <= levels.size() ? levels[k - 1].size() : 0;
        if (got != want)
            throw std::invalid_argument("level " + num(k) + " must hold " + num(want) + " nodes for leaves " +
                                        num(old_size) + ".." + num(new_size) + ", got " + num(got));
    }
    if (levels.size() > 64)
        throw std::invalid_argument("at most 64 node levels, got " + num(levels.size()));
    levels_[0].insert(levels_[0].end(), leaves_in.begin(), leaves_in.end());
    for (std::size_t k = 0;; ++k) {
        const std::uint64_t have = old_size >> (k + 1);
        const std::uint64_t want = new_size >> (k + 1);
        if (want == have)
            break;
        if (levels_.size() <= k + 1)
            levels_.emplace_back();
        auto& child = levels_[k];
        auto& parent = levels_[k + 1]; // holds `have` nodes
        const std::uint64_t given = ceil_shift(old_size, k + 1);
        for (std::uint64_t p = have; p < given && p < want; ++p)
            parent.push_back(rfc6962_node_hash(kind_, child[2 * p], child[2 * p + 1]));
        // One pass over the new memory (resize would zero it first).
        if (want > given)
            parent.insert(parent.end(), levels[k].begin(), levels[k].end());
    }
    const std::lock_guard<std::mutex> rlock(root_mu_);
    root_valid_ = false;
    return {old_size, new_size};
}

Hash32 MerkleLog::subtree_hash(std::uint64_t lo, std::uint64_t hi) const {
    // MTH(D[lo:hi]) for lo aligned as in the RFC recursion: the range splits
    // into perfect subtrees of decreasing size, folded from the right.
    if (hi == lo)
        return rfc6962_empty_root(kind_);
    Hash32 parts[64];
    int nparts = 0;
    std::uint64_t pos = lo;
    while (pos < hi) {
        const std::uint64_t len = std::bit_floor(hi - pos);
        const int level = std::countr_zero(len);
        parts[nparts++] = levels_[static_cast<std::size_t>(level)][pos >> level];
        pos += len;
    }
    Hash32 acc = parts[nparts - 1];
    for (int i = nparts - 2; i >= 0; --i)
        acc = rfc6962_node_hash(kind_, parts[i], acc);
    return acc;
}

Hash32 MerkleLog::root() const {
    const std::shared_lock lock(mu_);
    {
        const std::lock_guard<std::mutex> rlock(root_mu_);
        if (root_valid_)
            return root_cache_;
    }
    const Hash32 r = subtree_hash(0, levels_[0].size());
    const std::lock_guard<std::mutex> rlock(root_mu_);
    root_cache_ = r;
    root_valid_ = true;
    return r;
}

Hash32 MerkleLog::root(std::uint64_t size) const {
    const std::shared_lock lock(mu_);
    if (size > levels_[0].size())
        throw std::invalid_argument("size " + num(size) + " exceeds the log size " + num(levels_[0].size()));
    return subtree_hash(0, size);
}

Hash32 MerkleLog::leaf_hash(std::uint64_t index) const {
    const std::shared_lock lock(mu_);
    if (index >= levels_[0].size())
        throw std::out_of_range("index " + num(index) + " out of range for log size " +
                                num(levels_[0].size()));
    return levels_[0][index];
}

std::vector<Hash32> MerkleLog::inclusion_proof(std::uint64_t index, std::uint64_t size) const {
    const std::shared_lock lock(mu_);
    if (size > levels_[0].size())
        throw std::invalid_argument("size " + num(size) + " exceeds the log size " + num(levels_[0].size()));
    if (index >= size)
        throw std::out_of_range("index " + num(index) + " out of range for size " + num(size));
    Hash32 buf[64];
    const std::size_t n = path_into(index, size, buf);
    return std::vector<Hash32>(buf, buf + n);
}

namespace {
// Length of PATH(index, D[0:size]): one sibling per split on the way down.
std::size_t path_length(std::uint64_t index, std::uint64_t size) {
    std::size_t n = 0;
    std::uint64_t lo = 0, hi = size;
    while (hi - lo > 1) {
        const std::uint64_t k = split_point(hi - lo);
        if (index < lo + k)
            hi = lo + k;
        else
            lo += k;
        ++n;
    }
    return n;
}
} // namespace

void MerkleLog::fill_suffix_cache(std::uint64_t size, SuffixCache& cache) const {
    cache.size = size;
    cache.count = 0;
    std::uint64_t pos = 0;
    while (pos < size) {
        cache.start[cache.count++] = pos;
        pos += std::bit_floor(size - pos);
    }
    // Fold from the right: suffix i = node(perfect part i, suffix i + 1).
    for (int i = cache.count - 1; i >= 0; --i) {
        const std::uint64_t len = std::bit_floor(size - cache.start[i]);
        const int level = std::countr_zero(len);
        const Hash32& part = levels_[static_cast<std::size_t>(level)][cache.start[i] >> level];
        cache.hash[i] = i == cache.count - 1 ? part : rfc6962_node_hash(kind_, part, cache.hash[i + 1]);
    }
}

std::size_t MerkleLog::path_into(std::uint64_t index, std::uint64_t size, Hash32* out,
                                 const SuffixCache* cache) const {
    auto right_sibling = [&](std::uint64_t lo, std::uint64_t hi) {
        if (cache != nullptr && hi == cache->size) {
            for (int i = 0; i < cache->count; ++i)
                if (cache->start[i] == lo)
                    return cache->hash[i];
        }
        return subtree_hash(lo, hi);
    };
    // PATH(m, D[lo:hi]) top-down, written back to front (the RFC lists the
    // deepest sibling first).
    const std::size_t n = path_length(index, size);
    std::size_t pos = n;
    std::uint64_t lo = 0, hi = size;
    while (hi - lo > 1) {
        const std::uint64_t k = split_point(hi - lo);
        if (index < lo + k) {
            out[--pos] = right_sibling(lo + k, hi);
            hi = lo + k;
        } else {
            out[--pos] = subtree_hash(lo, lo + k);
            lo += k;
        }
    }
    return n;
}

void MerkleLog::inclusion_proofs(std::span<const std::uint64_t> indices, std::uint64_t size,
                                 std::vector<Hash32>& hashes, std::vector<std::uint64_t>& offsets) const {
    const std::shared_lock lock(mu_);
    if (size > levels_[0].size())
        throw std::invalid_argument("size " + num(size) + " exceeds the log size " + num(levels_[0].size()));
    offsets.assign(indices.size() + 1, 0);
    for (std::size_t k = 0; k < indices.size(); ++k) {
        if (indices[k] >= size)
            throw std::out_of_range("indices[" + num(k) + "] = " + num(indices[k]) +
                                    " out of range for size " + num(size));
        offsets[k + 1] = offsets[k] + path_length(indices[k], size);
    }
    hashes.resize(offsets.back());
    SuffixCache cache;
    fill_suffix_cache(size, cache);
    global_pool()->parallel_for(indices.size(), 256, [&](std::size_t b, std::size_t e) {
        for (std::size_t k = b; k < e; ++k)
            path_into(indices[k], size, hashes.data() + offsets[k], &cache);
    });
}

std::vector<Hash32> MerkleLog::consistency_proof(std::uint64_t size1, std::uint64_t size2) const {
    const std::shared_lock lock(mu_);
    if (size2 > levels_[0].size())
        throw std::invalid_argument("size2 " + num(size2) + " exceeds the log size " +
                                    num(levels_[0].size()));
    if (size1 > size2)
        throw std::invalid_argument("size1 " + num(size1) + " exceeds size2 " + num(size2));
    if (size1 == 0)
        throw std::invalid_argument(
            "size1 must be at least 1: consistency with the empty tree is never provable");
    // SUBPROOF(m, D[lo:hi], b) top-down, reversed at the end.
    std::vector<Hash32> proof;
    std::uint64_t lo = 0, hi = size2;
    bool whole_old_tree = true;
    for (;;) {
        if (size1 == hi) {
            if (!whole_old_tree)
                proof.push_back(subtree_hash(lo, hi));
            break;
        }
        const std::uint64_t k = split_point(hi - lo);
        if (size1 - lo <= k) {
            proof.push_back(subtree_hash(lo + k, hi));
            hi = lo + k;
        } else {
            proof.push_back(subtree_hash(lo, lo + k));
            lo += k;
            whole_old_tree = false;
        }
    }
    std::reverse(proof.begin(), proof.end());
    return proof;
}

bool verify_inclusion(HashKind kind, const Hash32& leaf_hash, std::uint64_t index, std::uint64_t size,
                      std::span<const Hash32> proof, const Hash32& root) noexcept {
    if (index >= size)
        return false;
    std::uint64_t fn = index, sn = size - 1;
    Hash32 r = leaf_hash;
    for (const Hash32& p : proof) {
        if (sn == 0)
            return false;
        if ((fn & 1u) || fn == sn) {
            r = rfc6962_node_hash(kind, p, r);
            if (!(fn & 1u)) {
                while (!(fn & 1u) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = rfc6962_node_hash(kind, r, p);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && r == root;
}

bool verify_consistency(HashKind kind, std::uint64_t size1, std::uint64_t size2,
                        std::span<const Hash32> proof, std::span<const std::uint8_t> root1_bytes,
                        std::span<const std::uint8_t> root2_bytes) noexcept {
    if (size1 == 0 || size1 > size2)
        return false;
    // Equal sizes: nothing is hashed, the roots need only be equal (as in the
    // reference, whatever their length).
    if (size1 == size2)
        return proof.empty() && std::ranges::equal(root1_bytes, root2_bytes);
    // From here roots are compared with computed hashes, which are 32 bytes.
    if (proof.empty() || root1_bytes.size() != 32 || root2_bytes.size() != 32)
        return false;
    Hash32 root1, root2;
    std::memcpy(root1.data(), root1_bytes.data(), 32);
    std::memcpy(root2.data(), root2_bytes.data(), 32);
    // When size1 is a power of two the old root is itself the first node.
    std::vector<Hash32> path;
    path.reserve(proof.size() + 1);
    if (std::has_single_bit(size1))
        path.push_back(root1);
    path.insert(path.end(), proof.begin(), proof.end());

    std::uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1u) {
        fn >>= 1;
        sn >>= 1;
    }
    Hash32 fr = path[0], sr = path[0];
    for (std::size_t i = 1; i < path.size(); ++i) {
        const Hash32& c = path[i];
        if (sn == 0)
            return false;
        if ((fn & 1u) || fn == sn) {
            fr = rfc6962_node_hash(kind, c, fr);
            sr = rfc6962_node_hash(kind, c, sr);
            if (!(fn & 1u)) {
                while (!(fn & 1u) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = rfc6962_node_hash(kind, sr, c);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return fr == root1 && sr == root2 && sn == 0;
}

Hash32 oz_node_hash(const Hash32& a, const Hash32& b) noexcept {
    std::uint8_t buf[64];
    const bool a_first = std::memcmp(a.data(), b.data(), 32) <= 0;
    std::memcpy(buf, a_first ? a.data() : b.data(), 32);
    std::memcpy(buf + 32, a_first ? b.data() : a.data(), 32);
    Hash32 out;
    keccak256(buf, sizeof(buf), out.data());
    return out;
}

std::vector<Hash32> oz_make_tree(std::span<const Hash32> leaves) {
    if (leaves.empty())
        throw std::invalid_argument("leaves must not be empty: expected a non-zero number of leaves");
    const std::size_t n = leaves.size();
    std::vector<Hash32> tree(2 * n - 1);
    for (std::size_t i = 0; i < n; ++i)
        tree[tree.size() - 1 - i] = leaves[i];
    for (std::size_t i = tree.size() - 1 - n + 1; i-- > 0;)
        tree[i] = oz_node_hash(tree[2 * i + 1], tree[2 * i + 2]);
    return tree;
}

} // namespace autolien::ledger
