"""Dependencies point one way between the stage folders: every import (module level or inside a function) of
every file is parsed and checked against the allowed direction, so a lazy import cannot slip past either."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# stage folder -> stages it may import (besides itself and the shared leaves)
ALLOWED = {
    "runtime": set(),
    "engines": {"runtime"},
    "export": {"engines", "runtime"},
    "jetson": {"engines", "runtime"},
}
# Modules of the package itself that every stage may use: they import nothing of the project.
SHARED = {"nvila_edge", "nvila_edge.errors", "nvila_edge.atomic"}


def project_imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of ``nvila_edge`` in the file; relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return sorted((line, name) for line, name in found if name == "nvila_edge" or name.startswith("nvila_edge."))


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def package_of(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("nvila_edge",) + relative[:-1])


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_stage_imports_point_one_way(stage):
    files = sorted((ROOT / stage).rglob("*.py"))
    assert files, f"no Python files under {stage}/"
    wrong = []
    for path in files:
        for line, module in project_imports(path, package_of(path)):
            target = stage_of(module)
            if module in SHARED or target == stage or target in ALLOWED[stage]:
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == [], f"{stage}/ may import only {sorted(ALLOWED[stage]) or 'itself'}:\n" + "\n".join(wrong)


def test_shared_modules_import_nothing_of_the_project():
    for module in SHARED - {"nvila_edge"}:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert project_imports(path, "nvila_edge") == [], path


def test_the_check_sees_a_wrong_import(tmp_path):
    """The parser resolves relative and function-level imports, so the check above can fail."""
    sample = tmp_path / "model_folder.py"
    sample.write_text("def f():\n    from nvila_edge.export.exporter import export_checkpoint\n"
                      "from ..engines import build\n")
    found = project_imports(sample, "nvila_edge.jetson.demo")
    assert found == [(2, "nvila_edge.export.exporter"), (3, "nvila_edge.jetson.engines")]
    assert [stage_of(m) for _, m in found] == ["export", "jetson"]
