"""nsa_verify.config: every way in (dict, JSON text, file, profile name, keywords), the validated
result, and ConfigError with the C++ ConfigError's field, value and rule."""

import json

import pytest

import nsa_verify as nv


def test_from_dict_json_file_and_profile_agree(tmp_path):
    fields = {"profile": "fla", "t_k": 96, "h_q": 32, "h_kv": 2, "d_k": 32, "d_v": 32}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(fields))
    from_dict = nv.config(fields)
    assert nv.config(json.dumps(fields)) == from_dict
    assert nv.config(str(path)) == from_dict
    assert nv.config(path) == from_dict
    assert nv.config("fla", t_k=96, h_q=32, h_kv=2, d_k=32, d_v=32) == from_dict
    assert nv.config(from_dict) is from_dict


def test_profile_sets_its_knobs_and_validation_derives_the_rest():
    c = nv.config("nsa_triton", t_k=100, batch=3, t_q=7)
    assert c.profile == "nsa_triton"
    assert c.total_q == 21 and c.total_k == 300
    assert c.cu_seqlens_q == [0, 7, 14, 21] and c.cu_seqlens_k == [0, 100, 200, 300]
    assert c.sequences == [(0, 0, 7, 100), (7, 100, 7, 100), (14, 200, 7, 100)]
    assert c.scale == pytest.approx(c.d_k ** -0.5)
    assert c.group == c.h_q // c.h_kv
    canonical = nv.config("canonical")
    # the profiles differ in at least one convention knob (docs/semantics.md, "Profiles")
    knobs = ("cmp_visibility", "score_mapping", "group_reduce", "forced_mode", "tie_break",
             "slc_causal", "index_policy", "window_keys")
    assert any(getattr(c, k) != getattr(canonical, k) for k in knobs)
    assert set(nv.profiles()) == {"canonical", "fla", "nsa_triton", "custom"}


def test_varlen_and_shapes():
    c = nv.config({"layout": "varlen", "cu_seqlens_k": [0, 5, 5, 40], "h_q": 2, "d_k": 8,
                   "d_v": 4, "phi": "mlp", "phi_hidden": 6})
    assert c.total_q == 40 and c.max_t_k == 35
    shapes = c.input_shapes()
    assert shapes["q"] == (40, 2, 8) and shapes["v_win"] == (40, 1, 4)
    assert shapes["phi_k_w1"] == (1, c.cmp_block * 8, 6) and shapes["phi_v_b2"] == (1, 4)
    assert c.output_shapes()["p_cmp"] == (40, 2, c.max_cmp_blocks)
    assert c.output_shapes()["scores"] == (40, 1, c.max_slc_blocks)
    assert c.grad_shapes()["dphi_k_w2"] == (1, 6, 8)


def test_replace_rederives_what_validation_filled_in():
    c = nv.config(t_k=64, d_k=16)
    d = c.replace(t_k=128, d_k=64)
    assert d.t_q == 128 and d.total_k == 128
    assert d.scale == pytest.approx(1 / 8)
    assert c.replace(scale=0.5).scale == 0.5
    assert nv.config(d.to_json()) == d
    with pytest.raises(AttributeError):
        c.t_k = 5


def test_topn_rounding_keeps_the_next_power_of_two_under_fla_only():
    fla = {"profile": "fla", "h_q": 16, "cmp_block": 16, "cmp_stride": 16, "slc_block": 16,
           "top_n": 5, "t_k": 100}
    assert nv.config(fla).top_n == 5
    rounded = nv.config(dict(fla, topn_rounding="next_power_of_two"))
    assert rounded.top_n == 8 and rounded.topn_rounding == "next_power_of_two"
    assert nv.config(rounded.to_json()) == rounded  # validating again changes nothing
    with pytest.raises(nv.ConfigError) as info:
        nv.config({"topn_rounding": "next_power_of_two", "t_k": 100})
    assert info.value.field == "topn_rounding"
    assert "profile canonical requires none" in info.value.rule


@pytest.mark.parametrize("fields, field, value, rule_part", [
    ({"h_q": 3, "h_kv": 2}, "h_q", "3", "multiple of h_kv"),
    ({"d_k": 0}, "d_k", "0", "[1, 1024]"),
    ({"dtype": "fp8"}, "dtype", 'string "fp8"', "fp32|fp16|bf16|fp64"),
    ({"profile": "fla", "tie_break": "higher_index_first"}, "tie_break", "higher_index_first",
     "profile"),
    ({"no_such_key": 1}, "no_such_key", "unknown key", "window_keys"),
    ({"scale": "big"}, "scale", 'string "big"', "a number or null"),
])
def test_config_error_names_field_value_and_rule(fields, field, value, rule_part):
    with pytest.raises(nv.ConfigError) as info:
        nv.config(fields)
    e = info.value
    assert isinstance(e, ValueError)
    assert (e.field, e.value) == (field, value)
    assert rule_part in e.rule
    assert field in str(e)


def test_config_error_for_unknown_profile_and_bad_json():
    with pytest.raises(nv.ConfigError) as info:
        nv.config("not_a_profile")
    assert (info.value.field, info.value.value) == ("profile", "not_a_profile")
    assert "canonical" in info.value.rule
    with pytest.raises(nv.ConfigError) as info:
        nv.config('{"t_k": 12,')
    assert info.value.field == "<json>"
    with pytest.raises(nv.ConfigError) as info:
        nv.config({"t_k": float("nan")})
    assert info.value.field == "<json>"


def test_missing_file_and_wrong_type():
    with pytest.raises(FileNotFoundError, match="no/such/config.json"):
        nv.config("no/such/config.json")
    with pytest.raises(TypeError, match="expected a dict"):
        nv.config(42)
    with pytest.raises(AttributeError, match="no field 'tk'"):
        nv.config().tk
