"""``torch_free.txt`` lists exactly the test files that run without the export extra (torch, onnx, Model
Optimizer, the PyTorch model), so CI's Python 3.10 and 3.12 runs cover every such file and no other."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# What only the export extra installs.
EXPORT_SIDE = ("torch", "transformers", "onnx", "onnxscript", "modelopt", "nvila_edge.export")


def is_export_side(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in EXPORT_SIDE)


def runs_the_export_command(function: ast.FunctionDef) -> bool:
    """A fixture that runs ``python -m nvila_edge export`` in a subprocess needs the export extra as well."""
    lists = (n for n in ast.walk(function) if isinstance(n, ast.List))
    return any({"nvila_edge", "export"} <= {e.value for e in n.elts if isinstance(e, ast.Constant)} for n in lists)


def export_fixtures() -> set[str]:
    """conftest.py's fixtures that import the export side (the random checkpoints are written with torch), or
    take a fixture that does."""
    tree = ast.parse((TESTS / "conftest.py").read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    found = {node.name for node in functions
             if any(isinstance(n, ast.ImportFrom) and is_export_side(n.module or "") for n in ast.walk(node))
             or runs_the_export_command(node)}
    while True:
        more = {node.name for node in functions if any(arg.arg in found for arg in node.args.args)} - found
        if not more:
            return found
        found |= more


def listed() -> set[str]:
    lines = (TESTS / "torch_free.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def export_side_uses(path: Path) -> list[str]:
    """Imports of the export side (anywhere in the file) and the export-side fixtures the file's tests take."""
    fixtures, uses = export_fixtures(), []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.arg) and node.arg in fixtures:  # a test's parameter
            names = [f"fixture {node.arg}"]
        elif isinstance(node, ast.Constant) and node.value in fixtures:  # getfixturevalue / parametrize
            names = [f"fixture {node.value}"]
        else:
            continue
        uses += [n for n in names if n.startswith("fixture ") or is_export_side(n)]
    return uses


def test_the_list_names_existing_files():
    assert listed() <= {path.name for path in TESTS.glob("test_*.py")}


def test_a_test_file_is_listed_exactly_when_it_needs_no_export_side():
    wrong = []
    for path in sorted(TESTS.glob("test_*.py")):
        uses = export_side_uses(path)
        if (path.name in listed()) == bool(uses):
            wrong.append(f"{path.name}: {'listed but uses ' + ', '.join(sorted(set(uses))) if uses else 'not listed'}")
    assert wrong == [], "fix tests/torch_free.txt:\n" + "\n".join(wrong)


def test_the_check_sees_an_export_import(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("def test_x(tiny_checkpoint):\n    from nvila_edge.export.exporter import export_checkpoint\n")
    assert sorted(export_side_uses(sample)) == ["fixture tiny_checkpoint", "nvila_edge.export.exporter"]
