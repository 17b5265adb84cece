"""PL's module path `profilers`: ``Trainer(profiler="simple")`` and its classes.

``Profiler`` is the base to subclass (``start(action)``/``stop(action)``, or ``profile(action)``).
"""

from .._not_offered import not_offered
from .._profiler import PassThroughProfiler, SimpleProfiler

Profiler = PassThroughProfiler

__all__ = ["PassThroughProfiler", "Profiler", "SimpleProfiler"]

__getattr__ = not_offered(
    __name__,
    {
        "AdvancedProfiler": "profile with cProfile around trainer.fit() instead",
        "PyTorchProfiler": "use torch.profiler.profile around trainer.fit() instead",
        "XLAProfiler": "there is no XLA support",
    },
)
