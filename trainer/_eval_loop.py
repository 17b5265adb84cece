"""Validation and test loops (also the sanity check), and the prediction loop.

``run`` reads top to bottom: set the module to eval, the start hooks, every batch of every
dataloader, the epoch-end hooks, the metrics handed to the loggers, train mode back.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from . import _data
from ._data import iterate
from ._logging import ResultCollection
from ._progress import BatchProgress
from ._state import RunningStage

if TYPE_CHECKING:
    from ._fit_loop import FitLoop
    from ._trainer import Trainer


@contextmanager
def _no_grad(trainer: Trainer) -> Iterator[None]:
    context = torch.inference_mode() if trainer.inference_mode else torch.no_grad()
    with context:
        yield


class _ModuleModes:
    """Each submodule's train/eval flag, restored after evaluation (PL 2.2+)."""

    def __init__(self, module: nn.Module) -> None:
        self.modes = {m: m.training for m in module.modules()}

    def restore(self) -> None:
        for m, training in self.modes.items():
            m.training = training


def accepts(fn: Any, name: str, min_args: int) -> bool:
    """PL's ``is_param_in_hook_signature``: pass ``name`` if the hook can take it."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (
        any(p.name == name for p in params)
        or any(p.kind is p.VAR_POSITIONAL for p in params)
        or len(positional) >= min_args
    )


def verify_dataloader_idx(module: Any, hooks: tuple[str, ...], multiple: bool, kind: str) -> None:
    """PL's check of ``dataloader_idx`` in step hooks: required with one loader, or absent with several."""
    for hook in hooks:
        fn = getattr(module, hook)
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        present = accepts(fn, "dataloader_idx", 3)
        if not multiple:
            if "dataloader_idx" in params and params["dataloader_idx"].default is inspect.Parameter.empty:
                raise RuntimeError(
                    f"You provided only a single `{kind}_dataloader`, but have included `dataloader_idx` in "
                    f"`{type(module).__name__}.{hook}()`. Either remove the argument or give it a default value "
                    "i.e. `dataloader_idx=0`."
                )
        elif not present:
            raise RuntimeError(
                f"You provided multiple `{kind}_dataloader`, but no `dataloader_idx` argument in "
                f"`{type(module).__name__}.{hook}()`. Try adding `dataloader_idx=0` to its signature."
            )


class EvaluationLoop:
    def __init__(self, trainer: Trainer, stage: RunningStage, verbose: bool = False) -> None:
        self.trainer = trainer
        self.stage = stage  # VALIDATING or TESTING
        self.verbose = verbose
        self.results = ResultCollection(training=False)
        self.loaders: list[Any] = []
        self.max_batches: list[int | float] = []
        self.batches_ready = 0
        self.batch_progress = BatchProgress()
        self._in_batches = False  # between the first batch and the last: a checkpoint now is mid-validation
        self._seen: dict[int, int] = {}

    @property
    def _prefix(self) -> str:
        return "test" if self.stage == RunningStage.TESTING else "validation"

    def log_step(self) -> int:
        return self.batches_ready

    def setup_data(self) -> None:
        trainer = self.trainer
        kind = "test" if self.stage == RunningStage.TESTING else "val"
        if not self.loaders or (kind == "val" and trainer._data.reload_val()):
            self.loaders = _data.as_loader_list(trainer._data.request(kind))
        limit = trainer.limit_test_batches if kind == "test" else trainer.limit_val_batches
        self.max_batches = [_data.num_batches(dl, limit, kind) for dl in self.loaders]
        if trainer.sanity_checking:
            steps = trainer.num_sanity_val_steps
            self.max_batches = [min(steps, n) for n in self.max_batches]

    def should_run_in_epoch(self, fit_loop: FitLoop) -> bool:
        trainer = self.trainer
        every = trainer.check_val_every_n_epoch
        return trainer.enable_validation and (every is None or (fit_loop.epoch_processed + 1) % every == 0)

    @property
    def skip(self) -> bool:
        return sum(self.max_batches) == 0

    def run(self) -> list[dict[str, Tensor]]:
        trainer = self.trainer
        with _no_grad(trainer):
            self.setup_data()
            if self.skip:
                return []
            return self._run()

    def _run(self) -> list[dict[str, Tensor]]:
        trainer = self.trainer
        connector = trainer._logger_connector
        prefix = self._prefix
        module = trainer.lightning_module
        modes = _ModuleModes(module)
        trainer._call_module_hook(f"on_{prefix}_model_eval")
        self.results.reset()  # before on_*_start: what it logs counts in this run (PL)
        trainer._call(f"on_{prefix}_start")
        connector.first_loop_iter = None
        self.batch_progress.reset_on_run()
        trainer._call(f"on_{prefix}_epoch_start")
        multiple = len(self.loaders) > 1
        step_name = "test_step" if prefix == "test" else "validation_step"
        kind = "test" if prefix == "test" else "val"
        verify_dataloader_idx(
            module, (step_name, f"on_{prefix}_batch_start", f"on_{prefix}_batch_end"), multiple, kind
        )
        step_fn = getattr(module, step_name)
        pass_idx = accepts(step_fn, "batch_idx", 2)
        outputs: list[list[Any]] = []
        logged: list[dict[str, Tensor]] = []
        collect = trainer._collect_epoch_outputs
        self._in_batches = True
        try:
            self._batches(connector, step_name, step_fn, pass_idx, multiple, collect, outputs, logged)
        finally:
            self._in_batches = False
        connector.epoch_end_reached()
        self.results.dataloader_idx = None
        legacy = "test_epoch_end" if prefix == "test" else "validation_epoch_end"
        if trainer._hooks.module_hook(legacy) is not None:
            trainer._call_legacy_epoch_end(legacy, outputs[0] if not multiple else outputs)
        trainer._call(f"on_{prefix}_epoch_end")
        connector.on_epoch_end()
        epoch_end = connector.update_eval_epoch_metrics(None)
        everything: dict[str, Tensor] = {}
        for dl_logged in logged:
            everything.update(dl_logged)
            dl_logged.update(epoch_end)
        everything.update(epoch_end)
        connector.log_eval_end_metrics(everything)
        trainer._call(f"on_{prefix}_end")
        connector.reset_results()
        if trainer._hooks.module_hook(f"on_{prefix}_model_train") is not None:
            trainer._call_module_hook(f"on_{prefix}_model_train")
        else:
            modes.restore()
        if self.verbose and trainer.is_global_zero and not trainer.sanity_checking:
            _print_results(logged, "Test" if prefix == "test" else "Validate")
        trainer._last_val_time = time.monotonic()  # a time-based val_check_interval counts from here
        return logged

    def _batches(
        self,
        connector: Any,
        step_name: str,
        step_fn: Any,
        pass_idx: bool,
        multiple: bool,
        collect: bool,
        outputs: list[list[Any]],
        logged: list[dict[str, Tensor]],
    ) -> None:
        """Every batch of every dataloader; each loader's outputs and epoch metrics appended."""
        for dl_idx, loader in enumerate(self.loaders):
            limit = self.max_batches[dl_idx]
            dl_outputs: list[Any] = []
            if limit == 0:
                logged.append({})
                outputs.append(dl_outputs)
                continue
            dl_arg = dl_idx if multiple else None
            for batch_idx, batch, is_last in iterate(loader, limit):
                self.batch_progress.is_last_batch = is_last
                output = self._step(step_name, step_fn, pass_idx, batch, batch_idx, dl_arg)
                if collect and output is not None:
                    dl_outputs.append(output)
            outputs.append(dl_outputs)
            connector.epoch_end_reached()
            logged.append(connector.update_eval_epoch_metrics(dl_arg))

    def _step(
        self, step_name: str, step_fn: Any, pass_idx: bool, batch: Any, batch_idx: int, dl_idx: int | None
    ) -> Any:
        trainer = self.trainer
        connector = trainer._logger_connector
        prefix = self._prefix
        batch = trainer._transfer_batch(batch, dl_idx or 0)
        self.batches_ready += 1
        progress = self.batch_progress
        progress.started()
        connector.on_batch_start(batch, dl_idx)
        hook_args: tuple[Any, ...] = (batch, batch_idx) if dl_idx is None else (batch, batch_idx, dl_idx)
        if trainer._hooks.overridden(f"on_{prefix}_batch_start"):
            trainer._call(f"on_{prefix}_batch_start", *hook_args)
        step_args = hook_args if pass_idx else (batch,)
        output = trainer._run_step(step_name, step_fn, step_args)
        progress.processed()
        if isinstance(output, dict) and ("log" in output or "progress_bar" in output):
            trainer._log_legacy_dict(step_name, output)
        if trainer._hooks.overridden(f"on_{prefix}_batch_end"):
            trainer._call(f"on_{prefix}_batch_end", output, *hook_args)
        progress.completed()
        connector.on_batch_end()
        if not trainer.sanity_checking:
            key = dl_idx or 0
            seen = self._seen.get(key, 0)
            connector.update_eval_step_metrics(seen)
            self._seen[key] = seen + 1
        return output


def _print_results(logged: list[dict[str, Tensor]], stage: str) -> None:
    if not any(logged):
        return
    headers = [f"DataLoader {i}" for i in range(len(logged))]
    keys = sorted({k for d in logged for k in d})
    width = max(len(k) for k in [*keys, f"{stage} metric"]) + 2
    cols = [max(len(h), 12) + 2 for h in headers]
    rule = "─" * (width + sum(cols))
    lines = [
        rule,
        f"{stage + ' metric':^{width}}" + "".join(f"{h:^{c}}" for h, c in zip(headers, cols, strict=True)),
        rule,
    ]
    for key in keys:
        cells = []
        for d, c in zip(logged, cols, strict=True):
            value = d.get(key)
            cells.append(f"{(f'{float(value):.6g}' if value is not None else ''):^{c}}")
        lines.append(f"{key:^{width}}" + "".join(cells))
    lines.append(rule)
    print("\n".join(lines))


class PredictionLoop:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.loaders: list[Any] = []
        self.max_batches: list[int | float] = []
        self.batches_ready = 0
        self.batch_progress = BatchProgress()
        self._predictions: list[list[Any]] = []
        self.epoch_batch_indices: list[list[Any]] = []
        self.current_batch_indices: list[int] = []
        self._recorders: list[_IndexRecorder | None] = []

    @property
    def predictions(self) -> list[Any]:
        """This run's predictions: a list per dataloader, or one list when there is one loader (PL's)."""
        return self._predictions[0] if len(self._predictions) == 1 else self._predictions

    def log_step(self) -> int:
        return self.batches_ready

    def setup_data(self) -> None:
        trainer = self.trainer
        self.loaders = _data.as_loader_list(trainer._data.request("predict"))
        self._recorders = []
        if any(getattr(cb, "_lk_wants_batch_indices", False) for cb in trainer.callbacks):
            # A prediction writer is told which samples each batch holds: record the batch sampler's output.
            recorded = [_record_indices(dl) for dl in self.loaders]
            self.loaders = [dl for dl, _ in recorded]
            self._recorders = [rec for _, rec in recorded]
        self.max_batches = [
            _data.num_batches(dl, trainer.limit_predict_batches, "predict") for dl in self.loaders
        ]

    def run(self, return_predictions: bool) -> Any:
        trainer = self.trainer
        with _no_grad(trainer):
            self.setup_data()
            if sum(self.max_batches) == 0:
                return None
            module = trainer.lightning_module
            modes = _ModuleModes(module)
            trainer._call_module_hook("on_predict_model_eval")
            trainer._call("on_predict_start")
            trainer._call("on_predict_epoch_start")
            step_fn = module.predict_step
            pass_idx = accepts(step_fn, "batch_idx", 2)
            multiple = len(self.loaders) > 1
            verify_dataloader_idx(
                module,
                ("predict_step", "on_predict_batch_start", "on_predict_batch_end"),
                multiple,
                "predict",
            )
            self._predictions = []
            self.epoch_batch_indices = []
            self.batch_progress.reset_on_run()
            for dl_idx, loader in enumerate(self.loaders):
                predictions: list[Any] = []
                dl_indices: list[Any] = []
                self.epoch_batch_indices.append(dl_indices)
                recorder = self._recorders[dl_idx] if self._recorders else None
                dl_arg = dl_idx if multiple else None
                progress = self.batch_progress
                for batch_idx, batch, is_last in iterate(loader, self.max_batches[dl_idx]):
                    progress.is_last_batch = is_last
                    progress.started()
                    if recorder is not None:
                        self.current_batch_indices = recorder.seen[batch_idx]
                        dl_indices.append(self.current_batch_indices)
                    batch = trainer._transfer_batch(batch, dl_idx)
                    self.batches_ready += 1
                    hook_args = (batch, batch_idx) if dl_arg is None else (batch, batch_idx, dl_arg)
                    trainer._call("on_predict_batch_start", *hook_args)
                    output = trainer._run_step("predict_step", step_fn, hook_args if pass_idx else (batch,))
                    progress.processed()
                    trainer._call("on_predict_batch_end", output, *hook_args)
                    progress.completed()
                    if return_predictions:
                        predictions.append(_data.move_data_to_device(output, "cpu"))
                self._predictions.append(predictions)
            trainer._call("on_predict_epoch_end")
            trainer._call("on_predict_end")
            modes.restore()
        if not return_predictions:
            return None
        return self.predictions


class _IndexRecorder:
    """A batch sampler that remembers the indices of every batch it gave (PL's index wrapper)."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.seen: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        self.seen = []
        for batch in self.batch_sampler:
            self.seen.append(list(batch))
            yield batch

    def __len__(self) -> int:
        return len(self.batch_sampler)


def _record_indices(loader: Any) -> tuple[Any, _IndexRecorder | None]:
    from torch.utils.data import DataLoader

    if type(loader) is not DataLoader or loader.batch_sampler is None:
        return loader, None
    recorder = _IndexRecorder(loader.batch_sampler)
    rebuilt = DataLoader(
        loader.dataset,
        batch_sampler=recorder,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
    )
    return rebuilt, recorder
