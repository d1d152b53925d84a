"""The distribution name ``rating-engine``: every install hint uses it, and a built wheel installs and runs.

The name ``rating`` on the package index is an unrelated project ("Ratings made easy") that installs an import
package ``rating`` too: a hint saying ``pip install 'rating[EXTRA]'`` would install it over ours.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from rating.cli import main
from rating.distribution import DISTRIBUTION, install_hint
from tests.helpers import ROOT

#: An extra asked for under the name ``rating`` (``rating[invoices]``, ``rating[postgres,server]``), not
#: ``rating-engine[...]`` and not part of a longer name or path.
OTHER_PACKAGE = re.compile(r"(?<![\w.\-/])rating\[[a-z][a-z0-9_,\s-]*\]")

#: Where a hint can be written: the code, the plugins, the README, the CHANGELOG and the docs pages.
SCANNED = ("rating", "plugins", "README.md", "CHANGELOG.md", "docs")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".html", ".toml"}


def hints_to_the_other_package(root: Path) -> list[str]:
    """``path:line: text`` of every ``rating[...]`` under ``root``'s scanned files."""
    found = []
    for name in SCANNED:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        for path in files:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                for match in OTHER_PACKAGE.finditer(line):
                    found.append(f"{path.relative_to(root)}:{number}: {match.group()}")
    return found


def test_no_install_hint_names_the_other_package() -> None:
    found = hints_to_the_other_package(ROOT)
    assert not found, "install hints naming the unrelated package `rating` (use rating-engine[...]):\n" + "\n".join(
        found
    )


def test_the_scan_finds_a_hint_to_the_other_package(tmp_path: Path) -> None:
    (tmp_path / "rating").mkdir()
    (tmp_path / "rating" / "x.py").write_text(
        "ok = \"pip install 'rating-engine[server]'\"\nbad = \"pip install 'rating[invoices]'\"\n"
    )
    (tmp_path / "README.md").write_text("install `rating[postgres,server]`; from a checkout `.[charts]`\n")
    assert hints_to_the_other_package(tmp_path) == [
        "rating/x.py:2: rating[invoices]",
        "README.md:1: rating[postgres,server]",
    ]


def test_install_hint_names_our_distribution_and_the_checkout() -> None:
    assert DISTRIBUTION == "rating-engine"
    assert (
        install_hint("invoices")
        == "pip install 'rating-engine[invoices]' (from a checkout: pip install -e '.[invoices]')"
    )


def test_pyproject_names_the_distribution_and_its_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (
        "Apache License" in (ROOT / "LICENSE").read_text()
        and "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    )
    assert project["scripts"] == {"rating": "rating.cli:main"}
    extras = [requirement for group in project["optional-dependencies"].values() for requirement in group]
    own = [requirement for requirement in extras if requirement.split("[")[0] in {"rating", DISTRIBUTION}]
    assert own and all(requirement.startswith(f"{DISTRIBUTION}[") for requirement in own)


def test_version_prints_the_distribution_and_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"rating-engine {importlib.metadata.version(DISTRIBUTION)}\n"


def test_the_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    """Build the wheel from a copy of the checkout, install it with ``--no-deps`` in a new venv, run ``rating``.

    The dependencies (pydantic, PyYAML, ...) come from this test's own environment, appended to the new venv's
    path by a ``.pth`` line: the package itself, its data and its entry points come from the wheel alone.
    """
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for name in ("rating", "plugins", "pricebooks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    run = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path / "dist")]
    subprocess.run([*run, str(source)], check=True, capture_output=True)
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"rating_engine-{release}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: rating-engine" in metadata.splitlines()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert {"rating/cli/__init__.py", "rating/py.typed", "rating/pricebooks/ai-gateway.yaml"} <= names
    assert "rating_plugins/tiered.py" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], check=True, capture_output=True
    )
    fresh = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(fresh) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    command = python.parent / "rating"

    version = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (version.returncode, version.stdout, version.stderr) == (0, f"rating-engine {release}\n", "")
    where = subprocess.run(
        [python, "-c", "import rating, rating_plugins; print(rating.__file__); print(rating_plugins.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: its rating/ would be imported first
    ).stdout.split()
    assert all(Path(path).is_relative_to(fresh) for path in where), where
    shipped = Path(fresh) / "rating" / "pricebooks" / "ai-gateway.yaml"
    check = subprocess.run([command, "check", str(shipped)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "ok: pricebook ai-gateway" in check.stdout
