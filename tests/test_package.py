"""The checkout is an installable package: `pip install -e .` into a fresh virtualenv makes `import lab_notes` work
from any folder, and its dependencies are requirements.txt's pins (test-only ones in the `dev` extra)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # makes a virtualenv and runs pip

ROOT = Path(__file__).resolve().parents[1]


def test_an_editable_install_imports_from_any_folder_with_the_pinned_dependencies(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # --no-deps: the dependencies already lie in this venv (PYTHONPATH below); only setuptools comes from the index
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                                "-e", str(ROOT)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import importlib.metadata as m, lab_notes, lab_notes.integrations, engine, app, data; "
             "print(lab_notes.__file__); print('\\n'.join(m.requires('lab-notebook')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}  # the deps, not the checkout
    found = subprocess.run([str(python), "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-3000:]
    where, *requires = found.stdout.splitlines()
    assert Path(where) == ROOT / "lab_notes" / "__init__.py"
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert [r for r in requires if "extra ==" not in r] == pins
    dev = {r.split(";")[0].strip() for r in requires if 'extra == "dev"' in r}
    assert {"pytest==9.2.0", "lightning==2.6.6", "playwright==1.65.2"} <= dev and not dev & set(pins)
    assert sys.executable != str(python)
