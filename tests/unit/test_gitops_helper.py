"""The gitops-verdict helper's build (mljob.testing.gitops): pinned versions, cache folder, and a
clear error without Go. Its verdicts are tested in test_argocd_health.py and
tests/integration/test_gitops_verdicts.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mljob.testing import gitops
from mljob.testing.binaries import BinaryError

DOC = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"


def test_the_helper_pins_the_libraries_the_docs_name():
    versions = gitops.pinned_versions()
    assert versions == {"sigs.k8s.io/cli-utils": "v0.37.2", "github.com/yuin/gopher-lua": "v1.1.2"}
    text = " ".join(DOC.read_text().split())
    assert "cli-utils v0.37.2" in text and "gopher-lua v1.1.2" in text
    go_sum = (gitops.SOURCE / "go.sum").read_text()
    assert all(f"{module} {version} " in go_sum for module, version in versions.items())


def test_the_cache_folder_is_named_after_versions_and_source(monkeypatch, tmp_path):
    monkeypatch.setenv("MLJOB_BIN_CACHE", str(tmp_path))
    folder = gitops.cache_dir()
    assert folder.parent == tmp_path
    assert folder.name.startswith("gitops-verdict-cli-utils-v0.37.2-gopher-lua-v1.1.2-")


def test_without_go_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("MLJOB_BIN_CACHE", str(tmp_path))
    monkeypatch.setattr(gitops.shutil, "which", lambda name: None)
    with pytest.raises(BinaryError, match=r"no `go` toolchain.*Install Go >= 1\.24"):
        gitops.ensure_gitops_verdict(progress=lambda message: None)
