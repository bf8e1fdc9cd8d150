"""Checkpoints: one safetensors file, written atomically, loaded without unpickling anything.

The file holds the model (and EMA) weights, the optimizer's tensors and the RNG states as
tensors; everything else (the run's config, step, epoch and position in the epoch, optimizer
hyper-parameters, Python's RNG) is JSON in the safetensors header's metadata. The write goes to a
temporary file beside the target and is renamed into place, so a run killed while saving keeps
its previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from cnnlab._io import atomic_write
from cnnlab.errors import BadValue

FORMAT = "cnnlab-checkpoint-1"
CHECKPOINT_NAME = "checkpoint.safetensors"
META_KEYS = ("config", "world_size", "small_input", "state", "optimizer", "scaler", "rng")


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every RNG the loop draws from: torch (CPU, CUDA) as tensors, Python and numpy as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    meta = {"python": [py[0], list(py[1]), py[2]], "numpy": [kind, int(pos), has_gauss, gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))


def optimizer_split(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state_dict as (tensors, JSON): per-parameter tensors apart from the rest."""
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """The inverse of :func:`optimizer_split`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write tensors + JSON metadata to ``path`` atomically (temporary file, then rename)."""
    payload = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = save(payload, metadata={"format": FORMAT, "meta": json.dumps(meta)})
    return atomic_write(path, data)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a cnnlab checkpoint; anything else is refused with the reason."""
    path = Path(path)
    if path.is_dir():
        raise BadValue(
            f"checkpoint {path} is a folder; pass the checkpoint file of a run, "
            f"such as {path / 'checkpoint.safetensors'}"
        )
    if not path.is_file():
        raise BadValue(f"checkpoint {path} does not exist; pass the checkpoint file of a run")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, OSError, ValueError) as e:
        raise BadValue(f"{path} is not a readable safetensors checkpoint: {e}") from None
    extra = header.get("__metadata__") or {}
    if extra.get("format") != FORMAT:
        raise BadValue(f"{path} is not a cnnlab training checkpoint (format {FORMAT} expected)")
    try:
        meta = json.loads(extra.get("meta", "null"))
    except ValueError:
        meta = None
    missing = [k for k in META_KEYS if k not in meta] if isinstance(meta, dict) else ["all"]
    if missing:
        raise BadValue(
            f"{path} is not a cnnlab training checkpoint: no {', '.join(missing)} metadata; "
            f"pass the checkpoint.safetensors a cnnlab train run wrote"
        )
    return tensors, meta


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.``, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
