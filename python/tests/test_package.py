"""The package itself: its version is the CMake project's, `python -m nsa_verify` reports the
installation, and an installed package registers the pytest plugin."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

import nsa_verify as nv
from conftest import REPO


def test_version_is_the_cmake_projects():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        version = re.search(r"project\(nsa_verify\s+VERSION\s+([0-9.]+)", f.read()).group(1)
    assert nv.__version__ == version
    try:
        installed = importlib.metadata.version("nsa_verify")
    except importlib.metadata.PackageNotFoundError:
        return  # the build tree's package (ctest): no distribution metadata
    if os.path.dirname(nv.__file__).startswith(sys.prefix):
        assert installed == version


def test_module_reports_the_installation():
    run = subprocess.run([sys.executable, "-m", "nsa_verify"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"nsa_verify {nv.__version__}"
    assert lines[1].startswith("CUDA kernels: ")
    assert "smoke" in lines[2]


def test_module_checks_a_candidate_file(tmp_path, smoke):
    path = tmp_path / "cand.h5"
    nv.write_candidate(path, smoke, {smoke[0].name: {"o": smoke[0].reference().o}})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-m", "nsa_verify", "check", smoke.path, str(path)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"case {smoke[0].name}: PASS" in run.stdout
    run = subprocess.run([sys.executable, "-m", "nsa_verify", "check", smoke.path,
                          str(tmp_path / "none.h5")], capture_output=True, text=True, env=env)
    assert run.returncode == 2 and "nothing was judged" in run.stderr


def test_installed_package_registers_the_plugin():
    try:
        dist = importlib.metadata.distribution("nsa_verify")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("nsa_verify is not installed (the build tree's package)")
    points = [e for e in dist.entry_points if e.group == "pytest11"]
    assert [(e.name, e.value) for e in points] == [("nsa_verify", "nsa_verify.pytest_plugin")]
