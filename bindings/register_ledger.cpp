// Ledger bindings: convert arguments, release the GIL, call the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "autolien/ledger/hash.hpp"
#include "autolien/ledger/merkle.hpp"
#include "buffers.hpp"

namespace py = pybind11;
using autolien::bindings::BytesView;
using autolien::bindings::to_bytes;
using namespace autolien::ledger;

namespace {

// Reads a non-bool Python int. Returns nullopt for ints outside uint64 (the
// verifiers treat those as "not valid", not as errors); TypeError otherwise.
std::optional<std::uint64_t> as_u64(py::handle obj, const char* name) {
    if (!PyLong_Check(obj.ptr()) || PyBool_Check(obj.ptr()))
        throw py::type_error(std::string(name) + " must be int, got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow < 0 || (overflow == 0 && v < 0))
        return std::nullopt;
    if (overflow == 0)
        return static_cast<std::uint64_t>(v);
    const unsigned long long u = PyLong_AsUnsignedLongLong(obj.ptr());
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(u);
}

// A 32-byte hash argument; nullopt for a bytes-like of the wrong length.
std::optional<Hash32> as_hash(py::handle obj, const char* name) {
    const BytesView v = BytesView::require(obj, name);
    if (v.size() != 32)
        return std::nullopt;
    Hash32 h;
    std::memcpy(h.data(), v.data(), 32);
    return h;
}

// A proof: a list or tuple of bytes-like; nullopt if any element has the
// wrong length.
std::optional<std::vector<Hash32>> as_proof(py::handle obj, const char* name) {
    if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr()))
        throw py::type_error(std::string(name) + " must be a list or tuple of bytes, got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    std::vector<Hash32> out;
    out.reserve(seq.size());
    bool ok = true;
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const std::string elem = std::string(name) + "[" + std::to_string(i) + "]";
        auto h = as_hash(seq[i], elem.c_str());
        if (!h)
            ok = false; // keep scanning: a later element of the wrong type still raises
        else
            out.push_back(*h);
    }
    if (!ok)
        return std::nullopt;
    return out;
}

py::list proof_to_list(const std::vector<Hash32>& proof) {
    py::list out(proof.size());
    for (std::size_t i = 0; i < proof.size(); ++i)
        out[i] = to_bytes(proof[i]);
    return out;
}

std::uint64_t checked_u64(long long v, const char* name) {
    if (v < 0)
        throw std::invalid_argument(std::string(name) + " must be >= 0, got " + std::to_string(v));
    return static_cast<std::uint64_t>(v);
}

// Builds byte views for a batch of Python objects. Immutable bytes are
// referenced in place (the list keeps them alive); anything else is copied, as
// a bytearray could be resized by another thread once the GIL is released.
struct Batch {
    std::vector<ByteView> views;
    std::vector<py::object> keep;
    std::vector<std::string> copies;
};

Batch collect(const py::handle& items) {
    Batch batch;
    const py::list seq =
        PyList_Check(items.ptr()) ? py::reinterpret_borrow<py::list>(items) : py::list(py::iter(items));
    batch.keep.reserve(seq.size() + 1);
    batch.keep.push_back(seq);
    batch.views.reserve(seq.size());
    std::vector<std::pair<std::size_t, std::size_t>> copy_slots;
    for (std::size_t i = 0; i < seq.size(); ++i) {
        const py::handle obj = seq[i];
        if (PyBytes_Check(obj.ptr())) {
            batch.views.push_back({reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(obj.ptr())),
                                   static_cast<std::size_t>(PyBytes_GET_SIZE(obj.ptr()))});
            continue;
        }
        const std::string name = "items[" + std::to_string(i) + "]";
        const BytesView v = BytesView::require(obj, name.c_str());
        batch.copies.emplace_back(reinterpret_cast<const char*>(v.data()), v.size());
        copy_slots.emplace_back(i, batch.copies.size() - 1);
        batch.views.push_back({nullptr, 0});
    }
    // Pointers into `copies` are taken after it stops growing.
    for (const auto& [slot, c] : copy_slots)
        batch.views[slot] = {reinterpret_cast<const std::uint8_t*>(batch.copies[c].data()),
                             batch.copies[c].size()};
    return batch;
}

Sha256Backend parse_backend(const std::string& name) {
    if (name == "shani")
        return Sha256Backend::shani;
    if (name == "portable")
        return Sha256Backend::portable;
    throw std::invalid_argument("backend must be 'portable' or 'shani', got '" + name + "'");
}

} // namespace

void register_ledger(py::module_& m) {
    m.def(
        "sha256",
        [](const py::object& data) {
            const BytesView v = BytesView::require(data, "data");
            Hash32 h;
            {
                const py::gil_scoped_release nogil;
                autolien::ledger::sha256(v.data(), v.size(), h.data());
            }
            return to_bytes(h);
        },
        py::arg("data"));
    m.def(
        "keccak256",
        [](const py::object& data) {
            const BytesView v = BytesView::require(data, "data");
            Hash32 h;
            {
                const py::gil_scoped_release nogil;
                autolien::ledger::keccak256(v.data(), v.size(), h.data());
            }
            return to_bytes(h);
        },
        py::arg("data"));
    m.def("sha256_shani_supported", &sha256_shani_supported);
    m.def("sha256_backend", [] { return std::string(sha256_backend_name(sha256_backend())); });
    m.def(
        "sha256_set_backend", [](const std::string& name) { sha256_set_backend(parse_backend(name)); },
        py::arg("backend"));

    m.def(
        "rfc6962_leaf_hash",
        [](const py::object& data, const std::string& hash) {
            const HashKind kind = parse_hash_kind(hash);
            const BytesView v = BytesView::require(data, "data");
            return to_bytes(rfc6962_leaf_hash(kind, v.data(), v.size()));
        },
        py::arg("data"), py::arg("hash") = "sha256");
    m.def(
        "rfc6962_node_hash",
        [](const py::object& left, const py::object& right, const std::string& hash) {
            const HashKind kind = parse_hash_kind(hash);
            const BytesView l = BytesView::require(left, "left");
            const BytesView r = BytesView::require(right, "right");
            if (l.size() == 32 && r.size() == 32) {
                Hash32 a, b;
                std::memcpy(a.data(), l.data(), 32);
                std::memcpy(b.data(), r.data(), 32);
                return to_bytes(rfc6962_node_hash(kind, a, b));
            }
            // Inputs of other lengths (RFC 6962 hasher test vectors use them).
            std::string buf(1 + l.size() + r.size(), '\x01');
            std::memcpy(buf.data() + 1, l.data(), l.size());
            std::memcpy(buf.data() + 1 + l.size(), r.data(), r.size());
            Hash32 h;
            const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
            if (kind == HashKind::sha256)
                autolien::ledger::sha256(p, buf.size(), h.data());
            else
                autolien::ledger::keccak256(p, buf.size(), h.data());
            return to_bytes(h);
        },
        py::arg("left"), py::arg("right"), py::arg("hash") = "sha256");

    m.def(
        "verify_inclusion",
        [](const py::object& leaf_hash, const py::object& index, const py::object& size,
           const py::object& proof, const py::object& root, const std::string& hash) {
            const HashKind kind = parse_hash_kind(hash);
            // Convert everything first so that a wrong type anywhere raises.
            const auto leaf = as_hash(leaf_hash, "leaf_hash");
            const auto idx = as_u64(index, "index");
            const auto sz = as_u64(size, "size");
            const auto path = as_proof(proof, "proof");
            const auto rt = as_hash(root, "root");
            if (!leaf || !idx || !sz || !path || !rt)
                return false;
            const py::gil_scoped_release nogil;
            return autolien::ledger::verify_inclusion(kind, *leaf, *idx, *sz, *path, *rt);
        },
        py::arg("leaf_hash"), py::arg("index"), py::arg("size"), py::arg("proof"), py::arg("root"),
        py::kw_only(), py::arg("hash") = "sha256");
    m.def(
        "verify_consistency",
        [](const py::object& size1, const py::object& size2, const py::object& proof, const py::object& root1,
           const py::object& root2, const std::string& hash) {
            const HashKind kind = parse_hash_kind(hash);
            const auto s1 = as_u64(size1, "size1");
            const auto s2 = as_u64(size2, "size2");
            const auto path = as_proof(proof, "proof");
            // Roots of any length: the verifier decides (equal sizes compare bytes).
            const BytesView r1 = BytesView::require(root1, "root1");
            const BytesView r2 = BytesView::require(root2, "root2");
            if (!s1 || !s2 || !path)
                return false;
            const std::vector<std::uint8_t> b1(r1.data(), r1.data() + r1.size());
            const std::vector<std::uint8_t> b2(r2.data(), r2.data() + r2.size());
            const py::gil_scoped_release nogil;
            return autolien::ledger::verify_consistency(kind, *s1, *s2, *path, b1, b2);
        },
        py::arg("size1"), py::arg("size2"), py::arg("proof"), py::arg("root1"), py::arg("root2"),
        py::kw_only(), py::arg("hash") = "sha256");

    m.def(
        "oz_make_tree",
        [](const py::object& leaves) {
            const BytesView v = BytesView::require(leaves, "leaves");
            if (v.size() % 32 != 0)
                throw std::invalid_argument("leaves must be a concatenation of 32-byte hashes");
            std::vector<Hash32> in(v.size() / 32);
            std::memcpy(in.data(), v.data(), v.size());
            std::vector<Hash32> tree;
            {
                const py::gil_scoped_release nogil;
                tree = oz_make_tree(in);
            }
            return py::bytes(reinterpret_cast<const char*>(tree.data()), tree.size() * 32);
        },
        py::arg("leaves"), "Builds an OpenZeppelin heap tree; returns the nodes concatenated.");
    m.def(
        "oz_node_hash",
        [](const py::object& a, const py::object& b) {
            const auto x = as_hash(a, "a");
            const auto y = as_hash(b, "b");
            if (!x || !y)
                throw std::invalid_argument("a and b must be 32 bytes each");
            return to_bytes(oz_node_hash(*x, *y));
        },
        py::arg("a"), py::arg("b"));

    py::class_<MerkleLog>(m, "MerkleLog")
        .def(py::init([](const std::string& hash) { return new MerkleLog(parse_hash_kind(hash)); }),
             py::arg("hash") = "sha256")
        .def_property_readonly(
            "hash", [](const MerkleLog& self) { return std::string(hash_kind_name(self.hash_kind())); })
        .def_property_readonly("size", &MerkleLog::size)
        .def(
            "append",
            [](MerkleLog& self, const py::object& data) {
                const BytesView v = BytesView::require(data, "data");
                return self.append(v.data(), v.size());
            },
            py::arg("data"))
        .def(
            "append_leaf_hash",
            [](MerkleLog& self, const py::object& leaf) {
                const auto h = as_hash(leaf, "leaf_hash");
                if (!h)
                    throw std::invalid_argument("leaf_hash must be 32 bytes");
                return self.append_leaf_hash(*h);
            },
            py::arg("leaf_hash"))
        .def(
            "extend",
            [](MerkleLog& self, const py::object& items) {
                const Batch batch = collect(items);
                const py::gil_scoped_release nogil;
                return self.extend(batch.views);
            },
            py::arg("items"), "Appends an iterable of bytes-like records.")
        .def(
            "extend_rows",
            [](MerkleLog& self, const py::array_t<std::uint8_t, py::array::c_style>& rows) {
                if (rows.ndim() != 2)
                    throw std::invalid_argument("rows must be a 2-D uint8 array, one record per row");
                const auto n = static_cast<std::size_t>(rows.shape(0));
                const auto w = static_cast<std::size_t>(rows.shape(1));
                const std::uint8_t* base = rows.data();
                std::vector<ByteView> views(n);
                for (std::size_t i = 0; i < n; ++i)
                    views[i] = {base + i * w, w};
                const py::gil_scoped_release nogil;
                return self.extend(views);
            },
            py::arg("rows").noconvert(), "Appends the rows of a C-contiguous 2-D uint8 array.")
        .def(
            "extend_offsets",
            [](MerkleLog& self, const py::array_t<std::uint8_t, py::array::c_style>& data,
               const py::array_t<std::int64_t, py::array::c_style>& offsets) {
                if (data.ndim() != 1 || offsets.ndim() != 1)
                    throw std::invalid_argument("data and offsets must be 1-D");
                const auto n_off = static_cast<std::size_t>(offsets.shape(0));
                if (n_off == 0)
                    throw std::invalid_argument("offsets must hold at least one entry");
                const std::int64_t* off = offsets.data();
                const auto total = static_cast<std::int64_t>(data.shape(0));
                std::vector<ByteView> views(n_off - 1);
                for (std::size_t i = 0; i + 1 < n_off; ++i) {
                    if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > total)
                        throw std::invalid_argument(
                            "offsets must be non-decreasing and within data, bad at offsets[" +
                            std::to_string(i + 1) + "]");
                    views[i] = {data.data() + off[i], static_cast<std::size_t>(off[i + 1] - off[i])};
                }
                const py::gil_scoped_release nogil;
                return self.extend(views);
            },
            py::arg("data").noconvert(), py::arg("offsets").noconvert(),
            "Appends records given as Arrow-style data and int64 offsets.")
        .def(
            "extend_leaf_hashes",
            [](MerkleLog& self, const py::object& hashes) {
                const BytesView v = BytesView::require(hashes, "hashes");
                if (v.size() % 32 != 0)
                    throw std::invalid_argument("hashes must be a concatenation of 32-byte leaf hashes");
                std::vector<Hash32> in(v.size() / 32);
                std::memcpy(in.data(), v.data(), v.size());
                const py::gil_scoped_release nogil;
                return self.extend_leaf_hashes(in);
            },
            py::arg("hashes"))
        .def(
            "extend_with_levels",
            [](MerkleLog& self, const py::object& leaves, const py::sequence& levels) {
                // Views straight into the caller's buffers (pinned host memory
                // from the GPU backend): no copy before the log's own.
                const BytesView lv = BytesView::require(leaves, "leaves");
                if (lv.size() % 32 != 0)
                    throw std::invalid_argument("leaves must be a concatenation of 32-byte leaf hashes");
                std::vector<BytesView> held;
                held.reserve(levels.size());
                std::vector<std::span<const Hash32>> spans;
                spans.reserve(levels.size());
                for (std::size_t k = 0; k < levels.size(); ++k) {
                    held.push_back(BytesView::require(levels[k], "levels[k]"));
                    if (held.back().size() % 32 != 0)
                        throw std::invalid_argument("levels[" + std::to_string(k) +
                                                    "] must be a concatenation of 32-byte nodes");
                    spans.emplace_back(reinterpret_cast<const Hash32*>(held.back().data()),
                                       held.back().size() / 32);
                }
                const std::span<const Hash32> leaf_span(reinterpret_cast<const Hash32*>(lv.data()),
                                                        lv.size() / 32);
                const py::gil_scoped_release nogil;
                return self.extend_with_levels(leaf_span, spans);
            },
            py::arg("leaves"), py::arg("levels"))
        .def(
            "root",
            [](const MerkleLog& self, std::optional<long long> size) {
                Hash32 r;
                if (size) {
                    const std::uint64_t s = checked_u64(*size, "size");
                    const py::gil_scoped_release nogil;
                    r = self.root(s);
                } else {
                    r = self.root();
                }
                return to_bytes(r);
            },
            py::arg("size") = py::none())
        .def(
            "leaf_hash",
            [](const MerkleLog& self, long long index) {
                if (index < 0)
                    throw std::out_of_range("index must be >= 0, got " + std::to_string(index));
                return to_bytes(self.leaf_hash(static_cast<std::uint64_t>(index)));
            },
            py::arg("index"))
        .def(
            "inclusion_proof",
            [](const MerkleLog& self, long long index, long long size) {
                if (index < 0)
                    throw std::out_of_range("index must be >= 0, got " + std::to_string(index));
                const std::uint64_t s = checked_u64(size, "size");
                std::vector<Hash32> proof;
                {
                    const py::gil_scoped_release nogil;
                    proof = self.inclusion_proof(static_cast<std::uint64_t>(index), s);
                }
                return proof_to_list(proof);
            },
            py::arg("index"), py::arg("size"))
        .def(
            "inclusion_proofs",
            [](const MerkleLog& self, const py::array_t<std::int64_t, py::array::c_style>& indices,
               long long size) {
                if (indices.ndim() != 1)
                    throw std::invalid_argument("indices must be 1-D");
                const std::uint64_t s = checked_u64(size, "size");
                const auto n = static_cast<std::size_t>(indices.shape(0));
                std::vector<std::uint64_t> idx(n);
                for (std::size_t k = 0; k < n; ++k) {
                    if (indices.data()[k] < 0)
                        throw std::out_of_range("indices[" + std::to_string(k) + "] must be >= 0");
                    idx[k] = static_cast<std::uint64_t>(indices.data()[k]);
                }
                std::vector<Hash32> hashes;
                std::vector<std::uint64_t> offsets;
                {
                    const py::gil_scoped_release nogil;
                    self.inclusion_proofs(idx, s, hashes, offsets);
                }
                py::array_t<std::uint8_t> flat({static_cast<py::ssize_t>(hashes.size()), py::ssize_t{32}});
                if (!hashes.empty())
                    std::memcpy(flat.mutable_data(), hashes.data(), hashes.size() * 32);
                py::array_t<std::int64_t> offs(static_cast<py::ssize_t>(offsets.size()));
                std::memcpy(offs.mutable_data(), offsets.data(), offsets.size() * sizeof(std::int64_t));
                return py::make_tuple(flat, offs);
            },
            py::arg("indices").noconvert(), py::arg("size"),
            "Many proofs: (hashes as an (m, 32) uint8 array, int64 offsets of each proof).")
        .def(
            "consistency_proof",
            [](const MerkleLog& self, long long size1, long long size2) {
                const std::uint64_t s1 = checked_u64(size1, "size1");
                const std::uint64_t s2 = checked_u64(size2, "size2");
                std::vector<Hash32> proof;
                {
                    const py::gil_scoped_release nogil;
                    proof = self.consistency_proof(s1, s2);
                }
                return proof_to_list(proof);
            },
            py::arg("size1"), py::arg("size2"));
}
