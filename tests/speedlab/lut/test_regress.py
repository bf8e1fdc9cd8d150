"""Per-kind latency regressors: exact linear laws, JSON round trips, old tables, full coverage."""

import json

import numpy as np
import pytest

from cnnlab.speedlab.lut.regress import (
    FEATURES,
    RANGE_FEATURES,
    Synthetic,
    features,
    fit_forest,
    fit_group,
    fit_linear,
    fit_power,
    fit_regressors,
    parse_key,
    predict_group,
    predict_key,
    predict_model,
    synthetic_ops,
    vector,
)
from cnnlab.speedlab.lut.table import FORMAT, load_lut, predict_latency, table_from_dict
from tests.speedlab.lut.test_table import DW, SIZE, STEM, TINY_KEYS, Tiny, table

A, B, C = 3e-8, 2e-7, 0.004  # ms per MAC, per element moved, per launch


def law(key: str) -> float:
    """A synthetic exact latency law, linear in (MACs, memory access, 1)."""
    f = features(key)[1]
    return A * f["macs"] + B * f["mem"] + C


TRAIN = list(synthetic_ops(Synthetic(seed=1, per_group=14)))
HELD_OUT = [k for k in synthetic_ops(Synthetic(seed=2, per_group=3)) if k not in TRAIN]


def test_keys_parse_back_to_their_features():
    kind, shapes, attrs = parse_key(STEM)
    assert (kind, shapes) == ("conv2d+bn+relu_", ((3, 16, 16),))
    assert attrs == {"out": 8, "k": 3, "s": 2, "p": 1, "d": 1, "g": 1, "bias": 0}
    group, f = features(STEM)
    # conv2d_cx: 8x8 output; weights 8*3*9 = 216; MACs 216*64; mem in + out + params + relu pass
    assert group == "conv" and f["macs"] == 216 * 64
    assert f["mem"] == 3 * 256 + 8 * 64 + 216 + 2 * 8 * 64
    assert features(DW)[0] == "dwconv"


def test_linear_law_is_reproduced_on_held_out_operators():
    regressors = fit_regressors({k: law(k) for k in TRAIN})
    assert {m["model"] for m in regressors.values()} == {"linear"}  # CV prefers the exact law
    assert not any("range" in m for m in regressors.values())  # linear everywhere already
    for key in HELD_OUT:
        assert predict_key(regressors, key)[1] == pytest.approx(law(key), rel=1e-6, abs=0)
    conv = regressors["conv"]["coef"]
    assert conv == pytest.approx([A, B, C], rel=1e-6)


def test_few_samples_fit_the_linear_law_only():
    keys = TRAIN[:20:2]
    model = fit_group(np.array([vector(features(k)[1]) for k in keys]), [law(k) for k in keys])
    assert model["model"] == "linear" and model["cv_error"] is None and model["samples"] == 10


def nonlinear(key: str) -> float:
    f = features(key)[1]
    return 0.01 + (f["mem"] + f["macs"]) ** 0.5 / 1e3


def training(group: str, y=nonlinear) -> tuple[np.ndarray, np.ndarray]:
    keys = [k for k in TRAIN if features(k)[0] == group]
    return np.array([vector(features(k)[1]) for k in keys]), np.array([y(k) for k in keys])


def test_serialised_regressors_predict_identically(tmp_path):
    lut = table({STEM: 1.0})
    fits = {"conv": fit_forest, "conv1x1": fit_power, "dwconv": fit_linear}
    lut.regressors = {group: fit(*training(group)) for group, fit in fits.items()}
    loaded = load_lut(lut.save(tmp_path / "t.json"))
    assert loaded.regressors == lut.regressors
    keys = [k for k in HELD_OUT if features(k)[0] in fits]
    assert len(keys) >= 6
    for key in keys:
        assert predict_key(loaded.regressors, key) == predict_key(lut.regressors, key)


def test_power_law_is_reproduced():
    def power(key: str) -> float:
        f = features(key)[1]
        return 0.5 * (1 + f["macs"]) ** 0.75 * (1 + f["mem"]) ** 0.125

    X, y = training("conv", power)
    assert fit_group(X, y)["model"] == "power"
    model = fit_power(X, y)
    assert model["coef"] == pytest.approx([0.75, 0.125, np.log(0.5)], rel=1e-9)
    held = [k for k in HELD_OUT if features(k)[0] == "conv"]
    got = predict_model(model, np.array([vector(features(k)[1]) for k in held]))
    assert got == pytest.approx([power(k) for k in held], rel=1e-6)


def test_beyond_its_samples_a_group_predicts_by_its_linear_law():
    def power(key: str) -> float:
        f = features(key)[1]
        return 0.5 * (1 + f["macs"]) ** 0.75 * (1 + f["mem"]) ** 0.125

    X, y = training("conv", power)
    model = fit_group(X, y)
    assert model["model"] == "power" and model["outside"] == fit_linear(X, y)
    macs = FEATURES.index("macs")
    assert model["range"]["high"][RANGE_FEATURES.index("macs")] == X[:, macs].max()
    beyond = X[:3].copy()
    beyond[:, macs] = 2 * X[:, macs].max()
    rows = np.vstack([X[:3], beyond])
    got = predict_group(model, rows)
    assert list(got[:3]) == list(predict_model(model, X[:3]))  # inside: the power law
    assert list(got[3:]) == list(predict_model(fit_linear(X, y), beyond))
    assert not np.allclose(got[3:], predict_model(model, beyond), rtol=0.01)
    older = {k: v for k, v in model.items() if k not in ("range", "outside")}
    assert list(predict_group(older, rows)) == list(predict_model(model, rows))


def test_stored_forest_equals_scikit_learns():
    from sklearn.ensemble import RandomForestRegressor

    from cnnlab.speedlab.lut.regress import FOREST

    X = np.array([vector(features(k)[1]) for k in TRAIN])
    y = np.array([nonlinear(k) for k in TRAIN])
    ours = predict_model(json.loads(json.dumps(fit_forest(X, y))), X)
    theirs = RandomForestRegressor(**FOREST).fit(X.astype(np.float32), np.log(y)).predict(X)
    assert np.allclose(np.log(ours), theirs, rtol=0, atol=1e-12)


def test_old_format_and_malformed_regressors_are_refused(tmp_path):
    lut = table({STEM: 1.0})
    lut.fit()
    old = {**lut.to_dict(), "format": 1}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="format 1, this cnnlab reads format 2 .*--fresh"):
        load_lut(tmp_path / "old.json")
    bad = {**lut.to_dict(), "regressors": {"conv": {"model": "pickle", "data": "gASV"}}}
    with pytest.raises(ValueError, match="regressor 'conv' is malformed"):
        table_from_dict(bad)
    power = {"model": "power", "coef": [0.5, 0.1, 0.0]}
    ranged = {**power, "range": {"low": [0] * 6, "high": [1] * 6}, "outside": {**power}}
    for group in ({**ranged, "outside": {"model": "linear", "coef": [1, 2]}}, {**ranged}):
        with pytest.raises(ValueError, match="regressor 'conv' is malformed"):
            table_from_dict({**lut.to_dict(), "regressors": {"conv": group}})
    ranged["outside"]["model"] = "linear"
    assert table_from_dict({**lut.to_dict(), "regressors": {"conv": ranged}}).regressors
    assert FORMAT == 2


def test_predict_covers_every_operator_and_counts_sources():
    exact = {STEM: 1.0, DW: 0.25}
    lut = table({**{k: law(k) for k in TRAIN}, **exact})
    lut.fit()
    p = predict_latency(Tiny(), lut, SIZE)
    assert p.sources == {"table": 3, "regressor": 8, "measured now": 0, "missing": 0}
    assert p.missing == () and p.ops == len(TINY_KEYS) and p.coverage == 3 / 11
    expected = 1.0 + 2 * 0.25 + sum(law(k) for k in TINY_KEYS if k not in exact)
    assert p.total_ms == pytest.approx(expected, rel=1e-6)
    assert p.regressed_ms == p.total_ms and p.table_ms == 1.5
    bare = predict_latency(Tiny(), lut, SIZE, use_regressors=False)
    assert bare.sources["missing"] == 8 and bare.total_ms == 1.5


def test_synthetic_operators_build_and_run():
    import torch

    ops = synthetic_ops(Synthetic(seed=0, per_group=2))
    assert {features(k)[0] for k in ops} == {
        "conv", "conv1x1", "groupconv", "dwconv", "pool", "global_pool", "linear", "concat",
        "shuffle", "binary", "norm_act",
    }  # fmt: skip
    for sig in ops.values():
        module, size, batch = sig.build(1)
        with torch.no_grad():
            module.eval()(torch.randn(batch, *size))
