// Entropy bindings: float64 arrays in (noconvert; the Python layer casts),
// the GIL released around every kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <span>
#include <stdexcept>
#include <string>

#include "autolien/entropy/entropy.hpp"
#include "columns.hpp"

namespace py = pybind11;
namespace ae = autolien::entropy;
using autolien::bindings::to_numpy;

namespace {

template <typename T> using carray = py::array_t<T, py::array::c_style>;

template <typename T> std::span<const T> view(const carray<T>& a) {
    if (a.ndim() != 1)
        throw std::invalid_argument("expected a 1-D array");
    return {a.data(), static_cast<std::size_t>(a.shape(0))};
}

ae::Measure measure_of(const std::string& s) {
    if (s == "perm")
        return ae::Measure::perm;
    if (s == "sample")
        return ae::Measure::sample;
    if (s == "app")
        return ae::Measure::app;
    if (s == "svd")
        return ae::Measure::svd;
    if (s == "spectral")
        return ae::Measure::spectral;
    throw std::invalid_argument("unknown measure '" + s + "' (perm, sample, app, svd, spectral)");
}

ae::Params params_of(int order, int delay, bool normalize, double r, double tolerance,
                     const std::string& metric, const std::string& method, long nperseg) {
    ae::Params p;
    p.tolerance = tolerance;
    p.order = order;
    p.delay = delay;
    p.normalize = normalize;
    p.r = r;
    if (metric == "chebyshev")
        p.metric = ae::Metric::chebyshev;
    else if (metric == "euclidean")
        p.metric = ae::Metric::euclidean;
    else
        throw std::invalid_argument("metric must be 'chebyshev' or 'euclidean', got '" + metric + "'");
    if (method == "fft")
        p.method = ae::Spectral::fft;
    else if (method == "welch")
        p.method = ae::Spectral::welch;
    else
        throw std::invalid_argument("method must be 'fft' or 'welch', got '" + method + "'");
    if (nperseg < 0)
        throw std::invalid_argument("nperseg must be >= 0 (0: scipy's default)");
    p.nperseg = static_cast<std::size_t>(nperseg);
    return p;
}

} // namespace

void register_entropy(py::module_& m) {
    m.def(
        "entropy_measure",
        [](const carray<double>& x, const std::string& kind, int order, int delay, bool normalize, double r,
           double tolerance, const std::string& metric, const std::string& method, long nperseg) {
            const auto k = measure_of(kind);
            const auto p = params_of(order, delay, normalize, r, tolerance, metric, method, nperseg);
            const auto xs = view(x);
            const py::gil_scoped_release nogil;
            return ae::measure(xs, k, p);
        },
        py::arg("x").noconvert(), py::arg("kind"), py::arg("order"), py::arg("delay"), py::arg("normalize"),
        py::arg("r"), py::arg("tolerance"), py::arg("metric"), py::arg("method"), py::arg("nperseg"));
    m.def(
        "entropy_groups",
        [](const carray<double>& x, const carray<std::int64_t>& offsets, const std::string& kind, int order,
           int delay, bool normalize, double r, double tolerance, const std::string& metric,
           const std::string& method, long nperseg) {
            const auto k = measure_of(kind);
            const auto p = params_of(order, delay, normalize, r, tolerance, metric, method, nperseg);
            const auto xs = view(x);
            const auto os = view(offsets);
            std::vector<double> out;
            {
                const py::gil_scoped_release nogil;
                out = ae::measure_groups(xs, os, k, p);
            }
            return to_numpy(std::move(out));
        },
        py::arg("x").noconvert(), py::arg("offsets").noconvert(), py::arg("kind"), py::arg("order"),
        py::arg("delay"), py::arg("normalize"), py::arg("r"), py::arg("tolerance"), py::arg("metric"),
        py::arg("method"), py::arg("nperseg"));
    m.def(
        "entropy_rolling",
        [](const carray<double>& x, const carray<double>& t, const carray<std::int64_t>& offsets, long count,
           double span, int order, int delay, bool normalize, const carray<double>& edges, bool fixed_point) {
            if (count < 0)
                throw std::invalid_argument("window must be >= 1");
            const auto xs = view(x);
            const auto ts = view(t);
            const auto os = view(offsets);
            const auto es = view(edges);
            ae::Window w{static_cast<std::size_t>(count), span};
            ae::Params p;
            p.order = order;
            p.delay = delay;
            p.normalize = normalize;
            p.fixed_point = fixed_point;
            std::vector<double> out;
            {
                const py::gil_scoped_release nogil;
                out = ae::rolling_groups(xs, ts, os, w, p, es);
            }
            return to_numpy(std::move(out));
        },
        py::arg("x").noconvert(), py::arg("t").noconvert(), py::arg("offsets").noconvert(), py::arg("count"),
        py::arg("span"), py::arg("order"), py::arg("delay"), py::arg("normalize"),
        py::arg("edges").noconvert(), py::arg("fixed_point") = false,
        "Rolling permutation entropy (edges empty) or Shannon entropy of binned x, per group; fixed_point: "
        "the integer entropy shared with the GPU kernel.");
    m.def(
        "entropy_fixed_table",
        [](long max_count) {
            if (max_count < 0)
                throw std::invalid_argument("max_count must be >= 0");
            return to_numpy(ae::fixed_entropy_table(static_cast<std::size_t>(max_count)));
        },
        py::arg("max_count"),
        "T(c) = round(c log2(c) 2^32) for c = 0..max_count (kernels/entropy_fixed.hpp).");
    m.def(
        "histogram_edges",
        [](double lo, double hi, long bins) {
            if (bins < 1)
                throw std::invalid_argument("bins must be >= 1");
            return to_numpy(ae::equal_edges(lo, hi, static_cast<std::size_t>(bins)));
        },
        py::arg("lo"), py::arg("hi"), py::arg("bins"));
    m.def(
        "histogram",
        [](const carray<double>& x, const carray<double>& edges) {
            const auto xs = view(x);
            const auto es = view(edges);
            std::size_t skipped = 0;
            std::vector<std::int64_t> counts;
            {
                const py::gil_scoped_release nogil;
                counts = ae::histogram(xs, es, &skipped);
            }
            return py::make_tuple(to_numpy(std::move(counts)), skipped);
        },
        py::arg("x").noconvert(), py::arg("edges").noconvert());
    m.def(
        "shannon_bits",
        [](const carray<std::int64_t>& counts) {
            if (counts.ndim() == 1) {
                const auto cs = view(counts);
                return py::object(py::float_(ae::shannon_bits(cs)));
            }
            if (counts.ndim() != 2)
                throw std::invalid_argument("counts must be 1-D or 2-D");
            const auto rows = static_cast<std::size_t>(counts.shape(0));
            const auto cols = static_cast<std::size_t>(counts.shape(1));
            std::vector<double> out(rows);
            {
                const py::gil_scoped_release nogil;
                for (std::size_t i = 0; i < rows; ++i)
                    out[i] = ae::shannon_bits({counts.data() + i * cols, cols});
            }
            return py::object(to_numpy(std::move(out)));
        },
        py::arg("counts").noconvert(), "Shannon entropy in bits of counts (1-D), or of each row (2-D).");
}
