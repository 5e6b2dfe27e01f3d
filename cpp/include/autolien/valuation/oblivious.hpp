// A compiled ensemble of oblivious (symmetric) trees, as CatBoost grows them:
// every node on a level of a tree asks the same question, so a row's leaf is
// a number whose bit d is the answer at level d, and no row ever branches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace autolien::valuation {

class ObliviousEnsemble {
  public:
    // Tree t, level d reads feature[t*depth + d] and sets bit d of the leaf
    // index when that value is > threshold[t*depth + d] (NaN never is). Its
    // leaves are leaf[t << depth ... ((t + 1) << depth) - 1].
    ObliviousEnsemble(std::size_t depth, std::vector<std::int32_t> feature, std::vector<float> threshold,
                      std::vector<float> leaf, double base, std::size_t n_features);

    // The instruction sets the scorer has kernels for; Auto takes the best
    // this CPU runs. Naming one it lacks is an invalid_argument.
    enum class Isa { Auto, Portable, Avx2, Avx512 };

    // out[i] = base + sum over trees of the leaf row i reaches; rows are
    // n_features float32 values each.
    void predict(std::span<const float> rows, std::span<double> out, Isa isa = Isa::Auto) const;

    [[nodiscard]] std::size_t n_trees() const { return n_trees_; }
    [[nodiscard]] std::size_t depth() const { return depth_; }
    [[nodiscard]] std::size_t n_features() const { return n_features_; }
    // The instruction set Auto picks on this CPU, and whether one runs here.
    [[nodiscard]] static Isa best_isa() noexcept;
    [[nodiscard]] static bool supports(Isa isa) noexcept;

  private:
    static constexpr std::size_t kBlock = 512; // rows scored together, feature-major
    void block(const float* cols, std::size_t n, double* out, Isa isa) const;

    std::size_t depth_;
    std::size_t n_trees_;
    std::vector<std::int32_t> feature_;
    std::vector<float> threshold_;
    std::vector<float> leaf_;
    double base_;
    std::size_t n_features_;
};

} // namespace autolien::valuation
