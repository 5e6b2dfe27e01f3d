// The columns the gnss bindings return, one X-macro list per result:
// X(name, element type, output), as in the telemetry headers. Each list
// declares the struct's members and generates the binding's dict and the
// table `_core.column_types()` reports, which tests hold equal to the
// TypedDicts in `_core.pyi`. `output` is "" throughout: the Python layer
// reshapes every one of these (variances to sigmas, rows to times).
#pragma once

#include <cstdint>
#include <vector>

namespace autolien::gnss {

// fuse_groups, one row per input fix (NaN where the filter had no state).
#define AUTOLIEN_GNSS_TRACK_COLUMNS(X)                                                                       \
    X(lat, double, "")                                                                                       \
    X(lon, double, "")                                                                                       \
    X(height_m, double, "") /* above the ellipsoid */                                                        \
    X(ve_mps, double, "")                                                                                    \
    X(vn_mps, double, "")                                                                                    \
    X(vu_mps, double, "")                                                                                    \
    X(var_e_m2, double, "")                                                                                  \
    X(var_n_m2, double, "")                                                                                  \
    X(var_u_m2, double, "")                                                                                  \
    X(nis, double, "")                                                                                       \
    X(inflation, double, "")                                                                                 \
    X(status, std::uint8_t, "") /* FixStatus */                                                              \
    X(segment, std::uint32_t, "")

// fuse_groups' parked episodes, in vehicle order.
#define AUTOLIEN_GNSS_PARKED_COLUMNS(X)                                                                      \
    X(group, std::int64_t, "")                                                                               \
    X(first, std::int64_t, "") /* first and last fix (rows of the input) */                                  \
    X(last, std::int64_t, "")                                                                                \
    X(lat, double, "")                                                                                       \
    X(lon, double, "")                                                                                       \
    X(height_m, double, "")                                                                                  \
    X(var_e_m2, double, "")                                                                                  \
    X(var_n_m2, double, "")                                                                                  \
    X(var_u_m2, double, "")                                                                                  \
    X(n_fixes, std::uint32_t, "")

// fuse_groups' moves while parked.
#define AUTOLIEN_GNSS_MOVE_COLUMNS(X)                                                                        \
    X(group, std::int64_t, "")                                                                               \
    X(episode, std::int64_t, "") /* row in the parked columns */                                             \
    X(first_fix, std::int64_t, "")                                                                           \
    X(last_fix, std::int64_t, "")                                                                            \
    X(distance_m, double, "")                                                                                \
    X(sigma_m, double, "")                                                                                   \
    X(kind, std::uint8_t, "") /* MoveKind */

// geofence_events, in vehicle order.
#define AUTOLIEN_GNSS_FENCE_EVENT_COLUMNS(X)                                                                 \
    X(row, std::int64_t, "")    /* the first fix clearly on the new side */                                  \
    X(before, std::int64_t, "") /* the last fix on the old side */                                           \
    X(fence, std::uint32_t, "")                                                                              \
    X(enter, std::uint8_t, "")

#define AUTOLIEN_GNSS_MEMBER(name, type, output) std::vector<type> name;
#define AUTOLIEN_GNSS_VISIT(name, type, output) f(#name, output, name);

// The struct of a column list: its vectors, and for_each_column calling
// f(name, output, column) for every column in the list's order.
#define AUTOLIEN_GNSS_COLUMNS_STRUCT(Name, LIST)                                                             \
    struct Name {                                                                                            \
        LIST(AUTOLIEN_GNSS_MEMBER)                                                                           \
        template <typename F> void for_each_column(F&& f) { LIST(AUTOLIEN_GNSS_VISIT) }                      \
    };

AUTOLIEN_GNSS_COLUMNS_STRUCT(TrackColumns, AUTOLIEN_GNSS_TRACK_COLUMNS)
AUTOLIEN_GNSS_COLUMNS_STRUCT(ParkedColumns, AUTOLIEN_GNSS_PARKED_COLUMNS)
AUTOLIEN_GNSS_COLUMNS_STRUCT(MoveColumns, AUTOLIEN_GNSS_MOVE_COLUMNS)
AUTOLIEN_GNSS_COLUMNS_STRUCT(FenceEventColumns, AUTOLIEN_GNSS_FENCE_EVENT_COLUMNS)

#undef AUTOLIEN_GNSS_COLUMNS_STRUCT
#undef AUTOLIEN_GNSS_VISIT
#undef AUTOLIEN_GNSS_MEMBER

} // namespace autolien::gnss
