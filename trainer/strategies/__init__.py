"""PL's module path `strategies`: not offered as classes.

Pick the strategy by name: ``Trainer(strategy="ddp")``, ``"ddp_spawn"``, ``"ddp_find_unused_parameters_true"``.
"""

from .._not_offered import not_offered

_BY_NAME = (
    "pass the strategy by name (Trainer(strategy='ddp'), 'ddp_spawn', 'ddp_find_unused_parameters_true')"
)

__getattr__ = not_offered(
    __name__,
    {
        name: _BY_NAME
        for name in (
            "DDPStrategy",
            "DeepSpeedStrategy",
            "FSDPStrategy",
            "ModelParallelStrategy",
            "ParallelStrategy",
            "SingleDeviceStrategy",
            "SingleDeviceXLAStrategy",
            "Strategy",
            "StrategyRegistry",
            "XLAStrategy",
        )
    },
)
