"""PL 2.6's public API reference, mapped: every module path and name a PL user imports either exists
here, or raises an ImportError that says it is left out on purpose (never a bare "cannot import")."""

from __future__ import annotations

import importlib

import pytest

# (PL module path relative to the package, names) that must be importable from lightning_kernel.trainer
OFFERED: list[tuple[str, tuple[str, ...]]] = [
    ("", ("Callback", "LightningDataModule", "LightningModule", "Trainer", "seed_everything", "__version__")),
    (
        "callbacks",
        (
            "BackboneFinetuning",
            "BaseFinetuning",
            "BasePredictionWriter",
            "BatchSizeFinder",
            "Callback",
            "Checkpoint",
            "EarlyStopping",
            "GradientAccumulationScheduler",
            "LambdaCallback",
            "LearningRateFinder",
            "LearningRateMonitor",
            "ModelCheckpoint",
            "ModelSummary",
            "OnExceptionCheckpoint",
            "ProgressBar",
            "RichModelSummary",
            "RichProgressBar",
            "TQDMProgressBar",
            "Timer",
        ),
    ),
    ("callbacks.batch_size_finder", ("BatchSizeFinder",)),
    ("callbacks.callback", ("Callback",)),
    ("callbacks.checkpoint", ("Checkpoint",)),
    ("callbacks.early_stopping", ("EarlyStopping", "EarlyStoppingReason")),
    ("callbacks.finetuning", ("BackboneFinetuning", "BaseFinetuning")),
    ("callbacks.gradient_accumulation_scheduler", ("GradientAccumulationScheduler",)),
    ("callbacks.lambda_function", ("LambdaCallback",)),
    ("callbacks.lr_finder", ("LearningRateFinder",)),
    ("callbacks.lr_monitor", ("LearningRateMonitor",)),
    ("callbacks.model_checkpoint", ("ModelCheckpoint",)),
    ("callbacks.model_summary", ("ModelSummary",)),
    ("callbacks.on_exception_checkpoint", ("OnExceptionCheckpoint",)),
    ("callbacks.prediction_writer", ("BasePredictionWriter",)),
    ("callbacks.progress", ("ProgressBar", "RichProgressBar", "TQDMProgressBar")),
    ("callbacks.progress.tqdm_progress", ("TQDMProgressBar",)),
    ("callbacks.progress.rich_progress", ("RichProgressBar", "RichProgressBarTheme")),
    ("callbacks.rich_model_summary", ("RichModelSummary",)),
    ("callbacks.timer", ("Timer",)),
    ("core", ("LightningDataModule", "LightningModule")),
    ("core.module", ("LightningModule",)),
    ("core.datamodule", ("LightningDataModule",)),
    ("core.hooks", ("CheckpointHooks", "DataHooks", "ModelHooks")),
    ("core.optimizer", ("LightningOptimizer",)),
    ("core.saving", ("load_hparams_from_yaml", "save_hparams_to_yaml")),
    ("demos.boring_classes", ("BoringDataModule", "BoringModel", "RandomDataset", "RandomIterableDataset")),
    ("loggers", ("CSVLogger", "Logger", "TensorBoardLogger")),
    ("loggers.csv_logs", ("CSVLogger",)),
    ("loggers.logger", ("DummyLogger", "Logger")),
    ("loggers.tensorboard", ("TensorBoardLogger",)),
    ("profilers", ("PassThroughProfiler", "Profiler", "SimpleProfiler")),
    ("trainer", ("Trainer",)),
    ("trainer.states", ("RunningStage", "TrainerFn", "TrainerState", "TrainerStatus")),
    ("tuner", ("Tuner",)),
    ("tuner.tuning", ("Tuner",)),
    (
        "utilities",
        (
            "AttributeDict",
            "CombinedLoader",
            "GradClipAlgorithmType",
            "LightningEnum",
            "disable_possible_user_warnings",
            "grad_norm",
            "is_picklable",
            "is_shared_filesystem",
            "measure_flops",
            "move_data_to_device",
            "rank_zero_deprecation",
            "rank_zero_info",
            "rank_zero_only",
            "rank_zero_warn",
            "suggested_max_num_workers",
        ),
    ),
    ("utilities.exceptions", ("MisconfigurationException",)),
    ("utilities.grads", ("grad_norm",)),
    ("utilities.model_summary", ("ModelSummary", "summarize")),
    ("utilities.parsing", ("AttributeDict", "is_picklable")),
    ("utilities.rank_zero", ("rank_zero_info", "rank_zero_only", "rank_zero_warn")),
    ("utilities.seed", ("isolate_rng",)),
    ("utilities.types", ("EVAL_DATALOADERS", "STEP_OUTPUT", "TRAIN_DATALOADERS", "OptimizerLRScheduler")),
    ("utilities.warnings", ("PossibleUserWarning",)),
]

NOT_OFFERED: list[tuple[str, str]] = [
    ("callbacks", "DeviceStatsMonitor"),
    ("callbacks", "ModelPruning"),
    ("callbacks", "SpikeDetection"),
    ("callbacks", "StochasticWeightAveraging"),
    ("callbacks", "ThroughputMonitor"),
    ("callbacks", "WeightAveraging"),
    ("callbacks", "EMAWeightAveraging"),
    ("loggers", "CometLogger"),
    ("loggers", "MLFlowLogger"),
    ("loggers", "NeptuneLogger"),
    ("loggers", "WandbLogger"),
    ("profilers", "AdvancedProfiler"),
    ("profilers", "PyTorchProfiler"),
    ("strategies", "DDPStrategy"),
    ("strategies", "FSDPStrategy"),
    ("accelerators", "CUDAAccelerator"),
    ("plugins", "MixedPrecision"),
    ("utilities", "find_shared_parameters"),
]


def _module(path: str) -> object:
    return importlib.import_module("lightning_kernel.trainer" + (f".{path}" if path else ""))


@pytest.mark.parametrize(("path", "names"), OFFERED, ids=[p or "top" for p, _ in OFFERED])
def test_pl_module_paths_and_names_exist(path: str, names: tuple[str, ...]) -> None:
    module = _module(path)
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing


@pytest.mark.parametrize(("path", "name"), NOT_OFFERED, ids=[f"{p}.{n}" for p, n in NOT_OFFERED])
def test_names_left_out_say_so(path: str, name: str) -> None:
    module = _module(path)
    with pytest.raises(ImportError, match=f"{name} is not offered by lightning_kernel.trainer: ") as info:
        exec(f"from lightning_kernel.trainer.{path} import {name}", {})
    assert info.value.name == name
    with pytest.raises(AttributeError):
        module.NoSuchName  # noqa: B018  (an unknown name stays a plain AttributeError)


def test_module_path_objects_are_the_package_objects() -> None:
    import lightning_kernel.trainer as pl
    from lightning_kernel.trainer import callbacks, loggers
    from lightning_kernel.trainer.callbacks.model_checkpoint import ModelCheckpoint
    from lightning_kernel.trainer.core.module import LightningModule
    from lightning_kernel.trainer.loggers.csv_logs import CSVLogger

    assert ModelCheckpoint is callbacks.ModelCheckpoint
    assert LightningModule is pl.LightningModule
    assert CSVLogger is loggers.CSVLogger


def _public_classes() -> list[type]:
    import lightning_kernel.trainer as pl
    from lightning_kernel.trainer import callbacks, loggers, profilers, tuner, utilities

    found: list[type] = [pl.Trainer, pl.LightningModule, pl.LightningDataModule, pl.LightningOptimizer]
    for package in (callbacks, loggers, profilers, tuner, utilities):
        found += [obj for name in package.__all__ if isinstance(obj := getattr(package, name), type)]
    return found


@pytest.mark.parametrize("cls", _public_classes(), ids=lambda c: c.__name__)
def test_public_signatures_carry_real_annotations(cls: type) -> None:
    # LightningCLI-style tools (jsonargparse) read __init__'s annotations: strings from postponed
    # evaluation would leave them unresolvable
    import inspect
    import typing

    init = cls.__init__
    if init is object.__init__:
        return
    strings = [p.name for p in inspect.signature(init).parameters.values() if isinstance(p.annotation, str)]
    assert strings == []
    typing.get_type_hints(init)  # resolves without NameError
