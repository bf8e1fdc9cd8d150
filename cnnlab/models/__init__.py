"""Layer 3: model families declared as data tables, and the registry. Importing registers all."""

from cnnlab.models import mobilenet_v2, shufflenet_v2  # noqa: F401  (register variants)
from cnnlab.models import shufflenet_v1  # noqa: F401
from cnnlab.models import mobilenet_v1  # noqa: F401  (registers its variants)
from cnnlab.models import xception  # noqa: F401  (registers its variants)
from cnnlab.models.net import Layer, Net, NetConfig, Plan
from cnnlab.models.registry import (
    PaperFigures,
    create_model,
    get_entry,
    list_models,
    model_config,
    register_model,
)

__all__ = [
    "Layer",
    "Net",
    "NetConfig",
    "PaperFigures",
    "Plan",
    "create_model",
    "get_entry",
    "list_models",
    "model_config",
    "register_model",
]
