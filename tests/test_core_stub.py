"""The hand-written _core.pyi must list exactly what the compiled module has."""

from __future__ import annotations

import ast
import inspect
from importlib import resources

import autolien
from autolien import _core


def _stub_tree() -> ast.Module:
    text = resources.files("autolien").joinpath("_core.pyi").read_text(encoding="utf-8")
    return ast.parse(text)


def _public(names: list[str]) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def test_stub_ships_with_the_package() -> None:
    assert resources.files("autolien").joinpath("py.typed").is_file()
    assert resources.files("autolien").joinpath("_core.pyi").is_file()


def test_stub_top_level_names_match_module() -> None:
    tree = _stub_tree()
    stub_names = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    assert _public(dir(_core)) - {"annotations"} == _public(list(stub_names))


def test_stub_class_members_match_module() -> None:
    tree = _stub_tree()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_core, node.name)
        if issubclass(cls, BaseException):
            continue
        stub_members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        real = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}
        assert _public(list(stub_members)) == real, node.name


def test_public_dir_is_all() -> None:
    assert sorted(dir(autolien)) == sorted(autolien.__all__)
