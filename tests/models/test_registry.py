import dataclasses
from pathlib import Path

import pytest

import cnnlab
from cnnlab.models import register_model
from cnnlab.models.registry import get_entry


def test_list_models_sorted_and_filtered():
    names = cnnlab.list_models()
    assert names == sorted(names)
    v2 = cnnlab.list_models("shufflenet_v2*")
    assert "shufflenet_v2_x1_0" in v2
    assert all(n.startswith("shufflenet_v2") for n in v2)
    assert cnnlab.list_models("no_such_family*") == []


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"did you mean .*shufflenet_v2_x1_0"):
        cnnlab.create_model("shufflenet_v2_x1_O")


def test_unknown_override_is_type_error():
    with pytest.raises(TypeError, match="unknown override.*widht"):
        cnnlab.create_model("shufflenet_v2_x1_0", widht=2)


def test_duplicate_registration_raises():
    entry = get_entry("shufflenet_v2_x1_0")
    with pytest.raises(ValueError, match="already registered"):
        register_model("shufflenet_v2_x1_0", entry.family, entry.cfg)


def test_an_invalid_config_is_refused_when_registered():
    entry = get_entry("shufflenet_v2_x1_0")
    bad = dataclasses.replace(entry.cfg, drop_rate=1.5)
    with pytest.raises(
        ValueError, match=r"model 'bad_net': drop_rate must be in \[0, 1\), got 1.5"
    ):
        register_model("bad_net", entry.family, bad)
    with pytest.raises(ValueError, match="unknown model 'bad_net'"):
        get_entry("bad_net")


def test_impossible_configuration_names_layer_and_numbers():
    with pytest.raises(ValueError, match=r"layer .stage2_0.: .*c_in=24, c_out=117"):
        cnnlab.create_model("shufflenet_v2_x1_0", stage_channels=(117, 232, 464))
    with pytest.raises(ValueError, match=r"layer .stage2_0.: .*c_out=117"):
        cnnlab.complexity("shufflenet_v2_x1_0", stage_channels=(117, 232, 464))


def test_overrides_reach_the_model():
    m = cnnlab.create_model("shufflenet_v2_x1_0", conv5=512, num_classes=10)
    assert m.num_features == 512
    assert m.get_classifier().out_features == 10


def test_every_registered_name_is_written_literally_in_one_family_file():
    # grep-able: `grep -r shufflenet_v2_x1_0 cnnlab/` finds the one line that declares it
    sources = {p: p.read_text() for p in Path(cnnlab.models.__file__).parent.rglob("*.py")}
    for name in cnnlab.list_models():
        where = [
            p.name for p, text in sources.items() if f'"{name}"' in text or f"'{name}'" in text
        ]
        assert len(where) == 1, f"{name!r} is written (quoted) in {where or 'no file'}"
