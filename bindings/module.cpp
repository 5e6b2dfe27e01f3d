// autolien._core: one register_<area> per area, plus the shared exception
// and thread-pool controls.
#include <pybind11/pybind11.h>

#include "autolien/common/error.hpp"
#include "autolien/common/thread_pool.hpp"

namespace py = pybind11;

void register_ledger(py::module_& m);
void register_telemetry(py::module_& m);
void register_gnss(py::module_& m);
void register_gnss_fusion(py::module_& m);
void register_gnss_geofence(py::module_& m);
void register_entropy(py::module_& m);
void register_valuation(py::module_& m);
void register_monitor(py::module_& m);

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "autolien compiled core (private: use the autolien package)";

    py::register_exception<autolien::Error>(m, "AutolienError", PyExc_Exception);

    m.def("get_num_threads", &autolien::get_num_threads,
          "Threads the core's parallel kernels use (the caller included).");
    m.def(
        "set_num_threads",
        [](long n) {
            if (n < 0)
                throw std::invalid_argument("n must be >= 0 (0 restores the default)");
            autolien::set_num_threads(static_cast<std::size_t>(n));
        },
        py::arg("n"), "Sets the thread count of the core's pool; 0 restores the default.");

    register_ledger(m);
    register_telemetry(m);
    register_gnss(m);
    register_gnss_fusion(m);
    register_gnss_geofence(m);
    register_entropy(m);
    register_valuation(m);
    register_monitor(m);
}
