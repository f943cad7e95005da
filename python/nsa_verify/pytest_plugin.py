"""pytest plugin (entry point pytest11 "nsa_verify"): the fixture `nsa_golden_case`, parametrized
over the cases of golden suites, with ids "<suite>/<case name>":

    def test_nsa(nsa_golden_case):
        x = nsa_golden_case.torch_inputs()
        nsa_golden_case.assert_passes({"o": my_nsa(x, nsa_golden_case.config)})

Which suites: the marker @pytest.mark.nsa_suites("smoke", "fla"), else --nsa-suite (repeatable;
names or .h5 paths), else the ini option nsa_suites, else smoke. --nsa-case PATTERN (repeatable;
glob or substring of the case name) narrows them. Each file is read once per session."""

import os

import pytest

__all__ = ["nsa_golden_case"]

_DEFAULT_SUITES = ["smoke"]


def pytest_addoption(parser):
    group = parser.getgroup("nsa_verify", "NSA Verify golden cases")
    group.addoption("--nsa-suite", action="append", default=None, metavar="SUITE",
                    help="golden suite name or .h5 path for the nsa_golden_case fixture "
                         "(repeatable; default: the ini option nsa_suites, else smoke)")
    group.addoption("--nsa-case", action="append", default=None, metavar="PATTERN",
                    help="only golden cases whose name matches (glob or substring; repeatable)")
    parser.addini("nsa_suites", type="args", default=None,
                  help="golden suites for nsa_golden_case (names or .h5 paths)")


def pytest_configure(config):
    config.addinivalue_line("markers", "nsa_suites(*suites): the golden suites (names or .h5 "
                                       "paths) that nsa_golden_case runs over in this test")
    config._nsa_golden_files = {}
    # A suite named on the command line or in the ini file must exist: a usage error up front.
    for suite in (config.getoption("nsa_suite") or []) + (config.getini("nsa_suites") or []):
        _load(config, suite)


def _load(config, suite):
    from .golden import _resolve, GoldenFile

    cache = config._nsa_golden_files
    try:
        path = os.path.abspath(_resolve(suite))
    except FileNotFoundError as e:
        raise pytest.UsageError(f"nsa_verify: {e}") from None
    if path not in cache:
        cache[path] = GoldenFile(path)
    return cache[path]


def _suites(metafunc):
    marker = metafunc.definition.get_closest_marker("nsa_suites")
    if marker is not None and marker.args:
        return list(marker.args)
    opt = metafunc.config.getoption("nsa_suite")
    if opt:
        return opt
    return metafunc.config.getini("nsa_suites") or _DEFAULT_SUITES


def pytest_generate_tests(metafunc):
    if "nsa_golden_case" not in metafunc.fixturenames:
        return
    patterns = metafunc.config.getoption("nsa_case")
    params, ids = [], []
    for suite in _suites(metafunc):
        golden = _load(metafunc.config, suite)
        for case in golden.select(patterns):
            params.append((golden.path, case.name))
            ids.append(case.id)
    metafunc.parametrize("nsa_golden_case", params, ids=ids, indirect=True)


@pytest.fixture
def nsa_golden_case(request):
    """A golden case (nsa_verify.GoldenCase): config, inputs (numpy, stored dtype or torch), do,
    expected tensors and gradients, judge() and assert_passes()."""
    path, name = request.param
    return _load(request.config, path)[name]
