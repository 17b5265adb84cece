"""PL's module path `utilities.grads`: ``grad_norm``."""

import torch
from torch import Tensor, nn


def grad_norm(
    module: nn.Module, norm_type: float | int | str, group_separator: str = "/"
) -> dict[str, Tensor]:
    """The ``norm_type`` norm of each parameter's gradient, and of all of them together.

    Keys are ``grad_{p}_norm{sep}{parameter name}`` and ``grad_{p}_norm_total`` (``p`` as a float, ``inf``
    for the max norm), ready for ``self.log_dict`` in ``on_before_optimizer_step``. Parameters without a
    gradient are left out; with none at all, the dict is empty.
    """
    p = float(norm_type)
    if p <= 0:
        raise ValueError(f"`norm_type` must be a positive number or 'inf' (infinity norm). Got {norm_type}")
    norms = {
        f"grad_{p}_norm{group_separator}{name}": torch.linalg.vector_norm(param.grad.detach(), ord=p)
        for name, param in module.named_parameters()
        if param.grad is not None
    }
    if norms:
        norms[f"grad_{p}_norm_total"] = torch.linalg.vector_norm(torch.stack(list(norms.values())), ord=p)
    return norms


__all__ = ["grad_norm"]
