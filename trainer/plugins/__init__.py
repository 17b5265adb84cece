"""PL's module path `plugins`: not offered; precision is ``Trainer(precision=...)``, checkpoints go through fsspec."""

from .._not_offered import not_offered

__getattr__ = not_offered(
    __name__,
    {
        name: "plugins are not supported: set Trainer(precision=...) and save checkpoints to any fsspec URL"
        for name in (
            "AsyncCheckpointIO",
            "BitsandbytesPrecision",
            "CheckpointIO",
            "DeepSpeedPrecision",
            "DoublePrecision",
            "FSDPPrecision",
            "HalfPrecision",
            "MixedPrecision",
            "Precision",
            "TorchCheckpointIO",
            "TransformerEnginePrecision",
            "XLACheckpointIO",
            "XLAPrecision",
        )
    },
)
