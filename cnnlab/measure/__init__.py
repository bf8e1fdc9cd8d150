"""Layer 4b, measurement: latency after warm-up, side-by-side comparison, the C allocator.

Times a module as it is given; it never deploys one (the deployment layer above does, then
measures). Imports counting and the layers below it.
"""

from cnnlab.measure.latency import Contender, Latency, compare_latency, measure_latency

__all__ = ["Contender", "Latency", "compare_latency", "measure_latency"]
