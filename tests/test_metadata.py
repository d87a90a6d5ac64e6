"""What a package index and a user's tools read about Sandman: one version everywhere, the
license in the repository and in the archives, the classifiers, the project URLs."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import sandman_asgi
from sandman_asgi import _core

ROOT = Path(__file__).resolve().parent.parent
DIST = "sandman-asgi"


def _cargo_version() -> str:
    text = (ROOT / "sandman_core" / "Cargo.toml").read_text()
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert match, "no version in sandman_core/Cargo.toml"
    return match.group(1)


def test_one_version_source():
    # sandman_core/Cargo.toml is the source: maturin puts it in the package metadata and
    # the extension exports it; sandman_asgi re-exports the extension's.
    version = _cargo_version()
    assert _core.__version__ == version
    assert sandman_asgi.__version__ == version
    assert importlib.metadata.version(DIST) == version, "reinstall: pip install -e '.[test]'"
    assert f"\n## {version}\n" in (ROOT / "CHANGELOG.md").read_text()


def test_license_is_bsd_3_clause_in_the_repository_and_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Copyright (c) 2026, the Sandman developers" in text
    metadata = importlib.metadata.metadata(DIST)
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_classifiers_and_urls():
    metadata = importlib.metadata.metadata(DIST)
    classifiers = set(metadata.get_all("Classifier") or [])
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert metadata["Requires-Python"] == ">=3.10"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= set(urls)


def test_sdist_carries_the_license_and_the_changelog(tmp_path):
    # maturin's sdist lists the crate's files with cargo; nothing is compiled.
    pytest.importorskip("maturin", reason="maturin is in the test extras")
    subprocess.run(
        [sys.executable, "-m", "maturin", "sdist", "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        top = [n for n in archive.getnames() if n.count("/") == 1]
        (pkg_info_name,) = [n for n in top if n.endswith("/PKG-INFO")]
        pkg_info = archive.extractfile(pkg_info_name)
        assert pkg_info is not None
        info = pkg_info.read().decode()
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= names
    assert "License-Expression: BSD-3-Clause" in info and "License-File: LICENSE" in info
