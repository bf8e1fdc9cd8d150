"""Latency lookup tables (nn-Meter, Zhang et al. 2021): operator signatures, measured tables,
and per-kind regressors for operators a table has not measured."""
