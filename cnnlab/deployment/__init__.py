"""Layer 4c, deployment: BN folding, the shuffle fold, runtimes, CUDA graphs, backend selection.

Turns a model into its fastest measured inference module on this device. Imports measurement,
counting and the layers below.
"""

from cnnlab.deployment.select import deploy

__all__ = ["deploy"]
