"""cnnlab: CNN model research toolkit. FLOPs are not speed: count exactly, measure for real."""

from cnnlab._version import __version__
from cnnlab.counting.analytic import Complexity, complexity
from cnnlab.deployment.select import deploy
from cnnlab.deployment.timed import compare_deployed, measure_deployed
from cnnlab.measure.latency import compare_latency, measure_latency
from cnnlab.models import create_model, list_models
from cnnlab.models.timm_port import from_timm
from cnnlab.models.torchvision_port import from_torchvision
from cnnlab.ops.norm import convert_norm
from cnnlab.speedlab.breakdown import runtime_breakdown
from cnnlab.speedlab.guidelines.experiments import run_guidelines
from cnnlab.speedlab.guidelines.lint import lint
from cnnlab.speedlab.lut.table import build_lut, evaluate_lut, load_lut, predict_latency
from cnnlab.speedlab.roofline import machine_peak, roofline

__all__ = [
    "__version__",
    "Complexity",
    "build_lut",
    "compare_deployed",
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
    "measure_deployed",
    "measure_latency",
    "predict_latency",
    "roofline",
    "run_guidelines",
    "runtime_breakdown",
]
