"""PL's module path `core.hooks`.

PL splits the LightningModule's hooks into three classes; here one class holds them all, so the three
names are that one class (``issubclass(LightningModule, DataHooks)`` holds either way).
"""

from .._module_hooks import ModuleHooks

ModelHooks = DataHooks = CheckpointHooks = ModuleHooks

__all__ = ["CheckpointHooks", "DataHooks", "ModelHooks"]
