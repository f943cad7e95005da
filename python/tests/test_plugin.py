"""The pytest plugin: nsa_golden_case parametrized over golden cases with readable ids, run by
pytester on a toy candidate that is right (the double reference) and one that is wrong (the
window one key too wide): the wrong one fails with a message naming the tensor and element."""

import pytest

pytest_plugins = ["pytester"]

# The plugin as a pip install registers it (entry point "nsa_verify"), or by module name where the
# package is not installed (the build tree): never both.
PLUGIN = ["-p", "no:nsa_verify", "-p", "nsa_verify.pytest_plugin", "-p", "no:cacheprovider"]

CANDIDATES = '''
import nsa_verify as nv


def right(case):
    return {"o": case.reference("f64").o, "o_win": case.reference("f64").o_win}


def wrong(case):
    wider = "w_plus_one" if case.config.window_keys == "w" else "w"
    cfg = case.config.replace(profile="custom", window_keys=wider)
    return {"o_win": nv.forward(cfg, case.inputs, "f64").o_win}


def test_right(nsa_golden_case):
    nsa_golden_case.assert_passes(right(nsa_golden_case))


def test_wrong(nsa_golden_case):
    nsa_golden_case.assert_passes(wrong(nsa_golden_case))
'''


def test_right_passes_wrong_fails_with_tensor_and_element(pytester):
    pytester.makepyfile(test_candidates=CANDIDATES)
    result = pytester.runpytest(*PLUGIN, "-v")
    result.assert_outcomes(passed=6, failed=6)
    result.stdout.fnmatch_lines([
        "*test_right?smoke/000_padded_fp32_mean? PASSED*",
        "*test_wrong?smoke/005_given_indices_ties? FAILED*",
    ])
    result.stdout.re_match_lines([r".*AssertionError: case smoke/000_padded_fp32_mean: FAIL",
                                  r".*o_win: FAIL, max \|err\| .* > bound .*, at element "
                                  r"\[\d+, \d+, \d+\] \(flat \d+\): expected .*, got .*"])


def test_suite_selection_marker_and_case_filter(pytester):
    pytester.makepyfile(test_sel='''
import pytest

def test_default(nsa_golden_case):
    assert nsa_golden_case.file.suite in ("smoke", "fla")

@pytest.mark.nsa_suites("nsa_triton")
def test_marked(nsa_golden_case):
    assert nsa_golden_case.id.startswith("nsa_triton/")
''')
    result = pytester.runpytest(*PLUGIN, "--nsa-suite", "fla", "--nsa-case", "*bf16*",
                                "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_default?fla/000_fla_bf16?",
                                 "*test_marked?nsa_triton/000_nsa_triton_bf16?"])
    assert "smoke/" not in result.stdout.str()
    # default suite smoke: one case named *bf16*; the marked test: nsa_triton's one
    result = pytester.runpytest(*PLUGIN, "--nsa-case", "*bf16*", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_default?smoke/001_varlen_bf16_linear_empty_seq? PASSED*"])


def test_ini_suites_and_an_unknown_suite(pytester):
    pytester.makeini("[pytest]\nnsa_suites = fla\n")
    pytester.makepyfile(test_ini="def test_x(nsa_golden_case):\n    assert nsa_golden_case.id.startswith('fla/')\n")
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=4)  # the fla suite's four cases
    result = pytester.runpytest(*PLUGIN, "--nsa-suite", "no_such_suite")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*nsa_verify: no golden suite named 'no_such_suite'*"])
