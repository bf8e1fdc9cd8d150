"""Per-kind latency regressors: a prediction for operators a latency table has never measured.

nn-Meter (Zhang et al., MobiSys 2021, §5) predicts each kernel with a regressor fitted per kernel
type on sampled configurations, with features such as input h/w, c_in, c_out, kernel, stride and
the kernel's FLOPs and memory access; a random forest gave its best accuracy. Here every operator
kind of :mod:`cnnlab.speedlab.lut.opsig` falls into one *group* (dense, 1x1, group and depthwise conv,
pooling, global pooling, linear, concat, shuffle, binary element-wise, norm/activation, other ATen
operators by name), and each group gets one of three models, chosen by 5-fold cross-validation on
the mean relative error (|predicted - measured| / measured) of the table's own entries:

- ``linear``: latency = a * MACs + b * memory access + c with a, b, c >= 0, fitted by
  non-negative least squares on relative error (a roofline-like cost law: compute + traffic +
  launch overhead; ShuffleNet v2 §2 names exactly these as what decides speed);
- ``power``: latency = e^c (1 + MACs)^a (1 + memory access)^b, least squares on log latency
  (smooth between the sampled shapes, where a forest is a staircase);
- ``forest``: a random forest (scikit-learn, fixed random_state) on log latency.

Cross-validation asks how well a model interpolates among the table's shapes, but a held-out
model's largest operators often lie beyond them (ShuffleNet v2 2x's 976 -> 2048 1x1 conv at 7x7).
There a forest is flat and the power law bends away: with the top 15% of a group's operators (by
MACs, memory access or output channels) held out of the fit, in three timing sessions here, the
mean |log(predicted / measured)| over 45 such cases was 0.33 for the forest, 0.28 for the power law
and 0.22 for the linear law. So a group whose chosen model is not linear also keeps its linear law
and the range of its samples (``RANGE_FEATURES``), and predicts by the linear law outside it.

MACs and memory access follow :mod:`cnnlab.ops.cost` (inputs read + outputs written + params read,
a BN fused after a conv counts zero, an activation one read + write per pass). A fitted model is
stored as plain numbers (the linear coefficients, or every tree's node arrays) and evaluated by
this module's own code, so a table is JSON only and loading it never unpickles anything.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import BadValue
from cnnlab.ops.act import activation_cost
from cnnlab.ops.cost import Cx, conv2d_cx, conv_out
from cnnlab.speedlab.lut.opsig import OpSig

FEATURES = ("c_in", "h", "w", "c_out", "k", "s", "g", "macs", "mem", "op")
RANGE_FEATURES = ("c_in", "h", "w", "c_out", "macs", "mem")  # beyond them: the linear law
_RANGE_COLUMNS = [FEATURES.index(name) for name in RANGE_FEATURES]
MIN_FOREST_SAMPLES = 12  # fewer samples: the 3-parameter linear law only
CV_FOLDS = 5
FOREST = {"n_estimators": 24, "min_samples_leaf": 2, "random_state": 0}
_BINARY = {"add", "sub", "mul", "div"}


# --- signatures back from keys ------------------------------------------------------------------


def _value(text: str) -> Any:
    """An attribute value of a key: ``3`` -> 3, ``3,1`` -> (3, 1), anything else kept as text."""
    parts = text.split(",")
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        return text
    return nums[0] if len(nums) == 1 else nums


def parse_key(key: str) -> tuple[str, tuple[tuple[int, ...], ...], dict[str, Any]]:
    """(kind, input shapes, attributes) of an operator key such as ``conv2d in=3x8x8 k=3 ...``."""
    kind, _, rest = key.partition(" ")
    shapes: tuple[tuple[int, ...], ...] = ()
    attrs: dict[str, Any] = {}
    for token in rest.split(" "):
        name, _, text = token.partition("=")
        if name == "in":
            shapes = tuple(
                () if s == "scalar" else tuple(int(v) for v in s.split("x"))
                for s in text.split(",")
            )
        elif name:
            attrs[name] = _value(text)
    return kind, shapes, attrs


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, tuple):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def group_of(kind: str, attrs: dict[str, Any], c_in: int) -> str:
    """The regressor group of an operator kind (nn-Meter fits one predictor per kernel type)."""
    head = kind.split("+")[0].removesuffix("_")
    if head == "conv2d":
        g, k = int(attrs.get("g", 1)), _pair(attrs.get("k", 1))
        if g == 1:
            return "conv1x1" if k == (1, 1) else "conv"
        return "dwconv" if g == c_in == int(attrs.get("out", -1)) else "groupconv"
    if head in ("max_pool2d", "avg_pool2d"):
        return "pool"
    if head in ("mean", "adaptive_avg_pool2d"):
        return "global_pool"
    if head in ("linear", "cat", "channel_shuffle"):
        return {"linear": "linear", "cat": "concat", "channel_shuffle": "shuffle"}[head]
    if head in _BINARY:
        return "binary"
    if "." not in head:  # bn, bn+act, activations: generic ATen operators are named aten.*
        return "norm_act"
    return f"other:{kind}"


# --- features: the signature plus analytic MACs and memory access (cnnlab.ops.cost) -------------


def _act_mem(parts: list[str], numel: int) -> int:
    """Memory access of fused activation parts: activation_cost's passes, else one read + write."""
    total = 0
    for p in parts:
        try:
            total += activation_cost(p.removesuffix("_"), numel)[1]
        except (KeyError, ValueError, TypeError):
            total += 2 * numel
    return total


def _conv_features(kind: str, x: tuple[int, ...], a: dict[str, Any]) -> dict[str, float]:
    """conv2d_cx's counts (cnnlab.ops.cost) for square or rectangular windows and strides."""
    c, h, w = x
    (kh, kw), (sh, _) = _pair(a["k"]), _pair(a["s"])
    out, g = int(a["out"]), int(a["g"])
    y = conv2d_cx(
        Cx(c, h, w), out, (kh, kw), stride=_pair(a["s"]), padding=_pair(a["p"]),
        dilation=_pair(a.get("d", 1)), groups=g, bias=bool(a.get("bias")),
    )  # fmt: skip
    parts = [p for p in kind.split("+")[1:] if p != "bn"]
    mem = y.memory_access + _act_mem(parts, y.c * y.h * y.w)
    feats = {"c_in": c, "h": h, "w": w, "c_out": out, "k": kh * kw, "s": sh, "g": g}
    return {**feats, "macs": y.macs, "mem": mem}


def _pool_out(x: tuple[int, ...], a: dict[str, Any]) -> int:
    c, h, w = x
    (kh, kw), (sh, sw), (ph, pw) = _pair(a["k"]), _pair(a["s"]), _pair(a["p"])
    ceil = bool(a.get("ceil", 0))
    return c * conv_out(h, kh, sh, ph, ceil=ceil) * conv_out(w, kw, sw, pw, ceil=ceil)


def features(key: str) -> tuple[str, dict[str, float]]:
    """(group, named features) of an operator key; every feature is a number."""
    kind, shapes, a = parse_key(key)
    x = shapes[0] if shapes else ()
    c, h, w = (tuple(x) + (1, 1, 1))[:3] if len(x) <= 3 else (_numel(x), 1, 1)
    group = group_of(kind, a, c)
    head = kind.split("+")[0]
    f: dict[str, float] = {"c_in": c, "h": h, "w": w, "c_out": c, "k": 1, "s": 1, "g": 1}
    n_in = sum(_numel(s) for s in shapes)
    if head == "conv2d":
        f.update(_conv_features(kind, x, a))
    elif group == "pool":
        kh, kw = _pair(a["k"])
        f.update(k=kh * kw, s=_pair(a["s"])[0], mem=n_in + _pool_out(x, a))
    elif group == "global_pool":
        f.update(mem=n_in + c)
    elif group == "linear":
        out, params = int(a["out"]), int(a["out"]) * c + (int(a["out"]) if a.get("bias") else 0)
        f.update(c_out=out, macs=c * out, mem=c + out + params)
    elif group in ("concat", "shuffle"):
        f.update(c_out=sum(s[0] for s in shapes), mem=2 * n_in)  # concat_cx, shuffle_cx
    elif group == "binary":
        f.update(mem=n_in + _numel(x))  # elementwise_cx: inputs read, one output written
    elif group == "norm_act":
        parts = kind.split("+")
        bn = 2 * _numel(x) + 2 * c if parts[0] == "bn" else 0  # norm_cx, unfolded
        f.update(mem=bn + _act_mem([p for p in parts if p != "bn"], _numel(x)))
    else:
        f.update(mem=2 * n_in)
    f.setdefault("macs", 0)
    f["op"] = zlib.crc32(kind.encode()) % 997  # a stable code of the exact kind, for the trees
    return group, f


def vector(f: dict[str, float]) -> list[float]:
    return [float(f[name]) for name in FEATURES]


# --- the two models, as plain numbers -----------------------------------------------------------


def _design(X: np.ndarray) -> np.ndarray:
    """Columns (MACs, memory access, 1) of the linear cost law."""
    return np.column_stack(
        [X[:, FEATURES.index("macs")], X[:, FEATURES.index("mem")], np.ones(len(X))]
    )


def fit_linear(X: np.ndarray, y: np.ndarray) -> dict:
    """a*MACs + b*mem + c, a, b, c >= 0, least squares on relative error (rows scaled by 1/y)."""
    from scipy.optimize import nnls  # half a second of imports: only when a table is fitted

    A = _design(X) / y[:, None]
    scale = np.maximum(np.abs(A).max(axis=0), 1e-300)  # conditioning: columns to unit size
    coef, _ = nnls(A / scale, np.ones(len(y)))
    coef = coef / scale
    return {"model": "linear", "coef": [float(v) for v in coef]}


def _log_design(X: np.ndarray) -> np.ndarray:
    """Columns (log(1 + MACs), log(1 + memory access), 1) of the power law."""
    return np.log1p(np.maximum(_design(X), 0.0)) + np.array([0.0, 0.0, 1.0 - np.log(2.0)])


def fit_power(X: np.ndarray, y: np.ndarray) -> dict:
    """ms = e^c (1 + MACs)^a (1 + mem)^b, least squares in log space (a smooth extrapolator)."""
    coef, *_ = np.linalg.lstsq(_log_design(X), np.log(y), rcond=None)
    return {"model": "power", "coef": [float(v) for v in coef]}


def fit_forest(X: np.ndarray, y: np.ndarray) -> dict:
    """A random forest on log latency, every tree kept as its node arrays."""
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(**FOREST).fit(X.astype(np.float32), np.log(y))
    trees = []
    for est in forest.estimators_:
        t = est.tree_
        trees.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "value": t.value[:, 0, 0].tolist(),
            }
        )
    return {"model": "forest", "trees": trees}


def _tree_value(tree: dict, x: np.ndarray) -> float:
    node = 0
    left, right = tree["left"], tree["right"]
    while left[node] != -1:
        node = left[node] if x[tree["feature"][node]] <= tree["threshold"][node] else right[node]
    return tree["value"][node]


def predict_model(model: dict, X: np.ndarray) -> np.ndarray:
    """Latency (ms) of feature rows under a fitted model in its stored (JSON) form."""
    X = np.asarray(X, dtype=np.float64)
    if model["model"] == "linear":
        return _design(X) @ np.asarray(model["coef"], dtype=np.float64)
    if model["model"] == "power":
        return np.exp(_log_design(X) @ np.asarray(model["coef"], dtype=np.float64))
    if model["model"] == "forest":
        X32 = X.astype(np.float32)  # scikit-learn's trees split float32 features
        logs = [[_tree_value(t, row) for t in model["trees"]] for row in X32]
        return np.exp(np.mean(np.asarray(logs, dtype=np.float64), axis=1))
    raise BadValue(f"unknown regressor model {model['model']!r}; rebuild the table")


def _cv_error(fit, X: np.ndarray, y: np.ndarray) -> float:
    """Mean relative error over CV_FOLDS shuffled folds (fixed seed)."""
    order = list(range(len(y)))
    random.Random(0).shuffle(order)
    errors = []
    for fold in range(CV_FOLDS):
        test = order[fold::CV_FOLDS]
        train = [i for i in order if i not in set(test)]
        model = fit(X[train], y[train])
        errors += list(np.abs(predict_model(model, X[test]) - y[test]) / y[test])
    return float(np.mean(errors))


FITS = {"linear": fit_linear, "power": fit_power, "forest": fit_forest}


def fit_group(X: np.ndarray, y: np.ndarray) -> dict:
    """The best of the linear law, the power law and the forest by 5-fold CV relative error.

    With fewer than MIN_FOREST_SAMPLES samples the linear law is fitted without choosing.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) < MIN_FOREST_SAMPLES:
        return {**fit_linear(X, y), "samples": len(y), "cv_error": None}
    cv = {name: _cv_error(fit, X, y) for name, fit in FITS.items()}
    best = min(cv, key=cv.get)
    model = {**FITS[best](X, y), "samples": len(y), "cv_error": cv[best], "cv": cv}
    if best != "linear":
        cols = X[:, _RANGE_COLUMNS]
        model["range"] = {"low": cols.min(axis=0).tolist(), "high": cols.max(axis=0).tolist()}
        model["outside"] = fit_linear(X, y)
    return model


def predict_group(model: dict, X: np.ndarray) -> np.ndarray:
    """A group's latency (ms) of feature rows: its chosen model, and for rows beyond the range of
    its samples its linear law (where the group kept one: see the module's docstring)."""
    X = np.asarray(X, dtype=np.float64)
    ms = predict_model(model, X)
    if "range" in model:
        cols = X[:, _RANGE_COLUMNS]
        low, high = np.asarray(model["range"]["low"]), np.asarray(model["range"]["high"])
        outside = ((cols < low) | (cols > high)).any(axis=1)
        if outside.any():
            ms[outside] = predict_model(model["outside"], X[outside])
    return ms


def fit_regressors(entries: dict[str, float]) -> dict[str, dict]:
    """One fitted model per group from ``{operator key: median ms}`` (positive latencies only)."""
    by_group: dict[str, tuple[list, list]] = {}
    for key, ms in entries.items():
        if ms > 0:
            group, f = features(key)
            xs, ys = by_group.setdefault(group, ([], []))
            xs.append(vector(f))
            ys.append(ms)
    return {g: fit_group(np.array(xs), np.array(ys)) for g, (xs, ys) in sorted(by_group.items())}


def predict_key(regressors: dict[str, dict], key: str) -> tuple[str, float | None]:
    """(group, predicted ms) of one operator; None when its group has no regressor."""
    group, f = features(key)
    model = regressors.get(group)
    if model is None:
        return group, None
    return group, float(predict_group(model, np.array([vector(f)]))[0])


def check_regressors(data: object, source: str) -> dict[str, dict]:
    """Regressors read from JSON, checked to be plain numbers of a known model."""
    if not isinstance(data, dict):
        raise BadValue(f"{source}: 'regressors' must be an object; rebuild the table")
    for group, m in data.items():
        ok = isinstance(m, dict) and (
            (m.get("model") in ("linear", "power") and _numbers(m.get("coef"), 3))
            or (m.get("model") == "forest" and isinstance(m.get("trees"), list) and m["trees"])
        )
        if ok and "range" in m:  # optional: tables built before it existed have neither
            r, outside = m["range"], m.get("outside")
            n = len(RANGE_FEATURES)
            ok = (
                isinstance(r, dict)
                and _numbers(r.get("low"), n)
                and _numbers(r.get("high"), n)
                and isinstance(outside, dict)
                and outside.get("model") == "linear"
                and _numbers(outside.get("coef"), 3)
            )
        if not ok:
            raise BadValue(f"{source}: regressor {group!r} is malformed; rebuild the table")
    return data


def _numbers(v: object, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) for x in v)


@dataclass(frozen=True)
class Synthetic:
    """Synthetic operators measured to train the regressors: a seeded sample per group."""

    seed: int = 0
    per_group: int = 16


# Channel ranges per resolution of the 224x224 ImageNet families (ShuffleNet, MobileNet).
_LEVELS = {112: (16, 96), 56: (24, 192), 28: (48, 384), 14: (96, 768), 7: (160, 1024)}


def _channels(rng: random.Random, h: int, multiple: int = 8) -> int:
    lo, hi = _LEVELS[h]
    c = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return max(multiple, int(round(c / multiple)) * multiple)


def synthetic_ops(spec: Synthetic = Synthetic()) -> dict[str, OpSig]:
    """A seeded sample of operators per group (shapes of 224x224 ImageNet models), by key."""
    rng = random.Random(spec.seed)
    sigs: list[OpSig] = []

    def conv(kind, c, h, out, k, s, g):
        attrs = (
            ("out", out),
            ("k", k),
            ("s", s),
            ("p", k // 2),
            ("d", 1),
            ("g", g),
            ("bias", False),
        )
        sigs.append(OpSig(kind, ((c, h, h),), attrs))

    acts = ["conv2d+bn+relu_", "conv2d+bn", "conv2d+bn+relu6_"]
    for _ in range(spec.per_group):
        h = rng.choice(list(_LEVELS))
        c, out = _channels(rng, h), _channels(rng, h)
        conv(rng.choice(acts), c, h, out, 3, rng.choice((1, 2)), 1)
        h = rng.choice(list(_LEVELS))
        conv(rng.choice(acts), _channels(rng, h), h, _channels(rng, h), 1, 1, 1)
        h, g = rng.choice(list(_LEVELS)), rng.choice((2, 3, 4, 8))
        conv(rng.choice(acts), _channels(rng, h, 8 * g), h, _channels(rng, h, 8 * g), 1, 1, g)
        h = rng.choice(list(_LEVELS))
        c = _channels(rng, h)
        conv(rng.choice(acts), c, h, c, rng.choice((3, 5)), rng.choice((1, 2)), c)
        h = rng.choice(list(_LEVELS))
        sigs += _cheap_ops(rng, h, _channels(rng, h))
    return {s.key: s for s in sigs}


def _cheap_ops(rng: random.Random, h: int, c: int) -> list[OpSig]:
    """One each of the non-conv groups at (c, h, h)."""
    x = (c, h, h)
    pool = rng.choice(
        [
            ("max_pool2d", (("k", 3), ("s", 2), ("p", 1), ("d", 1), ("ceil", False))),
            ("avg_pool2d", (("k", 3), ("s", 2), ("p", 1), ("ceil", False), ("pad_in_mean", True))),
        ]
    )
    c2, g = _channels(rng, h), rng.choice((2, 3, 4))
    return [
        OpSig(pool[0], (x,), pool[1]),
        OpSig("mean", (x,), (("dims", (2, 3)), ("keepdim", False))),
        OpSig("linear", ((c * 2,),), (("out", rng.choice((10, 100, 1000))), ("bias", True))),
        OpSig("cat", (x, (c2, h, h)), (("dim", 1),)),
        OpSig("channel_shuffle", ((_channels(rng, h, 8 * g), h, h),), (("g", g),)),
        OpSig(rng.choice(["add", "mul"]), (x, x)),
        OpSig(rng.choice(["relu", "relu_", "bn+relu_", "bn", "sigmoid", "hardswish"]), (x,)),
    ]
