"""Layer 2: units built from ops (ShuffleNet units, inverted residual, Xception block, head)."""
