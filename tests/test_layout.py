"""The layout keeps its shape: imports run one way between the sub-packages, commands stay thin, modules stay
small, and ruff finds nothing."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seglight"
# a layer may import its own and lower layers only; training and inference are peers that never import each other
LAYERS = {"util": 0, "data": 1, "model": 2, "report": 3, "training": 4, "inference": 4}
TOP_LEVEL = {"__init__.py", "config.py"}  # the package face and the Hydra plumbing; every other top module is a command
COMMAND_LINES = 40
MODULE_LINES = 300


def imported_modules(path: Path) -> list[str]:
    """Every ``seglight.*`` module a file imports, at the top or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n == "seglight" or n.startswith("seglight.")]


def layering_violations(package: Path) -> list[str]:
    """'file: imports module' for each import from a higher layer or a peer layer."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if len(parts) == 1:
            continue  # commands and the package face may import any layer
        own = parts[0]
        for module in imported_modules(path):
            target = module.split(".")[1] if "." in module else ""
            if target not in LAYERS:
                if target and f"{target}.py" in TOP_LEVEL | {p.name for p in package.glob("*.py")}:
                    found.append(f"{path.relative_to(package)}: imports {module} (a command or the package face)")
                continue
            if target != own and LAYERS[target] >= LAYERS[own]:
                found.append(f"{path.relative_to(package)}: imports {module}")
    return found


def test_imports_run_one_way():
    assert layering_violations(PACKAGE) == []


def test_the_layering_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "seglight"
    for sub in ("data", "training", "inference"):
        (fake / sub).mkdir(parents=True)
    (fake / "data" / "io.py").write_text("from seglight.training.fit import train\n")
    (fake / "training" / "fit.py").write_text("def f():\n    from seglight.inference.predictor import Predictor\n")
    (fake / "inference" / "predictor.py").write_text("from seglight.data.io import read_image\n")
    assert layering_violations(fake) == [
        "data/io.py: imports seglight.training.fit",
        "training/fit.py: imports seglight.inference.predictor",
    ]


def test_commands_are_thin_and_modules_small():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    commands = {name: n for name, n in sizes.items() if "/" not in name and name not in TOP_LEVEL}
    assert set(commands) == {
        "train.py",
        "predict.py",
        "evaluate.py",
        "export.py",
        "check_data.py",
        "compare.py",
        "audit.py",
    }
    assert {name: n for name, n in commands.items() if n > COMMAND_LINES} == {}
    assert {name: n for name, n in sizes.items() if n > MODULE_LINES} == {}


def test_every_sub_package_is_in_the_readme_layout():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    for sub in LAYERS:
        assert f"{sub}/" in layout, sub


def test_every_config_option_is_in_the_readme_table():
    """Each option of a config group that the README's group table lists is named in that group's row (files
    starting with ``_`` are shared bases, not options)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    conf = PACKAGE.parent / "conf"
    rows = {g: row for g, row in re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, re.M) if (conf / g).is_dir()}
    assert {"data", "model", "encoder", "loss", "optimizer", "scheduler", "trainer", "logger"} <= set(rows)
    options = {g: [p.stem for p in sorted((conf / g).glob("*.yaml")) if not p.stem.startswith("_")] for g in rows}
    missing = {g: [name for name in names if f"`{name}`" not in rows[g]] for g, names in options.items()}
    assert {g: names for g, names in missing.items() if names} == {}


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
    reason="ruff is not installed (pip install -e '.[dev]')",
)
def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    root = PACKAGE.parent
    lint = subprocess.run(
        [ruff, "check", "seglight", "tests", "experiments", "notebooks"], cwd=root, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(
        [ruff, "format", "--check", "seglight", "tests", "experiments", "notebooks"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (pip install -e '.[dev]')")
def test_mypy_finds_nothing():
    typed = subprocess.run([sys.executable, "-m", "mypy"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert typed.returncode == 0, typed.stdout[-3000:]


def test_a_passing_test_frees_its_tmp_dir(tmp_path):
    """Every training test writes checkpoints of ~150 MB: kept for the whole session they filled a CI disk
    (11-15 GB under /tmp per run). Under the project's pytest config a passing test's tmp_path is removed."""
    record = tmp_path / "inner_tmp.txt"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(
        "import os\n"
        "def test_writes(tmp_path):\n"
        "    (tmp_path / 'weights.bin').write_bytes(b'0' * 1024)\n"
        f"    open({str(record)!r}, 'w').write(str(tmp_path))\n"
    )
    ini = PACKAGE.parent / "pyproject.toml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", str(ini), "--basetemp", str(tmp_path / "base"), str(test_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    inner = Path(record.read_text())
    assert not inner.exists(), f"{inner} was kept after its test passed"
