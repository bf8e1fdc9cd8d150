"""Layer 4b, measurement: latency after warm-up, side-by-side comparison, the C allocator, and
the checked ``Request`` every entry point builds once and passes down.

Times a module as it is given; it never deploys one (the deployment layer above does, then
measures). Imports counting and the layers below it.
"""

from cnnlab.measure.latency import Contender, Latency, compare_latency, measure_latency
from cnnlab.measure.request import Request, check_request

__all__ = ["Contender", "Latency", "Request", "check_request", "compare_latency", "measure_latency"]
