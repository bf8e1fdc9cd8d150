"""Parameter groups and initialisation recipes of the large-batch papers.

- No weight decay on BN and bias parameters (Goyal et al. 2017 apply it to weights only; LARS
  excludes BN/bias from adaptation and decay, You et al. 2017).
- Zero-initialised gamma in the last BN of each residual branch, so each residual block starts as
  the identity (Goyal et al. 2017, §5.1). Blocks that own such a BN expose ``zero_init_last()``.
"""

from __future__ import annotations

from torch import nn

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters that take no weight decay: every bias and every norm parameter."""
    names = set()
    for module_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            if isinstance(module, NORM_TYPES) or p_name == "bias":
                names.add(f"{module_name}.{p_name}" if module_name else p_name)
    return names


def param_groups(model: nn.Module, weight_decay: float, no_wd_bn_bias: bool) -> list[dict]:
    """[weights with decay, BN/bias without] (LARS also skips its adaptation on the latter)."""
    skip = no_decay_names(model) if no_wd_bn_bias else set()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and n not in skip]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and n in skip]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if rest:
        groups.append({"params": rest, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def zero_init_last_gamma(model: nn.Module) -> int:
    """Call ``zero_init_last()`` on every residual block that has one; returns how many."""
    blocks = [m for m in model.modules() if callable(getattr(m, "zero_init_last", None))]
    for m in blocks:
        m.zero_init_last()
    return len(blocks)
