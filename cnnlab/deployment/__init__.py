"""Layer 4c, deployment: BN folding, the shuffle fold, runtimes, CUDA graphs, backend selection,
and the latency of a deployed model (deploy first, then measure).

Turns a model into its fastest measured inference module on this device. Imports measurement,
counting and the layers below.
"""

from cnnlab.deployment.select import deploy
from cnnlab.deployment.timed import compare_deployed, measure_deployed

__all__ = ["compare_deployed", "deploy", "measure_deployed"]
