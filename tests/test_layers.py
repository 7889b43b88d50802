"""The stages form layers: a module may import its own package or a LOWER layer, never an upper one.

    core → randomizer → render → {refiner, pose_model} → eval → benchmark → {perf, cli}

(refiner and pose_model are siblings: neither imports the other). Every import statement counts, also the
ones inside functions, since a lazy import is still a dependency."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYER = {"core": 0, "randomizer": 1, "render": 2, "refiner": 3, "pose_model": 3, "eval": 4, "benchmark": 5,
         "perf": 6, "cli": 6}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def upward_imports() -> list[str]:
    bad = []
    for pkg, layer in LAYER.items():
        files = [REPO / "cli.py"] if pkg == "cli" else sorted((REPO / pkg).rglob("*.py"))
        for f in files:
            for line, dep in imported_packages(f):
                if dep in LAYER and dep != pkg and LAYER[dep] >= layer:
                    bad.append(f"{f.relative_to(REPO)}:{line} imports {dep} (layer {LAYER[dep]} ≥ {pkg}'s {layer})")
    return bad


def test_no_upward_imports():
    bad = upward_imports()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_walk_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from eval.bop import x\n    import benchmark.run\n")
    assert [d for _, d in imported_packages(f)] == ["eval", "benchmark"]
