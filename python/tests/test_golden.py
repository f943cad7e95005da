"""Golden files through the bindings: opening by name and path, cases, inputs in their stored
dtype (bf16 decoded correctly, checked against h5py's raw bits where h5py is installed), dO,
truth, gradients and the tolerance attributes; damaged and missing files."""

import os
import shutil

import numpy as np
import pytest

import nsa_verify as nv


def test_suites_and_cases(smoke):
    assert {"smoke", "canonical", "fla", "nsa_triton"} <= set(nv.suites())
    assert smoke.suite == "smoke" and smoke.schema_version == 3 and len(smoke) == 6
    same = nv.open_golden(os.path.join(nv.golden_dir(), "smoke.h5"))
    assert same.names() == smoke.names()
    first = smoke[0]
    assert smoke[first.name] is first and first.id == f"smoke/{first.name}"
    assert smoke.select("*bf16*") == [c for c in smoke if "bf16" in c.name]
    assert smoke.select(lambda c: c.config.dtype == "fp16")[0].config.dtype == "fp16"
    assert first.precision == "f128" and first.backward and first.regime == "typical"
    with pytest.raises(KeyError, match="no_such_case"):
        smoke["no_such_case"]
    with pytest.raises(IndexError):
        smoke[99]


def test_arrays_in_stored_dtype_and_widened(smoke):
    by_dtype = {c.config.dtype: c for c in smoke}
    assert {"fp32", "fp16", "bf16"} <= set(by_dtype)
    want = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}
    for dtype, case in by_dtype.items():
        stored = case.arrays()
        assert set(stored) == set(case.inputs) | {"do"}
        for name, a in stored.items():
            wide = case.do if name == "do" else case.inputs[name]
            if name == "indices":
                assert a.dtype == np.int32
                continue
            assert a.dtype == want[dtype], (case.id, name)
            back = nv.bf16_bits_to_float32(a) if dtype == "bf16" else a
            np.testing.assert_array_equal(back.astype(np.float64), wide)
        wide = case.arrays(dtype="float64", with_do=False)
        assert "do" not in wide and wide["q"].dtype == np.float64


def test_bf16_bits_are_the_files_bits():
    h5py = pytest.importorskip("h5py")
    case = next(c for c in nv.open_golden("smoke") if c.config.dtype == "bf16")
    with h5py.File(case.file.path, "r") as f:
        ds = f[f"cases/{case.name}/inputs/q"]
        assert ds.attrs["dtype"] == "bf16"
        bits = np.empty(ds.shape, np.uint16)
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=ds.id.get_type())  # SCHEMA.md's recipe
        exp = f[f"cases/{case.name}/expected/o_win"]
        assert case.tolerance["o_win"] == (exp.attrs["baseline_max_abs_err"], exp.attrs["ulp_dtype"])
        lse = f[f"cases/{case.name}/expected/lse_cmp"]
        assert case.tolerance["lse_cmp"] == (lse.attrs["baseline_max_abs_err"], lse.attrs["ulp_dtype"])
        dq = f[f"cases/{case.name}/expected/grad/dq"]
        assert case.grad_tolerance["dq"] == (dq.attrs["baseline_max_abs_err"], dq.attrs["ulp_dtype"])
        np.testing.assert_array_equal(case.expected_grads["dk_win"],
                                      f[f"cases/{case.name}/expected/grad/dk_win"][()])
    np.testing.assert_array_equal(case.arrays()["q"], bits)
    np.testing.assert_array_equal(case.inputs["q"],
                                  (bits.astype(np.uint32) << 16).view(np.float32))


def test_every_input_and_truth_is_the_files_dataset_of_that_name(smoke):
    """The names the package gives arrays are the file's (h5py reads it independently)."""
    h5py = pytest.importorskip("h5py")

    def read(ds):
        if ds.attrs.get("dtype") == "bf16":
            bits = np.empty(ds.shape, np.uint16)
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=ds.id.get_type())
            return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return ds[()]

    with h5py.File(smoke.path, "r") as f:
        for case in smoke:
            g = f[f"cases/{case.name}"]
            for name, a in case.inputs.items():
                np.testing.assert_array_equal(a, read(g["inputs"][name]), err_msg=f"{case.id}: {name}")
            np.testing.assert_array_equal(case.do, read(g["inputs/do"]))
            for name, a in case.expected.items():
                np.testing.assert_array_equal(a, g["expected"][name][()], err_msg=name)
            for name, a in case.expected_grads.items():
                np.testing.assert_array_equal(a, g["expected/grad"][name][()], err_msg=name)


def test_expected_gradients_and_do(smoke):
    case = smoke[2]  # fp16, mlp phi
    cfg = case.config
    assert case.do.shape == (cfg.total_q, cfg.h_q, cfg.d_v)
    assert set(case.expected_grads) == set(cfg.grad_shapes())
    for name, shape in cfg.grad_shapes().items():
        assert case.expected_grads[name].shape == shape
    assert set(case.expected) == set(cfg.output_shapes())
    assert not case.inputs["q"].flags.writeable


def test_torch_arrays(smoke):
    torch = pytest.importorskip("torch")
    case = next(c for c in smoke if c.config.dtype == "bf16")
    x = case.torch_inputs()
    assert x["q"].dtype == torch.bfloat16 and x["do"].dtype == torch.bfloat16
    np.testing.assert_array_equal(x["q"].double().numpy(), case.inputs["q"])
    wide = case.arrays("torch", "float64")
    assert wide["q"].dtype == torch.float64


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no golden suite named 'smok'"):
        nv.open_golden("smok")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nv.open_golden(str(tmp_path / "absent.h5"))
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    text = tmp_path / "text.h5"
    text.write_bytes(b"this is not an HDF5 file\n" * 100)
    src = os.path.join(nv.golden_dir(), "smoke.h5")
    truncated = tmp_path / "truncated.h5"
    with open(src, "rb") as f:
        truncated.write_bytes(f.read(os.path.getsize(src) // 2))
    for path in (empty, text, truncated):
        with pytest.raises(nv.GoldenError) as info:
            nv.open_golden(str(path))
        assert str(path) in str(info.value)
        assert isinstance(info.value, ValueError)


def test_corrupt_dataset_bytes_are_an_error_not_a_crash(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "bad_shape.h5"
    shutil.copy(os.path.join(nv.golden_dir(), "smoke.h5"), path)
    with h5py.File(path, "r+") as f:
        name = sorted(f["cases"])[0]
        del f[f"cases/{name}/inputs/q"]
        f[f"cases/{name}/inputs/q"] = np.zeros((3, 3), np.float32)
    with pytest.raises(nv.GoldenError, match="q"):
        nv.open_golden(str(path))
