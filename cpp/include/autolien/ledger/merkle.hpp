// RFC 6962 / RFC 9162 Merkle log: leaf = H(0x00 || data),
// node = H(0x01 || left || right), the empty tree hashes to H("").
//
// Every perfect subtree's hash is kept by level (level k holds the hashes of
// the aligned 2^k-leaf subtrees), so the compact-range frontier of any size is
// read straight off the levels: root(size) and proofs cost O(log n) hashes and
// append is amortised O(1), worst case O(log n).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "autolien/ledger/hash.hpp"

namespace autolien::ledger {

enum class HashKind { sha256, keccak256 };

// Parses "sha256" / "keccak256"; throws std::invalid_argument naming `hash`.
HashKind parse_hash_kind(std::string_view name);
std::string_view hash_kind_name(HashKind kind) noexcept;

struct ByteView {
    const std::uint8_t* data;
    std::size_t size;
};

// Domain-separated hashes of the log.
Hash32 rfc6962_leaf_hash(HashKind kind, const std::uint8_t* data, std::size_t len) noexcept;
Hash32 rfc6962_node_hash(HashKind kind, const Hash32& left, const Hash32& right) noexcept;
Hash32 rfc6962_empty_root(HashKind kind) noexcept;

class MerkleLog {
  public:
    explicit MerkleLog(HashKind kind = HashKind::sha256);

    [[nodiscard]] HashKind hash_kind() const noexcept { return kind_; }
    [[nodiscard]] std::uint64_t size() const;

    // Appends one record; returns its index.
    std::uint64_t append(const std::uint8_t* data, std::size_t len);
    std::uint64_t append_leaf_hash(const Hash32& leaf);
    // Appends many records, hashing leaves and new nodes on the global thread
    // pool. Returns (first index, new size).
    std::pair<std::uint64_t, std::uint64_t> extend(std::span<const ByteView> items);
    std::pair<std::uint64_t, std::uint64_t> extend_leaf_hashes(std::span<const Hash32> leaves);
    // Appends leaf hashes with the nodes above them already computed by the
    // caller (the GPU backend): levels[k - 1] holds the level-k nodes that
    // cover new leaves only, indices [ceil(old_size / 2^k), new_size >> k).
    // The at most one node per level that also covers old leaves is hashed
    // here; the given nodes are stored as they are, not rehashed.
    // std::invalid_argument (and no change) when a level has the wrong count.
    std::pair<std::uint64_t, std::uint64_t>
    extend_with_levels(std::span<const Hash32> leaves, std::span<const std::span<const Hash32>> levels);

    [[nodiscard]] Hash32 root() const;
    // Root of the first `size` leaves; std::invalid_argument if size > size().
    [[nodiscard]] Hash32 root(std::uint64_t size) const;
    [[nodiscard]] Hash32 leaf_hash(std::uint64_t index) const;
    // RFC 9162 2.1.3.1; index must be < size <= size().
    [[nodiscard]] std::vector<Hash32> inclusion_proof(std::uint64_t index, std::uint64_t size) const;
    // Many inclusion proofs at once, on the thread pool: proof k is
    // hashes[offsets[k] .. offsets[k+1]).
    void inclusion_proofs(std::span<const std::uint64_t> indices, std::uint64_t size,
                          std::vector<Hash32>& hashes, std::vector<std::uint64_t>& offsets) const;
    // RFC 9162 2.1.4.1; needs 0 < size1 <= size2 <= size().
    [[nodiscard]] std::vector<Hash32> consistency_proof(std::uint64_t size1, std::uint64_t size2) const;

  private:
    // Callers hold mu_ (shared or exclusive).
    [[nodiscard]] Hash32 subtree_hash(std::uint64_t lo, std::uint64_t hi) const;
    // The hashes of the suffixes [b, size) for each boundary b of size's
    // binary decomposition: the only non-perfect subtrees a proof needs.
    struct SuffixCache {
        std::uint64_t size = 0;
        int count = 0;
        std::uint64_t start[64];
        Hash32 hash[64];
    };
    void fill_suffix_cache(std::uint64_t size, SuffixCache& cache) const;
    // Writes PATH(index, D[0:size]) into out (deepest sibling first); returns
    // its length. `cache` (for this size) saves re-hashing shared suffixes.
    std::size_t path_into(std::uint64_t index, std::uint64_t size, Hash32* out,
                          const SuffixCache* cache = nullptr) const;
    void grow_levels_locked(std::uint64_t old_size);

    HashKind kind_;
    std::vector<std::vector<Hash32>> levels_;
    mutable std::shared_mutex mu_;
    mutable std::mutex root_mu_;
    mutable bool root_valid_ = false;
    mutable Hash32 root_cache_{};
};

// Stateless verifiers (RFC 9162 2.1.3.2 and 2.1.4.2). They never throw: any
// defect in the arguments makes them return false. They agree with
// transparency-dev/merkle's proof.Verify* on its whole probe suite
// (docs/ledger.md, "Conformance"). Consistency roots are taken as bytes of any
// length: for equal sizes the reference compares them without hashing, so a
// root that is not 32 bytes long is still equal to itself.
bool verify_inclusion(HashKind kind, const Hash32& leaf_hash, std::uint64_t index, std::uint64_t size,
                      std::span<const Hash32> proof, const Hash32& root) noexcept;
bool verify_consistency(HashKind kind, std::uint64_t size1, std::uint64_t size2,
                        std::span<const Hash32> proof, std::span<const std::uint8_t> root1,
                        std::span<const std::uint8_t> root2) noexcept;

// OpenZeppelin merkle-tree 1.x: node = keccak256(sorted(a, b)); the tree is a
// heap array of 2n-1 nodes with leaf i stored at index 2n-2-i.
Hash32 oz_node_hash(const Hash32& a, const Hash32& b) noexcept;
std::vector<Hash32> oz_make_tree(std::span<const Hash32> leaves);

} // namespace autolien::ledger
