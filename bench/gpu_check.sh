#!/usr/bin/env bash
# The GPU backend's device check, one prepared run (bench/README.md, "GPU"):
#   1. installs the wheels the machine lacks from a carried folder (.whl/);
#   2. builds and installs the package (pip install --no-build-isolation --no-deps .);
#   3. runs the GPU tests (tests/test_gpu.py on the device, test_gpu_kernels.py);
#   4. measures each kernel at fleet scale against the C++ core on all CPU
#      cores, in the same run (bench/bench_gpu.py), into figures.json;
#   5. with --ncu, profiles one leaf-hash launch with ncu when it is there.
# Usage: bench/gpu_check.sh [--dry-run] [--out DIR] [--scale F] [--hash-scale F] [--ncu]
#   --scale F       fraction of the entropy and fusion fleets (1e5 vehicles)
#   --hash-scale F  fraction of the hashing sizes (1e7 / 2e6 records; default F)
#   --dry-run  every step that needs no device: the build, the tests (the
#              device ones skip, saying why), the CPU side of the bench at a
#              small scale; no ncu.
# Writes DIR/{summary.json,figures.json,build.log,tests.log,bench.log,ncu_hash.txt,nvidia_smi.txt}.
set -u
DRY=0
OUTDIR="${OUT:-gpu_check_out}"
SCALE=1.0
HSCALE=""
NCU=0
while [ $# -gt 0 ]; do
    case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR="$2"; shift ;;
    --scale) SCALE="$2"; shift ;;
    --hash-scale) HSCALE="$2"; shift ;;
    --ncu) NCU=1 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
    if [ "$DRY" = 1 ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONUNBUFFERED=1
START=$(date +%s)
STEPS=""
step() { # name, status, seconds
    STEPS="$STEPS{\"step\": \"$1\", \"rc\": $2, \"seconds\": $3},"
    printf '%s rc=%s %ss (elapsed %ss)\n' "$1" "$2" "$3" "$(( $(date +%s) - START ))"
}
run_step() { # name, timeout, log, command...
    local name="$1" limit="$2" log="$3"
    shift 3
    local t0 rc
    t0=$(date +%s)
    timeout "$limit" "$@" >"$log" 2>&1
    rc=$?
    step "$name" "$rc" "$(( $(date +%s) - t0 ))"
    tail -n 25 "$log"
    return $rc
}

# 1. Wheels the machine lacks (carried as .whl/, see bench/README.md), in the
#    checkout or next to it (a copy of the tree in a subfolder of the carrier).
for WHL in .whl ../.whl; do
    if ls "$WHL"/*.whl >/dev/null 2>&1; then
        run_step wheels 120 "$OUTDIR/wheels.log" "$PY" -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
        break
    fi
done
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUTDIR/nvidia_smi.txt" 2>&1

# 2. Build and install.
run_step build 300 "$OUTDIR/build.log" "$PY" -m pip install --no-build-isolation --no-deps -v . \
    || { echo "build failed"; }

# 3. Tests (device ones skip without a GPU).
run_step tests 180 "$OUTDIR/tests.log" "$PY" -m pytest -q -rs -p no:cacheprovider \
    tests/test_gpu.py tests/test_gpu_kernels.py

# 4. Fleet-scale figures.
BENCH_ARGS=(--out "$OUTDIR/figures.json" --scale "$SCALE")
[ -n "$HSCALE" ] && BENCH_ARGS+=(--hash-scale "$HSCALE")
[ "$DRY" = 1 ] && BENCH_ARGS+=(--dry-run)
run_step bench 300 "$OUTDIR/bench.log" "$PY" bench/bench_gpu.py "${BENCH_ARGS[@]}"

# 5. A profile of the hash kernel, when there is time and ncu.
if [ "$NCU" = 1 ] && [ "$DRY" = 0 ] && command -v ncu >/dev/null && [ $(( $(date +%s) - START )) -lt 330 ]; then
    run_step ncu 75 "$OUTDIR/ncu_hash.txt" ncu --clock-control none -k regex:leaf_hashes -c 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section Occupancy --section LaunchStats "$PY" bench/bench_gpu.py --ncu-hash 1000000
fi

printf '{"dry_run": %s, "elapsed_s": %s, "steps": [%s]}\n' "$DRY" "$(( $(date +%s) - START ))" \
    "${STEPS%,}" >"$OUTDIR/summary.json"
cat "$OUTDIR/summary.json"
