"""Optional GPU backend (CuPy): fleet-wide hashing, entropy and fusion.

Nothing here imports CuPy until a GPU function runs, so ``import autolien``
never needs it. Install the extra ``autolien[gpu]`` (CuPy for CUDA 13,
``cupy-cuda13x``) on a machine with an NVIDIA driver. The kernels are CUDA
C++ files in this package, compiled at first use by NVRTC through CuPy's
``RawModule`` against the shared kernel headers (``include/autolien/kernels``,
the same arithmetic the C++ core and the FPGA flow compile).

Public entry points take ``backend="cpu" | "gpu" | "auto"``:
:meth:`autolien.ledger.MerkleLog.extend`, the rolling entropy functions and
:func:`autolien.entropy.by_vehicle`, and :func:`autolien.gnss.fuse`. ``"auto"``
picks the GPU when :func:`available` says yes and the call can run there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from .._core import AutolienError

Backend: TypeAlias = Literal["cpu", "gpu", "auto"]
BACKENDS = ("cpu", "gpu", "auto")

__all__ = [
    "BACKENDS",
    "KERNELS",
    "Backend",
    "GpuStatus",
    "GpuUnavailableError",
    "available",
    "compile_ptx",
    "include_dir",
    "kernel_path",
    "resolve_backend",
]

# The CUDA sources of this package, by name.
KERNELS = ("hash", "entropy", "fusion")
_HERE = Path(__file__).resolve().parent


class GpuUnavailableError(AutolienError, RuntimeError):
    """``backend="gpu"`` was asked for but no usable CUDA device (or CuPy) is there."""


@dataclass(frozen=True)
class GpuStatus:
    """Whether the GPU backend can run here; ``reason`` says why not (or which device)."""

    usable: bool
    reason: str

    def __bool__(self) -> bool:
        return self.usable


@functools.cache
def available() -> GpuStatus:
    """Checks once per process for CuPy, a driver and a device that runs a kernel."""
    try:
        import cupy  # noqa: PLC0415 - lazy: CuPy only when used
    except ImportError as err:
        return GpuStatus(False, f"CuPy is not installed (pip install 'autolien[gpu]'): {err}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 - CuPy raises its own runtime errors
        return GpuStatus(False, f"no CUDA driver or device: {err}")
    if count < 1:
        return GpuStatus(False, "the CUDA driver reports no device")
    try:
        probe = cupy.arange(4, dtype=cupy.int32)
        ok = int((probe * 2).sum()) == 12
        props = cupy.cuda.runtime.getDeviceProperties(0)
    except Exception as err:  # noqa: BLE001
        return GpuStatus(False, f"a CUDA device is there but a kernel did not run: {err}")
    if not ok:  # pragma: no cover - a broken device
        return GpuStatus(False, "a test kernel gave a wrong result")
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return GpuStatus(True, f"{name} (compute {props['major']}.{props['minor']})")


def resolve_backend(backend: str, *, supported: bool = True, why: str = "") -> str:
    """``"cpu"`` or ``"gpu"`` for a call asking for ``backend``.

    ``supported`` says whether this call (its arguments) can run on the GPU;
    ``why`` explains when not. ``"gpu"`` raises ValueError for an unsupported
    call and :class:`GpuUnavailableError` without a device; ``"auto"`` falls
    back to the CPU in both cases.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "cpu":
        return "cpu"
    if not supported:
        if backend == "gpu":
            raise ValueError(f"this call cannot run on the GPU backend: {why}")
        return "cpu"
    status = available()
    if status:
        return "gpu"
    if backend == "gpu":
        raise GpuUnavailableError(f"backend='gpu' needs a usable CUDA device: {status.reason}")
    return "cpu"


def kernel_path(name: str) -> Path:
    """The ``.cu`` file of kernel ``name`` (one of :data:`KERNELS`)."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; the kernels are {', '.join(KERNELS)}")
    return _HERE / f"{name}.cu"


def include_dir() -> Path:
    """The folder holding ``autolien/kernels/*.hpp``: installed with the package,
    or the source tree's ``cpp/include`` when running from a checkout."""
    installed = _HERE / "include"
    if (installed / "autolien" / "kernels").is_dir():
        return installed
    source = _HERE.parents[2] / "cpp" / "include"
    if (source / "autolien" / "kernels").is_dir():
        return source
    raise FileNotFoundError(
        f"the shared kernel headers are missing (looked in {installed} and {source})"
    )


def nvrtc_options(arch: str | None = None) -> tuple[str, ...]:
    """The NVRTC options every kernel is compiled with."""
    opts = ("-std=c++17", f"-I{include_dir()}")
    return (*opts, f"-arch={arch}") if arch else opts


def compile_ptx(name: str, arch: str = "compute_90") -> str:
    """Compiles kernel ``name`` to PTX with NVRTC, without a driver or device.

    Uses CuPy's NVRTC binding directly (``cupy.cuda.compiler`` would ask the
    driver for the architecture). Raises RuntimeError with NVRTC's log when
    the source does not compile.
    """
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415 - lazy: CuPy only when used

    src = kernel_path(name).read_text()
    prog = nvrtc.createProgram(src, f"{name}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(nvrtc_options(arch)))
        except nvrtc.NVRTCError as err:
            log = nvrtc.getProgramLog(prog)
            raise RuntimeError(f"NVRTC failed on {name}.cu: {err}\n{log}") from err
        ptx: Any = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else str(ptx)


@functools.cache
def module(name: str) -> Any:
    """The loaded ``cupy.RawModule`` of kernel ``name`` (compiled once per process)."""
    import cupy  # noqa: PLC0415 - lazy: CuPy only when used

    return cupy.RawModule(
        code=kernel_path(name).read_text(), options=nvrtc_options(), backend="nvrtc"
    )
