"""Layer 6: the cnnlab command line."""
