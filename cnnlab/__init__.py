"""cnnlab: CNN model research toolkit. FLOPs are not speed: count exactly, measure for real."""

from cnnlab.analysis.complexity import Complexity, complexity
from cnnlab.analysis.deploy import deploy
from cnnlab.analysis.latency import compare_latency, measure_latency
from cnnlab.models import create_model, list_models
from cnnlab.models.torchvision_port import from_torchvision

__version__ = "0.1.0"

__all__ = [
    "Complexity",
    "compare_latency",
    "complexity",
    "create_model",
    "deploy",
    "from_torchvision",
    "list_models",
    "measure_latency",
]
