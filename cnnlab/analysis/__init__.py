"""Layer 4: complexity (analytic, cross-checked by tracing)."""
