"""Packaging: one version, what the sdist and the wheel carry, and a cheap ``import rpmsg``.

The distributions are built for real (``python -m build --no-isolation`` with the project
venv's setuptools, so no network) from a copy of the checkout, then opened and read.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib

import rpmsg
from rpmsg import _version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Not copied into the build tree: caches, environments and earlier build output.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                     "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache",
                                     ".pytest_cache", ".hypothesis")
#: Files inside the package that are not Python modules and must ship in the wheel.
PACKAGE_DATA = ["rpmsg/py.typed", "rpmsg/capture/wireshark/rpmsg.lua",
                "rpmsg/bench/c/shm_bench.h", "rpmsg/bench/c/shm_device.c",
                "rpmsg/bench/c/shm_driver.c"]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist, then the wheel from the unpacked sdist (build's default): a file the
    sdist forgot makes the wheel build or its contents fail."""
    tmp = tmp_path_factory.mktemp("dist")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=COPY_IGNORE, symlinks=True)
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(tree)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def sdist_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}


def test_version_has_one_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "rpmsg._version.__version__"
    assert rpmsg.__version__ == _version.__version__
    proc = subprocess.run([sys.executable, "-m", "rpmsg", "--version"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert proc.stdout.strip() == f"rpmsg {_version.__version__}"


def test_license_file_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the rpmsg authors" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_sdist_carries_tests_docs_examples_and_scripts(dists: dict[str, Path]) -> None:
    names = sdist_names(dists["sdist"])
    for required in ["LICENSE", "README.md", "pyproject.toml", "src/rpmsg/_version.py",
                     "scripts/test", "scripts/uml-kernel", "scripts/_env.sh",
                     "tests/cli/test_packaging.py", "tests/kernel/uml.py", "docs/conf.py",
                     *(f"src/{p}" for p in PACKAGE_DATA)]:
        assert required in names, required
    for folder in ["tests/", "examples/", "docs/"]:
        tracked = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py")
                   if "__pycache__" not in p.parts}
        assert tracked <= names, sorted(tracked - names)[:10]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_carries_package_data_and_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(whl.read(meta_name).decode("utf-8"))
    for data in PACKAGE_DATA:
        assert data in names, data
    assert "rpmsg/_version.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/"))]
    assert meta["Version"] == _version.__version__
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}" \
        in classifiers
    extras = set(meta.get_all("Provides-Extra"))
    assert {"serial", "spi"} <= extras
    assert meta.get_all("Requires-Dist") is None or all(
        "extra ==" in req for req in meta.get_all("Requires-Dist"))  # the core needs nothing


def imported_modules(code: str) -> set[str]:
    """The modules a fresh interpreter imports to run ``code`` (``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                          text=True, timeout=60, check=True)
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


#: What ``import rpmsg`` must not pull in: asyncio, the optional hardware libraries and every
#: transport, service, capture or CLI module (they import threads, sockets, mmap...).
HEAVY = ("asyncio", "serial", "spidev", "gpiod", "rpmsg.transports", "rpmsg.virtio",
         "rpmsg.vhost_user", "rpmsg.port", "rpmsg.linux", "rpmsg.capture", "rpmsg.services",
         "rpmsg.cli", "rpmsg.aio", "rpmsg.bench")


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_import_rpmsg_is_cheap() -> None:
    modules = imported_modules("import rpmsg")
    assert "rpmsg" in modules and "rpmsg.device" in modules  # the probe sees rpmsg's imports
    assert heavy(modules) == set()


def test_async_api_imports_asyncio_on_first_use() -> None:
    # The counterpart of the test above: the probe does see asyncio once it is needed.
    modules = imported_modules("import rpmsg; rpmsg.AsyncEndpoint")
    assert "asyncio" in modules
