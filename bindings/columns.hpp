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

// Every decoder's rejects as columns: offset, reason code, message, raw bytes.
template <typename Rejects> py::dict rejects_dict(const Rejects& rs) {
    std::vector<std::uint64_t> offsets;
    std::vector<std::uint8_t> reasons;
    py::list messages;
    for (const auto& x : rs) {
        offsets.push_back(x.offset);
        reasons.push_back(static_cast<std::uint8_t>(x.reason));
        messages.append(py::str(x.message));
    }
    py::dict rej;
    rej["offset"] = to_numpy(std::move(offsets));
    rej["reason"] = to_numpy(std::move(reasons));
    rej["message"] = messages;
    rej["raw"] =
        to_binary_column(rs, [](const auto& x) -> const std::vector<std::uint8_t>& { return x.raw; });
    return rej;
}

} // namespace autolien::bindings
