// Valuation bindings: the compiled tree ensemble. Arrays in (noconvert),
// prediction under a released GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "autolien/valuation/oblivious.hpp"
#include "autolien/valuation/trees.hpp"
#include "columns.hpp"

namespace py = pybind11;
namespace av = autolien::valuation;
using autolien::bindings::to_numpy;

namespace {
template <typename T> using carray = py::array_t<T, py::array::c_style>;

// One prediction per row of a C-contiguous float32 matrix, computed by `run`
// without the GIL.
template <typename Ensemble, typename Run>
py::array_t<double> score(const Ensemble& self, const carray<float>& rows, Run&& run) {
    if (rows.ndim() != 2 || static_cast<std::size_t>(rows.shape(1)) != self.n_features())
        throw std::invalid_argument("rows must be a 2-D float32 array with one column per feature");
    const auto n = static_cast<std::size_t>(rows.shape(0));
    std::vector<double> out(n);
    {
        const py::gil_scoped_release nogil;
        run(std::span<const float>{rows.data(), n * self.n_features()}, std::span<double>{out});
    }
    return to_numpy(std::move(out));
}

using Isa = av::ObliviousEnsemble::Isa;

Isa parse_isa(const std::string& name) {
    if (name == "auto")
        return Isa::Auto;
    if (name == "portable")
        return Isa::Portable;
    if (name == "avx2")
        return Isa::Avx2;
    if (name == "avx512")
        return Isa::Avx512;
    throw std::invalid_argument("isa must be 'auto', 'avx512', 'avx2' or 'portable', got '" + name + "'");
}

const char* isa_name(Isa isa) {
    switch (isa) {
    case Isa::Avx512:
        return "avx512";
    case Isa::Avx2:
        return "avx2";
    case Isa::Portable:
        return "portable";
    default:
        return "auto";
    }
}

template <typename T> std::vector<T> vec(const carray<T>& a) {
    if (a.ndim() != 1)
        throw std::invalid_argument("tree arrays must be 1-D");
    return {a.data(), a.data() + a.shape(0)};
}
} // namespace

void register_valuation(py::module_& m) {
    py::class_<av::TreeEnsemble>(m, "TreeEnsemble", "A compiled sum of regression trees (float32 inputs).")
        .def(py::init([](const carray<std::int32_t>& feature, const carray<float>& threshold,
                         const carray<std::int32_t>& yes, const carray<std::int32_t>& no,
                         const carray<std::uint8_t>& missing_yes, const carray<double>& value,
                         const carray<std::int32_t>& roots, bool leq, double base, std::size_t n_features) {
                 return std::make_unique<av::TreeEnsemble>(vec(feature), vec(threshold), vec(yes), vec(no),
                                                           vec(missing_yes), vec(value), vec(roots), leq,
                                                           base, n_features);
             }),
             py::arg("feature").noconvert(), py::arg("threshold").noconvert(), py::arg("yes").noconvert(),
             py::arg("no").noconvert(), py::arg("missing_yes").noconvert(), py::arg("value").noconvert(),
             py::arg("roots").noconvert(), py::arg("leq"), py::arg("base"), py::arg("n_features"))
        .def(
            "predict",
            [](const av::TreeEnsemble& self, const carray<float>& rows) {
                return score(self, rows, [&](auto in, auto out) { self.predict(in, out); });
            },
            py::arg("rows").noconvert())
        .def_property_readonly("n_trees", &av::TreeEnsemble::n_trees)
        .def_property_readonly("n_nodes", &av::TreeEnsemble::n_nodes)
        .def_property_readonly("n_features", &av::TreeEnsemble::n_features);

    py::class_<av::ObliviousEnsemble>(m, "ObliviousEnsemble",
                                      "A compiled sum of oblivious trees (CatBoost's symmetric trees).")
        .def(py::init([](std::size_t depth, const carray<std::int32_t>& feature,
                         const carray<float>& threshold, const carray<float>& leaf, double base,
                         std::size_t n_features) {
                 return std::make_unique<av::ObliviousEnsemble>(depth, vec(feature), vec(threshold),
                                                                vec(leaf), base, n_features);
             }),
             py::arg("depth"), py::arg("feature").noconvert(), py::arg("threshold").noconvert(),
             py::arg("leaf").noconvert(), py::arg("base"), py::arg("n_features"))
        .def(
            "predict",
            [](const av::ObliviousEnsemble& self, const carray<float>& rows, const std::string& isa) {
                const auto kind = parse_isa(isa);
                return score(self, rows, [&](auto in, auto out) { self.predict(in, out, kind); });
            },
            py::arg("rows").noconvert(), py::arg("isa") = "auto")
        .def_property_readonly("n_trees", &av::ObliviousEnsemble::n_trees)
        .def_property_readonly("depth", &av::ObliviousEnsemble::depth)
        .def_property_readonly("n_features", &av::ObliviousEnsemble::n_features)
        .def_static("best_isa", [] { return isa_name(av::ObliviousEnsemble::best_isa()); })
        .def_static(
            "supports",
            [](const std::string& isa) { return av::ObliviousEnsemble::supports(parse_isa(isa)); },
            py::arg("isa"));
}
