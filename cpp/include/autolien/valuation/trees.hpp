// A compiled tree ensemble (sum of regression trees), loaded from the arrays
// of an ONNX TreeEnsembleRegressor and evaluated on float32 rows exactly as
// onnxruntime compares them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace autolien::valuation {

class TreeEnsemble {
  public:
    // One entry per node, trees concatenated; child indices are global. A
    // leaf has feature -1 and its value in `value`. `leq` selects x <= t
    // (else x < t) for the branch to `yes`; NaN goes to `yes` when
    // `missing_yes`, else to `no`.
    TreeEnsemble(std::vector<std::int32_t> feature, std::vector<float> threshold,
                 std::vector<std::int32_t> yes, std::vector<std::int32_t> no,
                 std::vector<std::uint8_t> missing_yes, std::vector<double> value,
                 std::vector<std::int32_t> roots, bool leq, double base, std::size_t n_features);

    // out[i] = base + sum over trees of the leaf row i reaches; rows are
    // n_features float32 values each. Runs on the pool in row blocks.
    void predict(std::span<const float> rows, std::span<double> out) const;

    [[nodiscard]] std::size_t n_trees() const { return roots_.size(); }
    [[nodiscard]] std::size_t n_nodes() const { return nodes_.size(); }
    [[nodiscard]] std::size_t n_features() const { return n_features_; }

  private:
    // 16 bytes. A leaf loops to itself (threshold +inf, missing to `yes`), so
    // every row of a block can take the same number of steps, branch-free.
    struct Node {
        float threshold;
        std::int16_t feature;
        std::uint8_t missing_yes;
        std::uint8_t leaf;
        std::int32_t yes;
        std::int32_t no;
    };
    static constexpr std::size_t kChunk = 32768; // at most this many rows sorted and scored per task
    static constexpr std::size_t kBlock = 256;   // rows that walk each tree together
    void predict_block(const float* rows, std::size_t n, double* out) const;
    // Local index (node - root) of the leaf row x reaches in the tree at root.
    [[nodiscard]] std::int32_t leaf_of(std::int32_t root, const float* x) const;
    template <bool Leq, std::size_t kGroup> void walk(const float* rows, std::size_t n, double* out) const;

    std::vector<Node> nodes_;
    std::vector<double> value_;
    std::vector<std::int32_t> roots_;
    bool leq_;
    double base_;
    std::size_t n_features_;
};

} // namespace autolien::valuation
