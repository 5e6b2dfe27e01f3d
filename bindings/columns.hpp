// Hands C++ column vectors to numpy without copying: the vector moves into a
// capsule that the array owns.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace autolien::bindings {

namespace py = pybind11;

template <typename T> py::array_t<T> to_numpy(std::vector<T>&& v) {
    auto* owned = new std::vector<T>(std::move(v));
    py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>({static_cast<py::ssize_t>(owned->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                          owned->data(), free_when_done);
}

// Strings or byte blobs as Arrow-style (data, int64 offsets).
template <typename Range, typename Get> py::tuple to_binary_column(const Range& items, Get get) {
    std::vector<std::uint8_t> data;
    std::vector<std::int64_t> offsets{0};
    offsets.reserve(items.size() + 1);
    for (const auto& item : items) {
        const auto& bytes = get(item);
        data.insert(data.end(), bytes.begin(), bytes.end());
        offsets.push_back(static_cast<std::int64_t>(data.size()));
    }
    return py::make_tuple(to_numpy(std::move(data)), to_numpy(std::move(offsets)));
}

} // namespace autolien::bindings
