"""Golden files (golden/SCHEMA.md) through the project's C++ reader: open a file or a committed
suite by name, iterate its cases, get inputs (float64, in their stored dtype, or as torch
tensors), the upstream gradient dO, the truth, the gradients and the tolerance attributes; judge a
candidate on a case; write and check candidate files."""

from collections.abc import Mapping
import fnmatch
import os

from . import _core
from ._tensors import to_stored, to_torch
from .config import Config
from .judge import CaseVerdict, Verdict, candidate_arrays

__all__ = ["GoldenFile", "GoldenCase", "FileVerdict", "golden_dir", "suites", "open_golden",
           "write_candidate", "check_file", "DEFAULT_ALPHA", "DEFAULT_BETA"]

# The tolerance rule's defaults (the files' tolerance_alpha / tolerance_beta).
DEFAULT_ALPHA = 2.0
DEFAULT_BETA = 2.0


def golden_dir():
    """Where the committed suites are: $NSA_VERIFY_GOLDEN_DIR, else the copy the package carries
    (its data/ folder; in a build tree a link to golden/data). None when neither exists."""
    env = os.environ.get("NSA_VERIFY_GOLDEN_DIR")
    if env:
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    return here if os.path.isdir(here) else None


def suites():
    """The suite names found in golden_dir() (smoke, canonical, fla, nsa_triton)."""
    d = golden_dir()
    if not d:
        return []
    return sorted(f[:-3] for f in os.listdir(d) if f.endswith(".h5"))


def _resolve(path_or_suite):
    text = os.fspath(path_or_suite)
    if os.path.isfile(text) or os.sep in text or text.endswith(".h5"):
        if not os.path.isfile(text):
            raise FileNotFoundError(f"golden file {text!r} does not exist")
        return text
    d = golden_dir()
    candidate = os.path.join(d, text + ".h5") if d else None
    if not candidate or not os.path.isfile(candidate):
        where = f"in {d}: {', '.join(suites())}" if d else "(no golden directory; set NSA_VERIFY_GOLDEN_DIR)"
        raise FileNotFoundError(f"no golden suite named {text!r} {where}")
    return candidate


def open_golden(path_or_suite):
    """A golden file by path, or a committed suite by name ("smoke", "canonical", "fla",
    "nsa_triton"). Reads and checks the whole file: FileNotFoundError when it is not there,
    GoldenError when it is not a golden file (not HDF5, damaged, another schema version)."""
    return GoldenFile(_resolve(path_or_suite))


def _ulp_dtype(name, dtype):
    # golden/SCHEMA.md, expected/: the case dtype for o*, fp32 for lse, p_cmp, scores, score_gap.
    return dtype if name == "o" or name.startswith("o_") else "fp32"


class GoldenCase:
    """One case of a golden file. `config` (Config), `seed`, `regime`, `precision` (of the truth),
    `backward` (whether it has dO and gradients); `inputs` (float64, exact), `do` (float64 or
    None), `expected` (the truth: float64, indices int32), `expected_grads` (or None), and the
    tolerance attributes `tolerance` / `grad_tolerance`: {tensor: (baseline_max_abs_err,
    ulp_dtype)}. `id` is "<suite>/<name>", the pytest id."""

    def __init__(self, file, native):
        self.file = file
        self._c = native
        self.name = native.name
        self.config = Config(native.config)
        self.seed = native.seed
        self.regime = native.regime
        self.precision = native.precision
        self.generator_version = native.generator_version
        self.backward = bool(native.has_grad)
        self._cache = {}

    @property
    def id(self):
        return f"{self.file.label}/{self.name}"

    @property
    def dtype(self):
        return self.config.dtype

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def inputs(self):
        """{name: float64 array} of every input the config reads (golden/SCHEMA.md, inputs/);
        stored values widened exactly (bf16 decoded from its bits). Do not modify them."""
        return self._cached("inputs", lambda: _readonly(self._c.inputs()))

    @property
    def do(self):
        """The upstream gradient dL/do [total_q, h_q, d_v] (float64), or None without backward."""
        return self._cached("do", lambda: _readonly_one(self._c.d_o()))

    @property
    def expected(self):
        """{name: array} of the truth (expected/): float64, indices int32."""
        return self._cached("expected", lambda: _readonly(self._c.expected()))

    @property
    def expected_grads(self):
        """{name: float64 array} of the truth's gradients (expected/grad/), or None."""
        return self._cached("grads", lambda: _readonly(self._c.expected_grads())
                            if self.backward else None)

    @property
    def tolerance(self):
        """{expected tensor: (baseline_max_abs_err, ulp_dtype)} of the tolerance rule."""
        return {n: (e, _ulp_dtype(n, self.dtype)) for n, e in self._c.baseline_err.items()}

    @property
    def grad_tolerance(self):
        """{gradient: (baseline_max_abs_err, ulp_dtype)}; gradients use the case dtype's ulp."""
        return {n: (e, self.dtype) for n, e in self._c.grad_baseline_err.items()}

    def arrays(self, framework="numpy", dtype="stored", device=None, with_do=True):
        """The inputs (and "do" where the case has one) for an implementation:

        - framework "numpy", dtype "stored": as stored (float32, float16; bf16 as raw uint16 bits,
          `bits.view(ml_dtypes.bfloat16)` types them); dtype "float64": widened;
        - framework "torch": tensors in the case dtype (torch.bfloat16 for bf16), or float64 with
          dtype "float64", on `device` (indices int32).
        """
        if dtype not in ("stored", "float64"):
            raise ValueError(f"dtype {dtype!r}: expected 'stored' or 'float64'")
        if framework not in ("numpy", "torch"):
            raise ValueError(f"framework {framework!r}: expected 'numpy' or 'torch'")
        src = dict(self.inputs)
        if with_do and self.do is not None:
            src["do"] = self.do
        out = {}
        for name, a in src.items():
            if framework == "numpy":
                out[name] = a.copy() if dtype == "float64" or a.dtype.kind != "f" else to_stored(
                    a, self.dtype)
            else:
                out[name] = to_torch(a, self.dtype if dtype == "stored" else "fp64", device)
        return out

    def torch_inputs(self, device=None, with_do=True):
        """arrays("torch", "stored", device): torch tensors in the case dtype."""
        return self.arrays("torch", "stored", device, with_do)

    def reference(self, precision="f64", **kwargs):
        """The reference forward on this case's inputs (nsa_verify.forward)."""
        from .reference import forward

        return forward(self.config, self.inputs, precision, **kwargs)

    def judge(self, result=None, grads=None, alpha=DEFAULT_ALPHA, beta=DEFAULT_BETA):
        """Judges a candidate on this case with the C++ comparator (nsa::golden::check_case and
        check_case_gradients): `result` holds any of o_<branch>, lse_<branch>, o, indices and,
        under "grad", gradients (or pass them as `grads`); a bare array is o. Where the
        candidate's indices differ from the truth's within ties, o_slc, lse_slc, o and the
        gradients are judged against the reference run with its own indices. Returns a
        CaseVerdict."""
        outputs, cand_grads = candidate_arrays(self.config, result)
        if grads is not None:
            _, cand_grads = candidate_arrays(self.config, {"grad": grads})
        forward = None
        if outputs:
            forward = Verdict(_core.judge_case(self._c, outputs, float(alpha), float(beta)),
                              self.config.output_shapes(), "forward")
        grad_verdict = None
        if cand_grads:
            if not self.backward:
                raise ValueError(f"case {self.id} has no backward (no dO, no expected gradients): "
                                 f"its gradients cannot be judged")
            idx = outputs.get("indices") if self.config.enable_slc and not \
                self.config.given_indices else None
            grad_verdict = Verdict(_core.judge_case_grads(self._c, cand_grads, idx, float(alpha),
                                                          float(beta)),
                                   self.config.grad_shapes(), "gradients")
        return CaseVerdict(self, forward, grad_verdict)

    def assert_passes(self, result=None, grads=None, alpha=DEFAULT_ALPHA, beta=DEFAULT_BETA):
        """judge(), raising AssertionError unless the case passed; the message names every
        failing tensor with its worst element, expected and actual value. Returns the verdict."""
        __tracebackhide__ = True  # pytest shows the test's line and this message, not our frame
        verdict = self.judge(result, grads, alpha, beta)
        if verdict.status != "pass":
            raise AssertionError(verdict.report())
        return verdict

    def __repr__(self):
        return f"GoldenCase({self.id}: {self.config!r})"


def _readonly(d):
    if d is None:
        return None
    out = {}
    for k, v in d.items():
        v.flags.writeable = False
        out[k] = v
    return out


def _readonly_one(a):
    if a is not None:
        a.flags.writeable = False
    return a


class GoldenFile:
    """A golden file, read and checked completely: `suite`, `schema_version`, `path`, and its
    cases (iterate, len, [index] or [name])."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._c = _core.read_golden(self.path)
        self.suite = self._c.suite
        self.schema_version = self._c.schema_version
        self.alpha, self.beta = DEFAULT_ALPHA, DEFAULT_BETA
        self.cases = [GoldenCase(self, self._c.case(i)) for i in range(len(self._c))]

    @property
    def label(self):
        """The suite name, or the file's stem for a file made from a config."""
        stem = os.path.splitext(os.path.basename(self.path))[0]
        return self.suite if self.suite != "config" else stem

    def __iter__(self):
        return iter(self.cases)

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, key):
        if isinstance(key, str):
            for c in self.cases:
                if c.name == key:
                    return c
            raise KeyError(f"{self.path} has no case {key!r}")
        return self.cases[key]

    def names(self):
        return [c.name for c in self.cases]

    def select(self, pattern=None):
        """The cases whose name matches `pattern`: a glob ("*bf16*"), a substring, a list of
        either, or a callable taking the case."""
        if pattern is None:
            return list(self.cases)
        if callable(pattern):
            return [c for c in self.cases if pattern(c)]
        pats = [pattern] if isinstance(pattern, str) else list(pattern)

        def hit(name):
            return any(fnmatch.fnmatchcase(name, p) or p in name for p in pats)
        return [c for c in self.cases if hit(c.name)]

    def __repr__(self):
        return f"GoldenFile({self.path!r}: suite {self.suite}, {len(self)} cases)"


class FileVerdict:
    """The verdict on a candidate file (`nsa golden check`): per case a CaseVerdict, the counts,
    and status 0 (pass), 1 (a tensor failed) or 2 (nothing was judged)."""

    def __init__(self, golden, report):
        self.golden = golden
        self.cases = []
        for c in report["cases"]:
            case = golden[c["name"]]
            fwd = (Verdict(c["forward"], case.config.output_shapes(), "forward")
                   if c["forward"] is not None else None)
            grads = (Verdict(c["grads"], case.config.grad_shapes(), "gradients")
                     if c["grads"] is not None else None)
            self.cases.append(CaseVerdict(case, fwd, grads, message=c["grad_note"]))
        self.passed_count = report["passed"]
        self.failed_count = report["failed"]
        self.not_checked_count = report["not_checked"]
        self.tensors = report["tensors"]
        self.grad_tensors = report["grad_tensors"]
        self.status = report["status"]

    @property
    def passed(self):
        return self.status == 0

    def __repr__(self):
        return (f"FileVerdict(status {self.status}: {self.passed_count} passed, "
                f"{self.failed_count} failed, {self.not_checked_count} not checked)")


def _golden(golden):
    return golden if isinstance(golden, GoldenFile) else open_golden(golden)


def write_candidate(path, golden, results):
    """Writes a candidate file (golden/SCHEMA.md, "Candidate files") for `golden` (a GoldenFile,
    path or suite name): `results` maps case names (or GoldenCases) to candidate results as
    GoldenCase.judge takes them (outputs, and gradients under "grad"). Values are stored as
    float64 (outputs/, outputs/grad/) and indices as int32."""
    golden = _golden(golden)
    items = results.items() if isinstance(results, Mapping) else results
    entries = []
    for key, result in items:
        case = key if isinstance(key, GoldenCase) else golden[key]
        outputs, grads = candidate_arrays(case.config, result)
        entries.append((case.name, outputs, grads))
    _core.write_candidate(os.fspath(path), golden._c, entries)


def check_file(golden, candidate_path, alpha=DEFAULT_ALPHA, beta=DEFAULT_BETA):
    """Judges a candidate file against a golden file like `nsa golden check`: a FileVerdict."""
    golden = _golden(golden)
    path = os.fspath(candidate_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"candidate file {path!r} does not exist")
    return FileVerdict(golden, _core.check_file(golden._c, path, float(alpha), float(beta)))
