// Tree ensemble evaluation: trees outer, rows inner over blocks of rows, so a
// tree's nodes stay in cache while a block walks it.
#include "autolien/valuation/trees.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autolien/common/thread_pool.hpp"

namespace autolien::valuation {

TreeEnsemble::TreeEnsemble(std::vector<std::int32_t> feature, std::vector<float> threshold,
                           std::vector<std::int32_t> yes, std::vector<std::int32_t> no,
                           std::vector<std::uint8_t> missing_yes, std::vector<double> value,
                           std::vector<std::int32_t> roots, bool leq, double base, std::size_t n_features)
    : value_(std::move(value)), roots_(std::move(roots)), leq_(leq), base_(base), n_features_(n_features) {
    const std::size_t n = feature.size();
    if (threshold.size() != n || yes.size() != n || no.size() != n || missing_yes.size() != n ||
        value_.size() != n)
        throw std::invalid_argument("tree arrays must all have one entry per node");
    if (n_features == 0 || n_features > 32767)
        throw std::invalid_argument("a model needs 1..32767 features");
    nodes_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto self = static_cast<std::int32_t>(i);
        if (feature[i] < 0) {
            nodes_[i] = {std::numeric_limits<float>::infinity(), 0, 1, 1, self, self};
            continue;
        }
        if (static_cast<std::size_t>(feature[i]) >= n_features)
            throw std::invalid_argument("node " + std::to_string(i) + " reads a feature the model lacks");
        for (auto c : {yes[i], no[i]})
            if (c <= self || static_cast<std::size_t>(c) >= n)
                throw std::invalid_argument("node " + std::to_string(i) + " has a child out of range");
        nodes_[i] = {threshold[i], static_cast<std::int16_t>(feature[i]), missing_yes[i], 0, yes[i], no[i]};
    }
    for (auto r : roots_)
        if (r < 0 || static_cast<std::size_t>(r) >= n)
            throw std::invalid_argument("tree root out of range");
}

template <bool Leq, std::size_t kGroup>
void TreeEnsemble::walk(const float* rows, std::size_t n, double* out) const {
    for (std::size_t i = 0; i < n; ++i)
        out[i] = base_;
    const Node* nodes = nodes_.data();
    const double* value = value_.data();
    const std::size_t nf = n_features_;
    // A last partial group walks a padded copy (its last row repeated), so
    // every group has kGroup real rows to read.
    const std::size_t full = n / kGroup * kGroup;
    std::vector<float> tail;
    if (full < n) {
        tail.resize(kGroup * nf);
        for (std::size_t g = 0; g < kGroup; ++g)
            std::copy_n(rows + std::min(full + g, n - 1) * nf, nf, tail.data() + g * nf);
    }
    // Trees outer, rows inner: a tree's nodes stay in cache for the block.
    // Within a tree, kGroup rows step together, branch-free (a leaf loops to
    // itself), until all of them sit on a leaf: the rows' walks are
    // independent, so their loads overlap instead of each mispredicted branch
    // stalling one walk. A group costs its deepest row's depth, not the
    // tree's (a whole-tree fixed-depth walk measured 2x slower).
    for (auto root : roots_)
        for (std::size_t i0 = 0; i0 < n; i0 += kGroup) {
            const float* x = i0 < full ? rows + i0 * nf : tail.data();
            std::int32_t idx[kGroup];
            for (std::size_t g = 0; g < kGroup; ++g)
                idx[g] = root;
            for (;;) {
                unsigned inner = 0;
                for (std::size_t g = 0; g < kGroup; ++g) {
                    const Node& nd = nodes[idx[g]];
                    const float v = x[g * nf + static_cast<std::size_t>(nd.feature)];
                    const bool cmp = Leq ? (v <= nd.threshold) : (v < nd.threshold);
                    const bool yes = cmp | ((v != v) & (nd.missing_yes != 0));
                    idx[g] = yes ? nd.yes : nd.no;
                    inner |= static_cast<unsigned>(nd.leaf ^ 1U);
                }
                if (inner == 0)
                    break;
            }
            const std::size_t m = std::min(kGroup, n - i0);
            for (std::size_t g = 0; g < m; ++g)
                out[i0 + g] += value[idx[g]];
        }
}

void TreeEnsemble::predict_block(const float* rows, std::size_t n, double* out) const {
    if (leq_)
        walk<true, 8>(rows, n, out);
    else
        walk<false, 8>(rows, n, out);
}

std::int32_t TreeEnsemble::leaf_of(std::int32_t root, const float* x) const {
    const Node* nd = nodes_.data() + root;
    while (!nd->leaf) {
        const float v = x[nd->feature];
        const bool cmp = leq_ ? (v <= nd->threshold) : (v < nd->threshold);
        nd = nodes_.data() + ((cmp | ((v != v) & (nd->missing_yes != 0))) ? nd->yes : nd->no);
    }
    return static_cast<std::int32_t>(nd - nodes_.data()) - root;
}

void TreeEnsemble::predict(std::span<const float> rows, std::span<double> out) const {
    if (rows.size() != out.size() * n_features_)
        throw std::invalid_argument("rows must hold n_features values per output");
    const std::size_t n = out.size();
    const std::size_t nf = n_features_;
    // Big chunks sort better; small inputs still split across the pool.
    const std::size_t chunk =
        std::clamp<std::size_t>(n / (2 * std::max<std::size_t>(1, global_pool()->size())), 1024, kChunk);
    const std::size_t chunks = (n + chunk - 1) / chunk;
    // Rows that reach the same leaves of the first trees take similar paths
    // through the rest, so a chunk is walked in that order: a group of rows
    // stepping together then stops nearer its rows' own depths (1.5x on the
    // UK listings in random order).
    constexpr std::size_t kKeyTrees = 5, kBits = 64 / kKeyTrees;
    const std::size_t key_trees = std::min(kKeyTrees, roots_.size());
    global_pool()->parallel_for(chunks, 1, [&](std::size_t lo, std::size_t hi) {
        std::vector<std::pair<std::uint64_t, std::uint32_t>> order;
        std::vector<float> buf;
        std::vector<double> res;
        for (std::size_t c = lo; c < hi; ++c) {
            const std::size_t a = c * chunk;
            const std::size_t m = std::min(chunk, n - a);
            const float* src = rows.data() + a * nf;
            order.resize(m);
            for (std::size_t i = 0; i < m; ++i) {
                std::uint64_t key = 0;
                for (std::size_t t = 0; t < key_trees; ++t)
                    key = (key << kBits) | (static_cast<std::uint64_t>(leaf_of(roots_[t], src + i * nf)) &
                                            ((std::uint64_t{1} << kBits) - 1));
                order[i] = {key, static_cast<std::uint32_t>(i)};
            }
            std::sort(order.begin(), order.end());
            buf.resize(m * nf);
            res.resize(m);
            for (std::size_t i = 0; i < m; ++i)
                std::copy_n(src + order[i].second * nf, nf, buf.data() + i * nf);
            for (std::size_t b = 0; b < m; b += kBlock)
                predict_block(buf.data() + b * nf, std::min(kBlock, m - b), res.data() + b);
            for (std::size_t i = 0; i < m; ++i)
                out[a + order[i].second] = res[i];
        }
    });
}

} // namespace autolien::valuation
