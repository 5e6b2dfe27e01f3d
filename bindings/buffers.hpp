// Helpers that turn Python bytes-like objects into spans. They run with the
// GIL held; callers copy or keep references before releasing it.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "autolien/ledger/hash.hpp"

namespace autolien::bindings {

namespace py = pybind11;

// A read-only view of a bytes-like object. Holds the buffer export (if any)
// so the memory stays valid while the view lives.
class BytesView {
  public:
    // Returns nullopt when `obj` is not bytes-like (no buffer protocol, or a
    // buffer that is not C-contiguous bytes).
    static std::optional<BytesView> from(py::handle obj) {
        if (PyBytes_Check(obj.ptr())) {
            BytesView v;
            v.data_ = reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(obj.ptr()));
            v.size_ = static_cast<std::size_t>(PyBytes_GET_SIZE(obj.ptr()));
            return v;
        }
        if (!PyObject_CheckBuffer(obj.ptr()))
            return std::nullopt;
        BytesView v;
        v.buf_.emplace();
        if (PyObject_GetBuffer(obj.ptr(), &*v.buf_, PyBUF_C_CONTIGUOUS) != 0) {
            PyErr_Clear();
            v.buf_.reset();
            return std::nullopt;
        }
        v.data_ = static_cast<const std::uint8_t*>(v.buf_->buf);
        v.size_ = static_cast<std::size_t>(v.buf_->len);
        return v;
    }

    // Like from(), but raises TypeError naming the argument.
    static BytesView require(py::handle obj, const char* name) {
        auto v = from(obj);
        if (!v)
            throw py::type_error(std::string(name) + " must be bytes-like, got " +
                                 std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
        return std::move(*v);
    }

    BytesView() = default;
    BytesView(const BytesView&) = delete;
    BytesView& operator=(const BytesView&) = delete;
    BytesView(BytesView&& o) noexcept : data_(o.data_), size_(o.size_) {
        if (o.buf_) {
            buf_.emplace(*o.buf_);
            o.buf_.reset();
        }
    }
    BytesView& operator=(BytesView&&) = delete;
    ~BytesView() {
        if (buf_)
            PyBuffer_Release(&*buf_);
    }

    [[nodiscard]] const std::uint8_t* data() const { return data_; }
    [[nodiscard]] std::size_t size() const { return size_; }

  private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::optional<Py_buffer> buf_;
};

inline py::bytes to_bytes(const ledger::Hash32& h) {
    return py::bytes(reinterpret_cast<const char*>(h.data()), h.size());
}

} // namespace autolien::bindings
