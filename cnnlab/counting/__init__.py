"""Layer 4a, counting: params, MACs, activations and memory access, analytic and traced.

The analytic count sums the cost models that live beside each block; the traced count runs the
model and checks them. Imports only the layers below (ops, blocks, models).
"""

from cnnlab.counting.analytic import Complexity, complexity

__all__ = ["Complexity", "complexity"]
