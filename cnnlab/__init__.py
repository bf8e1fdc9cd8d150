"""cnnlab: CNN model research toolkit. FLOPs are not speed: count exactly, measure for real."""

from cnnlab.analysis.breakdown import runtime_breakdown
from cnnlab.analysis.complexity import Complexity, complexity
from cnnlab.analysis.deploy import deploy
from cnnlab.analysis.guidelines import run_guidelines
from cnnlab.analysis.latency import compare_latency, measure_latency
from cnnlab.analysis.lint import lint
from cnnlab.analysis.lut import build_lut, evaluate_lut, load_lut, predict_latency
from cnnlab.analysis.roofline import machine_peak, roofline
from cnnlab.models import create_model, list_models
from cnnlab.models.timm_port import from_timm
from cnnlab.models.torchvision_port import from_torchvision
from cnnlab.ops.norm import convert_norm

__version__ = "0.1.0"

__all__ = [
    "Complexity",
    "build_lut",
    "compare_latency",
    "complexity",
    "convert_norm",
    "create_model",
    "deploy",
    "evaluate_lut",
    "from_timm",
    "from_torchvision",
    "lint",
    "list_models",
    "load_lut",
    "machine_peak",
    "measure_latency",
    "predict_latency",
    "roofline",
    "run_guidelines",
    "runtime_breakdown",
]
