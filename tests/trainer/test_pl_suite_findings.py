"""Behaviours where PyTorch Lightning's own test suite, run against this Trainer, found a difference
that a user would hit; each test here is ours, in PL's style."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning_kernel.trainer as pl
import pytest
import torch
from helpers import BoringDataModule, BoringModel, RandomDataset, quiet_trainer
from lightning_kernel.trainer.profilers import PassThroughProfiler, SimpleProfiler
from torch.utils.data import IterableDataset

RANK_ZERO = "lightning_kernel.trainer.utilities.rank_zero"

# -- barebones -----------------------------------------------------------------------------------------------


def test_barebones_turns_everything_off_and_says_so(caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger=RANK_ZERO):
        trainer = pl.Trainer(barebones=True)
    assert "You are running in `Trainer(barebones=True)` mode." in caplog.text
    assert " - Profiling: `Trainer(profiler=...)`" in caplog.text
    assert (
        trainer.loggers == [] and trainer.checkpoint_callbacks == [] and trainer.progress_bar_callback is None
    )
    assert trainer.log_every_n_steps == 0 and trainer.num_sanity_val_steps == 0
    assert isinstance(trainer.profiler, PassThroughProfiler)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("enable_checkpointing", True, "Checkpointing can impact raw speed"),
        ("logger", True, "Logging can impact raw speed"),
        ("enable_progress_bar", True, "The progress bar can impact raw speed"),
        ("enable_model_summary", True, "Model summary can impact raw speed"),
        ("log_every_n_steps", 1, "Logging can impact raw speed"),
        ("num_sanity_val_steps", 1, "Sanity checking can impact raw speed"),
        ("fast_dev_run", 1, "Development run is not meant for raw speed evaluation"),
        ("detect_anomaly", True, "Anomaly detection can impact raw speed"),
        ("profiler", "simple", "Profiling can impact raw speed"),
    ],
)
def test_barebones_refuses_a_feature_by_name(argument: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        pl.Trainer(barebones=True, **{argument: value})
    assert str(info.value) == (
        f"`Trainer(barebones=True, {argument}={value!r})` was passed. {message} so it is disabled in barebones mode."
    )


def test_barebones_fit_runs_and_self_log_only_warns(tmp_path: Path, caplog: Any) -> None:
    class Logs(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("loss", 1.0)
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(barebones=True, default_root_dir=str(tmp_path), max_epochs=1)
    warns = pytest.warns(UserWarning, match=r"`Trainer\(barebones=True\)` is configured")
    with caplog.at_level(logging.INFO, logger=RANK_ZERO), warns:
        trainer.fit(Logs(batches=2))
    assert "`Trainer(barebones=True)` started running." in caplog.text
    assert trainer.global_step == 2 and trainer.callback_metrics == {}


def test_self_log_without_a_trainer_warns() -> None:
    with pytest.warns(UserWarning, match="the `self.trainer` reference is not registered on the model yet"):
        BoringModel().log("x", 1.0)


# -- datamodules ------------------------------------------------------------------------------------------


class Stream(IterableDataset[torch.Tensor]):
    def __iter__(self) -> Any:
        return iter(torch.randn(4, 32))


def test_from_datasets_makes_pls_dataloaders() -> None:
    train, val = RandomDataset(32, 8), [RandomDataset(32, 4), Stream()]
    dm = pl.LightningDataModule.from_datasets(train, val, batch_size=4, num_workers=0)
    loader = dm.train_dataloader()
    assert loader.dataset is train and loader.batch_size == 4 and loader.pin_memory
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)  # train shuffles
    first, second = dm.val_dataloader()
    assert isinstance(first.sampler, torch.utils.data.SequentialSampler) and second.dataset is val[1]
    with pytest.raises(pl.MisconfigurationException, match="`test_dataloader` must be implemented"):
        dm.test_dataloader()


def test_from_datasets_passes_what_init_takes() -> None:
    class Takes(pl.LightningDataModule):
        def __init__(self, other: int, batch_size: int = 1) -> None:
            super().__init__()
            self.other, self.batch_size = other, batch_size

    dm = Takes.from_datasets(RandomDataset(32, 8), batch_size=4, num_workers=2, other=5)
    assert (dm.other, dm.batch_size) == (5, 4)  # num_workers is not one of its arguments: not passed
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'other'"):
        Takes.from_datasets(RandomDataset(32, 8))

    class TakesAny(pl.LightningDataModule):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__()
            self.kwargs = kwargs

    assert TakesAny.from_datasets(batch_size=3, num_workers=1).kwargs == {"batch_size": 3, "num_workers": 1}


def test_datamodule_hooks_are_profiled(tmp_path: Path) -> None:
    class Data(BoringDataModule):
        def prepare_data(self) -> None:
            pass

        def state_dict(self) -> dict[str, Any]:
            return {"x": 1}

    trainer = quiet_trainer(
        tmp_path, profiler="simple", max_steps=1, limit_val_batches=0, enable_checkpointing=True
    )
    trainer.fit(BoringModel(), datamodule=Data())
    profiler = trainer.profiler
    assert isinstance(profiler, SimpleProfiler)
    for hook in ("prepare_data", "setup", "state_dict", "teardown"):
        assert len(profiler.recorded_durations[f"[LightningDataModule]Data.{hook}"]) == 1


# -- Trainer arguments -----------------------------------------------------------------------------------


def test_pl_trainer_environment_variables_are_defaults(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PL_TRAINER_LOGGER", "False")
    monkeypatch.setenv("PL_TRAINER_MAX_STEPS", "7")
    monkeypatch.setenv("PL_TRAINER_DEFAULT_ROOT_DIR", str(tmp_path))  # not a literal: kept as the string
    trainer = pl.Trainer()
    assert trainer.logger is None and trainer.max_steps == 7 and trainer.default_root_dir == str(tmp_path)
    assert pl.Trainer(max_steps=42, logger=True).max_steps == 42  # what is passed wins


def test_max_epochs_is_decided_when_fit_starts(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_epochs=None, max_steps=1)
    assert trainer.max_epochs is None
    trainer.fit(BoringModel())
    assert trainer.max_epochs == -1  # max_steps limits the run: no epoch limit


def test_fast_dev_run_1_is_true_and_its_logger_takes_any_call(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers.logger import DummyLogger

    class UsesExperiment(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.logger.experiment.add_histogram("w", self.layer.weight)  # a TensorBoard call, dropped
            self.logger.experiment[0].anything(1)
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(default_root_dir=str(tmp_path), fast_dev_run=1, enable_progress_bar=False)
    assert trainer.fast_dev_run is True
    assert isinstance(trainer.logger, DummyLogger)
    trainer.fit(UsesExperiment())
    assert trainer.global_step == 1
    assert pl.Trainer(fast_dev_run=3, logger=False).fast_dev_run == 3


def test_overfit_batches_makes_every_sampler_sequential_and_says_so(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader, Sampler, SequentialSampler

    class InOrderButNotSequential(Sampler[int]):
        def __init__(self, n: int) -> None:
            self.n = n

        def __iter__(self) -> Any:
            return iter(range(self.n))

        def __len__(self) -> int:
            return self.n

    class Model(BoringModel):
        def train_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 8), sampler=InOrderButNotSequential(8))

        def val_dataloader(self) -> Any:
            return DataLoader(RandomDataset(32, 8), sampler=InOrderButNotSequential(8))

    trainer = quiet_trainer(tmp_path, overfit_batches=2)
    with pytest.warns(UserWarning) as record:
        trainer.fit(Model())
    messages = [str(w.message) for w in record]
    for kind in ("train", "val"):
        assert (
            f"You requested to overfit but enabled {kind} dataloader shuffling. We are turning off the {kind} "
            "dataloader shuffling for you."
        ) in messages
    assert isinstance(trainer.train_dataloader.sampler, SequentialSampler)
    assert isinstance(trainer.val_dataloaders.sampler, SequentialSampler)


# -- self.log ---------------------------------------------------------------------------------------------


def test_a_torchmetrics_metric_logs_its_batch_value_and_its_epoch_compute(tmp_path: Path) -> None:
    torchmetrics = pytest.importorskip("torchmetrics")

    class Model(BoringModel):
        def __init__(self) -> None:
            super().__init__(batches=4)
            self.total = torchmetrics.SumMetric()
            self.steps: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.total(float(batch_idx + 1))  # forward: its batch value is this batch's
            self.log("total", self.total, on_step=True, on_epoch=True)
            return super().training_step(batch, batch_idx)

        def on_train_batch_end(self, *args: Any) -> None:
            self.steps.append(float(self.trainer.callback_metrics["total_step"]))

    model = Model()
    trainer = quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0)
    trainer.fit(model)
    assert model.steps == [1.0, 2.0, 3.0, 4.0] * 2
    assert float(trainer.callback_metrics["total_epoch"]) == 10.0  # reset between epochs, as in PL
    assert model.total.update_count == 0  # and after the last one


def test_a_logged_metric_must_be_an_attribute_of_the_module(tmp_path: Path) -> None:
    torchmetrics = pytest.importorskip("torchmetrics")

    class Loose(BoringModel):
        def __init__(self, keep: bool) -> None:
            super().__init__()
            if keep:
                self.kept = torchmetrics.MeanMetric()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            metric = torchmetrics.MeanMetric()
            metric(1.0)
            self.log("m", metric)
            return super().training_step(batch, batch_idx)

    with pytest.raises(pl.MisconfigurationException, match="setting an attribute for the metric in your"):
        quiet_trainer(tmp_path).fit(Loose(keep=False))
    with pytest.raises(
        pl.MisconfigurationException, match=r"metric_attribute=name\)` where `name` is one of \['kept'\]"
    ):
        quiet_trainer(tmp_path).fit(Loose(keep=True))


def test_log_dict_of_a_metric_collection_logs_each_metric(tmp_path: Path) -> None:
    torchmetrics = pytest.importorskip("torchmetrics")

    class Model(BoringModel):
        def __init__(self) -> None:
            super().__init__(batches=2)
            self.metrics = torchmetrics.MetricCollection(
                {"mean": torchmetrics.MeanMetric(), "max": torchmetrics.MaxMetric()}, prefix="x_"
            )

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.metrics(torch.tensor(float(batch_idx)))
            self.log_dict(self.metrics, on_step=False, on_epoch=True)
            return super().training_step(batch, batch_idx)

    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(Model())
    assert {k: float(v) for k, v in trainer.callback_metrics.items()} == {"x_mean": 0.5, "x_max": 1.0}


def test_a_callback_logs_with_self_log(tmp_path: Path) -> None:
    class Logs(pl.Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.log("at_start", 1.0)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.log("at_epoch_start", 2.0)

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            self.log("at_batch_end", 3.0)

    trainer = quiet_trainer(tmp_path, callbacks=[Logs()], limit_train_batches=1, limit_val_batches=0)
    trainer.fit(BoringModel())
    # what on_train_start logs counts in the first epoch: results are emptied after an epoch, not before
    assert {k: float(v) for k, v in trainer.callback_metrics.items()} == {
        "at_start": 1.0,
        "at_epoch_start": 2.0,
        "at_batch_end": 3.0,
    }


def test_what_on_test_start_logs_is_in_the_results(tmp_path: Path) -> None:
    class Model(BoringModel):
        def on_test_start(self) -> None:
            self.log("started", 5.0)

    (result,) = quiet_trainer(tmp_path).test(Model(), verbose=False)
    assert result["started"] == 5.0 and "test_loss" in result


def test_unsuffixed_keys_belong_to_the_loader_that_logged_them(tmp_path: Path) -> None:
    class Model(BoringModel):
        def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.log("shared", float(dataloader_idx + 1))
            self.log(f"own_{dataloader_idx}", 7.0, add_dataloader_idx=False)

        def test_dataloader(self) -> Any:
            return [self._loader(3), self._loader(4)]

    first, second = quiet_trainer(tmp_path).test(Model(), verbose=False)
    assert first == {"shared/dataloader_idx_0": 1.0, "own_0": 7.0}
    assert second == {"shared/dataloader_idx_1": 2.0, "own_1": 7.0}


@pytest.mark.parametrize(
    ("hook", "kwargs", "error", "message"),
    [
        (
            "training_step",
            {"value": {"a": 1}},
            ValueError,
            "`self.log(foo, {'a': 1})` was called, but `dict` values",
        ),
        (
            "training_step",
            {"name": "foo/dataloader_idx_0"},
            pl.MisconfigurationException,
            "with the key `foo/data",
        ),
        (
            "training_step",
            {"on_step": False, "on_epoch": False},
            pl.MisconfigurationException,
            "is not useful",
        ),
        (
            "on_fit_start",
            {},
            pl.MisconfigurationException,
            "You can't `self.log()` inside `on_fit_start`. HINT",
        ),
        (
            "on_train_epoch_end",
            {"on_step": True},
            pl.MisconfigurationException,
            "You can't `self.log(on_step=True)`",
        ),
    ],
)
def test_log_errors_are_pls(
    tmp_path: Path, hook: str, kwargs: dict[str, Any], error: type, message: str
) -> None:
    call = {"name": "foo", "value": 1.0, **kwargs}

    class Model(BoringModel):
        pass

    setattr(Model, hook, lambda self, *a, **k: self.log(**call))
    with pytest.raises(error) as info:
        quiet_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(Model())
    assert message in str(info.value)


def test_a_second_fit_may_log_a_key_with_other_arguments_only_if_they_are_valid(tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)

    class First(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("foo", 1.0, prog_bar=False)
            raise RuntimeError("the first fit ends here")  # in its first epoch: the next fit trains again

    class Bad(BoringModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("foo", 1.0, reduce_fx=torch.argmax)
            return super().training_step(batch, batch_idx)

    with pytest.raises(RuntimeError, match="the first fit ends here"):
        trainer.fit(First())
    with pytest.raises(
        pl.MisconfigurationException, match=r"reduce_fx=\{min,max,mean,sum\}\)` are supported"
    ):
        trainer.fit(Bad())  # what is wrong with the arguments, not only that they changed


def test_setup_gets_the_trainer_fn(tmp_path: Path) -> None:
    stages: list[Any] = []

    class Model(BoringModel):
        def setup(self, stage: str) -> None:
            stages.append(stage)

    quiet_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(Model())
    assert stages == ["fit"] and stages[0].value == "fit" and stages[0] is pl.TrainerFn.FITTING


def test_eval_step_metrics_go_out_per_dataloader(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers import Logger

    class Recorder(Logger):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[dict[str, float], int | None]] = []

        @property
        def name(self) -> str:
            return "recorder"

        @property
        def version(self) -> int:
            return 0

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self.calls.append(({k: float(v) for k, v in metrics.items()}, step))

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    class Model(BoringModel):
        def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            self.log("b", float(batch_idx), on_step=True, on_epoch=False)

        def test_dataloader(self) -> Any:
            return [self._loader(3), self._loader(4)]

    recorder = Recorder()
    quiet_trainer(tmp_path, logger=recorder, limit_test_batches=2).test(Model(batches=2), verbose=False)
    assert recorder.calls == [
        ({"b/dataloader_idx_0": 0.0}, 0),
        ({"b/dataloader_idx_0": 1.0}, 1),
        ({"b/dataloader_idx_1": 0.0}, 0),
        ({"b/dataloader_idx_1": 1.0}, 1),
    ]


def test_batch_transfer_hooks_run_under_their_own_names(tmp_path: Path) -> None:
    class Model(BoringModel):
        def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            with pytest.raises(pl.MisconfigurationException, match="inside `on_before_batch_transfer`"):
                self.log("x", 1.0)
            return batch

    trainer = quiet_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(Model())
    assert trainer.global_step == 1


# -- loggers ---------------------------------------------------------------------------------------------


def test_csv_logger_in_a_used_folder_warns_and_starts_a_new_file(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers import CSVLogger

    first = CSVLogger(tmp_path, name="run", version=0)
    first.log_metrics({"a": 1.0})
    first.save()
    second = CSVLogger(tmp_path, name="run", version=0)
    with pytest.warns(
        UserWarning, match="exists and is not empty. Previous log files in this directory will be"
    ):
        second.log_metrics({"b": 2.0})
    second.save()
    with open(second.experiment.metrics_file_path) as f:
        assert f.read().splitlines() == ["b,step", "2.0,0"]


def test_tensorboard_logger_reads_name_and_version_through_its_properties(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers import TensorBoardLogger

    class Named(TensorBoardLogger):
        @property
        def name(self) -> str:
            return "name"

        @property
        def version(self) -> str:
            return "version"

    assert Named(str(tmp_path)).log_dir == str(tmp_path / "name" / "version")
    assert Named(str(tmp_path), sub_dir="sub").log_dir == str(tmp_path / "name" / "version" / "sub")


def test_tensorboard_log_graph_without_a_trainer(tmp_path: Path) -> None:
    from lightning_kernel.trainer.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), log_graph=True)
    logger.log_graph(BoringModel(), torch.rand(2, 32))  # traced without a Trainer attached
    with pytest.warns(UserWarning, match="The `model.example_input_array` attribute is not set"):
        logger.log_graph(BoringModel())
    with pytest.warns(UserWarning, match="which can't be traced by TensorBoard"):
        logger.log_graph(BoringModel(), [torch.rand(2, 32)])


def test_hparams_that_yaml_cannot_hold_are_skipped_with_pls_warning(tmp_path: Path) -> None:
    from lightning_kernel.trainer.core.saving import load_hparams_from_yaml
    from lightning_kernel.trainer.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), default_hp_metric=False)
    with pytest.warns(
        UserWarning, match="Skipping '5j' parameter because it is not possible to safely dump to YAML"
    ):
        logger.log_hyperparams({"a": 1, 5j: 5})
    assert load_hparams_from_yaml(f"{logger.log_dir}/hparams.yaml") == {"a": 1}
