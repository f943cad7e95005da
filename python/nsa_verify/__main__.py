"""python -m nsa_verify: what this installation has (version, CUDA, golden suites);
python -m nsa_verify check GOLDEN CANDIDATE: judges a candidate file like `nsa golden check`
(exit 0 pass, 1 a tensor failed, 2 nothing judged)."""

import argparse
import sys

import nsa_verify as nv


def info():
    print(f"nsa_verify {nv.__version__}")
    print(f"CUDA kernels: {'built' if nv.cuda.built_with_cuda() else 'not built'}"
          + (f"; {nv.cuda.why_unavailable() or 'device: ' + nv._core.cuda_device_name()}"
             if nv.cuda.built_with_cuda() else ""))
    print(f"golden suites: {', '.join(nv.suites()) or 'none'} ({nv.golden_dir()})")
    return 0


def check(argv):
    p = argparse.ArgumentParser(prog="python -m nsa_verify check")
    p.add_argument("golden")
    p.add_argument("candidate")
    p.add_argument("--alpha", type=float, default=nv.golden.DEFAULT_ALPHA)
    p.add_argument("--beta", type=float, default=nv.golden.DEFAULT_BETA)
    a = p.parse_args(argv)
    try:
        report = nv.check_file(a.golden, a.candidate, a.alpha, a.beta)
    except (OSError, nv.GoldenError) as e:
        print(f"nsa_verify check: error: {e}\nnothing was judged (exit 2)", file=sys.stderr)
        return 2
    for c in report.cases:
        if c.status == "not checked":
            print(f"case {c.case.name}: not checked")
        else:
            print(c.report().replace(f"case {c.name}", f"case {c.case.name}", 1))
    print(f"\n{report.passed_count} cases passed, {report.failed_count} failed, "
          f"{report.not_checked_count} not checked; {report.tensors + report.grad_tensors} "
          f"tensors checked, {report.grad_tensors} of them gradients")
    return report.status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("info", "--version"):
        return info()
    if argv[0] == "check":
        return check(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
