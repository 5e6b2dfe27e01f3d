"""Synthesizability lint for the HLS kernels (fpga/include, fpga/top).

    python fpga/lint/hls_lint.py FILE... [--shared HEADER]... [-- COMPILER FLAGS]
    python fpga/lint/hls_lint.py --self-test fpga/lint/samples

Rules (each finding prints as ``file:line: rule: message``; exit status 1
when there is any):

- ``recursion``: a cycle in the call graph that g++ writes with
  -fcallgraph-info (compiled at -O0, so nothing is inlined away), through a
  function defined in a linted file.
- ``vla``: a variable-length array (g++ -Werror=vla).
- ``dynamic-memory``: new, delete, malloc, calloc, realloc or free.
- ``std-container``: a standard container or string (std::vector ...), or
  the header that declares one.
- ``loop-bound``: a ``for`` whose bound is not a constant (a literal, an
  ALL_CAPS template parameter or a kConstant, with + - * /) and a ``while``,
  unless the loop body opens with ``#pragma HLS LOOP_TRIPCOUNT``.
- ``pragma``: a ``#pragma HLS`` keyword or option that Vitis HLS does not
  know (g++ ignores unknown pragmas silently, so a typo costs the pipeline),
  and pragmas that look like a misspelled ``HLS``.

The self-test runs every sample in a folder: a sample's first line says
``// expect: RULE[, RULE]`` (or ``none``) and the lint must report exactly
those rules.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RULES = ("recursion", "vla", "dynamic-memory", "std-container", "loop-bound", "pragma")

# Vitis HLS 2023/2024 pragma keywords and the option names each takes
# (values such as "complete" or "true" are allowed as bare words too).
PRAGMAS: dict[str, set[str]] = {
    "AGGREGATE": {"variable", "compact", "bit", "byte", "none", "auto"},
    "ALIAS": {"ports", "distance", "offset"},
    "ALLOCATION": {"instances", "limit", "function", "operation"},
    "ARRAY_PARTITION": {"variable", "type", "factor", "dim", "complete", "block", "cyclic", "off"},
    "ARRAY_RESHAPE": {
        "variable",
        "type",
        "factor",
        "dim",
        "complete",
        "block",
        "cyclic",
        "object",
        "off",
    },
    "BIND_OP": {"variable", "op", "impl", "latency"},
    "BIND_STORAGE": {"variable", "type", "impl", "latency"},
    "CACHE": {"port", "lines", "depth", "burst", "write_mode", "ways", "users"},
    "DATAFLOW": {"disable_start_propagation"},
    "DEPENDENCE": {
        "variable",
        "class",
        "type",
        "direction",
        "distance",
        "dependent",
        "array",
        "pointer",
        "inter",
        "intra",
        "raw",
        "war",
        "waw",
        "true",
        "false",
    },
    "DISAGGREGATE": {"variable"},
    "EXPRESSION_BALANCE": {"off"},
    "FUNCTION_INSTANTIATE": {"variable"},
    "INLINE": {"recursive", "off"},
    "INTERFACE": {
        "mode",
        "port",
        "bundle",
        "offset",
        "depth",
        "register",
        "register_mode",
        "name",
        "latency",
        "max_widen_bitwidth",
        "num_read_outstanding",
        "num_write_outstanding",
        "clock",
        "max_read_burst_length",
        "max_write_burst_length",
        "storage_impl",
        "storage_type",
        "channel",
        "interrupt",
        "off",
        "slave",
        "direct",
        "both",
        "forward",
        "reverse",
        "axis",
        "m_axi",
        "s_axilite",
        "ap_none",
        "ap_vld",
        "ap_ack",
        "ap_hs",
        "ap_ovld",
        "ap_fifo",
        "ap_memory",
        "bram",
        "ap_ctrl_none",
        "ap_ctrl_hs",
        "ap_ctrl_chain",
        "ap_stable",
    },
    "LATENCY": {"min", "max"},
    "LOOP_FLATTEN": {"off"},
    "LOOP_MERGE": {"force"},
    "LOOP_TRIPCOUNT": {"min", "max", "avg"},
    "OCCURRENCE": {"cycle", "off"},
    "PERFORMANCE": {"target_ti", "target_tl", "unit", "sample", "sec"},
    "PIPELINE": {"ii", "off", "rewind", "style", "stp", "flp", "frp"},
    "PROTOCOL": {"mode", "fixed", "floating"},
    "RESET": {"variable", "off"},
    "SHARED": {"variable"},
    "STABLE": {"variable"},
    "STABLE_CONTENT": {"variable"},
    "STREAM": {"variable", "depth", "type", "off", "fifo", "pipo", "shared", "unsync"},
    "TOP": {"name"},
    "UNROLL": {"factor", "off", "skip_exit_check"},
}
OTHER_PRAGMAS = {"once", "gcc", "clang", "unroll", "message", "warning", "push_macro", "pop_macro"}
CONTAINERS = ("vector", "list", "forward_list", "deque", "map", "multimap", "set", "multiset",
              "unordered_map", "unordered_set", "unordered_multimap", "unordered_multiset", "string",
              "queue", "priority_queue", "stack", "basic_string", "valarray", "function")  # fmt: skip


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


def strip_comments(src: str) -> str:
    """Comments and string literals blanked (newlines kept, so lines match)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def text_rules(path: str, src: str, loops: bool = True) -> list[Finding]:
    code = strip_comments(src)
    found: list[Finding] = []
    # `operator new` declarations are not in kernels either.
    found.extend(
        Finding(path, line_of(code, m.start()), "dynamic-memory", f"'{m.group(0).strip('( ')}'")
        for m in re.finditer(r"\b(new|delete)\b(?!\s*\()|\b(malloc|calloc|realloc|free)\s*\(", code)
    )
    cont = "|".join(CONTAINERS)
    for m in re.finditer(rf"\bstd\s*::\s*({cont})\b|#\s*include\s*<({cont})>", code):
        what = m.group(1) or m.group(2)
        found.append(Finding(path, line_of(code, m.start()), "std-container", f"std::{what}"))
    found += pragma_rules(path, code)
    if loops:
        found += loop_rules(path, code)
    return found


def pragma_rules(path: str, code: str) -> list[Finding]:
    found = []
    for m in re.finditer(r"^[ \t]*#[ \t]*pragma[ \t]+(\w+)(.*)$", code, re.MULTILINE):
        ns, rest = m.group(1), m.group(2)
        ln = line_of(code, m.start())
        if ns.upper() != "HLS":
            if ns.lower() not in OTHER_PRAGMAS:
                found.append(
                    Finding(path, ln, "pragma", f"unknown pragma '{ns}' (a misspelled HLS?)")
                )
            continue
        words = re.findall(r"[A-Za-z_]\w*", rest)
        if not words:
            found.append(Finding(path, ln, "pragma", "#pragma HLS without a keyword"))
            continue
        key = words[0].upper()
        if key not in PRAGMAS:
            found.append(Finding(path, ln, "pragma", f"unknown HLS pragma keyword '{words[0]}'"))
            continue
        # Options: `name = value` pairs and bare words; only the names (and
        # bare words) are checked, values may be any identifier.
        opts = rest[rest.upper().find(key) + len(key) :]
        names = [a.lower() for a in re.findall(r"([A-Za-z_]\w*)\s*=", opts)]
        bare = re.sub(r"[A-Za-z_]\w*\s*=\s*[\w.\-]+", " ", opts)
        names += [b.lower() for b in re.findall(r"[A-Za-z_]\w*", bare)]
        found.extend(
            Finding(path, ln, "pragma", f"'{name}' is not an option of HLS {key}")
            for name in names
            if name not in PRAGMAS[key]
        )
    return found


CONST_BOUND = re.compile(
    r"^[\s\d()+\-*/]*(?:(?:\b[A-Z][A-Z0-9_]*\b|\bk[A-Z]\w*\b|\b\d+[uUlL]*\b)[\s()+\-*/]*)*$"
)


def _body(code: str, pos: int) -> tuple[int, int]:
    """The span of the statement after a loop header ending at pos."""
    i = pos
    while i < len(code) and code[i].isspace():
        i += 1
    if i < len(code) and code[i] == "{":
        depth = 0
        for j in range(i, len(code)):
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            if depth == 0:
                return i, j
        return i, len(code)
    j = code.find(";", i)
    return i, len(code) if j < 0 else j


def _header(code: str, start: int) -> tuple[str, int] | None:
    """The text inside the parentheses after `for`/`while` at start, and the
    position after the closing one."""
    i = code.find("(", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(code)):
        depth += {"(": 1, ")": -1}.get(code[j], 0)
        if depth == 0:
            return code[i + 1 : j], j + 1
    return None


def loop_rules(path: str, code: str) -> list[Finding]:
    found = []
    for m in re.finditer(r"\b(for|while)\s*\(", code):
        h = _header(code, m.start())
        if h is None:
            continue
        text, end = h
        # `do { } while (...);`: the body precedes it.
        before = code[: m.start()].rstrip()
        if m.group(1) == "while" and before.endswith("}"):
            depth, k = 0, len(before) - 1
            while k >= 0:
                depth += {"}": 1, "{": -1}.get(before[k], 0)
                if depth == 0:
                    break
                k -= 1
            body = code[k + 1 : len(before)]
        else:
            b0, b1 = _body(code, end)
            body = code[b0 + 1 : b1] if code[b0 : b0 + 1] == "{" else ""
        head = re.split(r"\b(?:for|while)\s*\(", body, maxsplit=1)[0]
        if re.search(r"#\s*pragma\s+HLS\s+LOOP_TRIPCOUNT", head, re.IGNORECASE):
            continue
        if m.group(1) == "for":
            parts = text.split(";")
            cond = parts[1] if len(parts) == 3 else ""
            cm = re.match(r"^\s*\w+\s*(<=|<|>=|>|!=)\s*(.+?)\s*$", cond)
            if cm and CONST_BOUND.match(cm.group(2)):
                continue
            why = f"bound '{cond.strip()}' is not a constant"
        else:
            why = "a while loop"
        found.append(Finding(path, line_of(code, m.start()), "loop-bound",
                             f"{why} and the loop has no LOOP_TRIPCOUNT"))  # fmt: skip
    return found


def compile_rules(files: list[str], flags: list[str], roots: list[str]) -> list[Finding]:
    """Recursion from g++'s call graph and VLAs from its diagnostics, on one
    translation unit that includes every file."""
    found: list[Finding] = []
    cxx = os.environ.get("CXX", "g++")
    with tempfile.TemporaryDirectory() as tmp:
        tu = Path(tmp) / "lint_all.cpp"
        tu.write_text("".join(f'#include "{os.path.abspath(f)}"\n' for f in files))
        cmd = [cxx, "-std=c++17", "-O0", "-c", "-Wvla", "-Wno-unknown-pragmas", "-fcallgraph-info",
               "-fdiagnostics-plain-output", *flags, str(tu), "-o", str(Path(tmp) / "lint_all.o")]  # fmt: skip
        r = subprocess.run(cmd, check=False, capture_output=True, text=True)
        vla = re.finditer(
            r"^(.+?):(\d+):\d+: (?:warning|error): (.*variable length array.*)$",
            r.stderr,
            re.MULTILINE,
        )
        found.extend(
            Finding(os.path.relpath(m.group(1)), int(m.group(2)), "vla", m.group(3)) for m in vla
        )
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise SystemExit(f"the lint's compile failed: {' '.join(cmd)}")
        ci = next(Path(tmp).glob("*.ci"), None)
        if ci is None:
            raise SystemExit("g++ wrote no call graph (-fcallgraph-info needs GCC 10 or later)")
        graph = ci.read_text()
    where: dict[str, tuple[str, int, str]] = {}
    for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"\\]*)\\n([^":]+):(\d+)', graph):
        where[m.group(1)] = (m.group(3), int(m.group(4)), m.group(2))
    edges: dict[str, set[str]] = {}
    for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', graph):
        edges.setdefault(m.group(1), set()).add(m.group(2))
    abs_roots = [os.path.abspath(r) for r in roots]

    def ours(node: str) -> bool:
        f = where.get(node)
        return f is not None and any(os.path.abspath(f[0]).startswith(r) for r in abs_roots)

    for cycle in cycles(edges):
        mine = [n for n in cycle if ours(n)]
        if mine:
            f, ln, _ = where[mine[0]]
            names = " -> ".join(where.get(n, ("", 0, n))[2] for n in [*cycle, cycle[0]])
            found.append(Finding(os.path.relpath(f), ln, "recursion", names))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    nodes = set(edges) | {t for ts in edges.values() for t in ts}
    for root in sorted(nodes):
        if root in index:
            continue
        # Iterative Tarjan: the lint itself must not recurse on deep graphs.
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in edges.get(v, ()):
                    out.append(sorted(comp))
    return out


def lint(files: list[str], flags: list[str], roots: Iterable[str] | None = None,
         shared: Iterable[str] = ()) -> list[Finding]:  # fmt: skip
    """``shared`` files (the kernels shared with the CPU core and CUDA) get
    every rule but loop-bound: their host-only helpers (e.g. compressing n
    blocks) loop over a count that the FPGA kernels never call them with."""
    found: list[Finding] = []
    for f in files:
        found += text_rules(os.path.relpath(f), Path(f).read_text())
    for f in shared:
        found += text_rules(os.path.relpath(f), Path(f).read_text(), loops=False)
    cpp = [f for f in files if f.endswith(".cpp")] or files
    dirs = set(roots or {os.path.dirname(os.path.abspath(f)) for f in files})
    dirs |= {os.path.dirname(os.path.abspath(f)) for f in shared}
    found += compile_rules(cpp, flags, sorted(dirs))
    return sorted(set(found))


def self_test(folder: str, flags: list[str]) -> int:
    bad = 0
    samples = sorted(Path(folder).glob("*.cpp"))
    for s in samples:
        first = s.read_text().splitlines()[0]
        m = re.match(r"//\s*expect:\s*(.*)$", first)
        if not m:
            print(f"{s}: no '// expect:' line")
            bad += 1
            continue
        want = set() if m.group(1).strip() == "none" else {w.strip() for w in m.group(1).split(",")}
        got = {f.rule for f in lint([str(s)], flags, [str(s.parent)])}
        ok = got == want
        bad += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {s.name}: expected {sorted(want) or 'none'}, got {sorted(got) or 'none'}"
        )
    if not samples:
        print(f"no samples in {folder}")
        return 1
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    flags: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, flags = argv[:i], argv[i + 1 :]
    if argv[:1] == ["--self-test"]:
        return self_test(argv[1], flags)
    shared: list[str] = []
    while "--shared" in argv:
        i = argv.index("--shared")
        shared.append(argv[i + 1])
        del argv[i : i + 2]
    found = lint(argv, flags, shared=shared)
    for f in found:
        print(f)
    print(f"hls-lint: {len(argv)} files, {len(found)} findings")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
