"""PL's module path `utilities.warnings`."""

import warnings as _warnings

from .._rank_zero import PossibleUserWarning


def disable_possible_user_warnings(module: str = "") -> None:
    """Silence :class:`PossibleUserWarning` (from ``module`` only, if given)."""
    _warnings.filterwarnings("ignore", category=PossibleUserWarning, module=module)


__all__ = ["PossibleUserWarning", "disable_possible_user_warnings"]
