"""Layer 3: model families declared as data tables, and the registry. Importing registers all."""

from cnnlab.models import (  # noqa: F401  (importing a family registers its variants)
    amoebanet,
    clcnet,
    condensenet,
    densenet,
    dsod,
    fractalnet,
    googlenet,
    gunn,
    igcnet,
    inception_v3,
    inception_v4,
    mobilenet_v1,
    mobilenet_v2,
    nasnet,
    pnasnet,
    residual_attention,
    resnet,
    shufflenet_v1,
    shufflenet_v2,
    xception,
)
from cnnlab.models.net import Layer, Net, NetConfig, Plan
from cnnlab.models.registry import (
    PaperFigures,
    create_model,
    get_entry,
    input_size_of,
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
    "input_size_of",
    "list_models",
    "model_config",
    "register_model",
]
