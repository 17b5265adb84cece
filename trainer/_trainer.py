"""``Trainer``: PyTorch Lightning 2.x's arguments, properties and entry points.

``fit``/``validate``/``test``/``predict`` check their input, then run ``_run.run`` (through a
launcher for ``devices=N``). The loops live in ``_fit_loop.py`` and ``_eval_loop.py``; what one
step does is in ``_steps.py``.
"""

from datetime import timedelta
from typing import Any

from ._args import defaults_from_env
from ._datamodule import LightningDataModule
from ._deprecated import rename_kwarg, translate_trainer_kwargs
from ._errors import MisconfigurationException
from ._logging import ResultCollection
from ._module import LightningModule
from ._rank_zero import PossibleUserWarning, rank_zero_warn
from ._state import RunningStage, TrainerFn, TrainerStatus
from ._steps import StepsMixin
from ._trainer_init import TrainerInit
from ._trainer_props import TrainerProperties


class Trainer(TrainerInit, TrainerProperties, StepsMixin):
    """Runs a ``LightningModule``'s loops; the arguments are PyTorch Lightning 2.x's."""

    @defaults_from_env
    def __init__(
        self,
        *,
        accelerator: str = "auto",
        strategy: str = "auto",
        devices: Any = "auto",
        num_nodes: int = 1,
        precision: Any = None,
        logger: Any = None,
        callbacks: Any = None,
        fast_dev_run: int | bool = False,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        max_steps: int = -1,
        min_steps: int | None = None,
        max_time: Any = None,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        val_check_interval: int | float | str | timedelta | dict[str, int] | None = None,
        check_val_every_n_epoch: int | None = 1,
        num_sanity_val_steps: int | None = None,
        log_every_n_steps: int | None = None,
        enable_checkpointing: bool | None = None,
        enable_progress_bar: bool | None = None,
        enable_model_summary: bool | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        use_distributed_sampler: bool = True,
        profiler: Any = None,
        detect_anomaly: bool = False,
        barebones: bool = False,
        plugins: Any = None,
        sync_batchnorm: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: str | None = None,
        **legacy: Any,
    ) -> None:
        args = {k: v for k, v in locals().items() if k not in ("self", "legacy", "__class__")}
        translate_trainer_kwargs(dict(legacy), args)
        self._init_kwargs: dict[str, Any] = {k: v for k, v in args.items() if not k.startswith("_")}
        self._resume_from_checkpoint: str | None = args.get("_resume_from_checkpoint")
        self._apply_args(**{k: v for k, v in args.items() if not k.startswith("_")})

    # -- entry points ----------------------------------------------------------------------------
    def fit(
        self,
        model: LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
        **legacy: Any,
    ) -> None:
        """Train ``model``; ``ckpt_path`` (a path, an fsspec URL or ``"last"``) resumes a run.

        ``weights_only`` is ``torch.load``'s (None: torch's default, True since torch 2.6).
        """
        self._ckpt_weights_only = weights_only
        train_dataloaders = rename_kwarg(
            legacy, "train_dataloader", "train_dataloaders", train_dataloaders, "fit"
        )
        _check_module(model, "fit")
        if isinstance(train_dataloaders, LightningDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (train_dataloaders is not None or val_dataloaders is not None):
            raise MisconfigurationException(
                "You cannot pass `train_dataloader` or `val_dataloaders` to `trainer.fit(datamodule=...)`"
            )
        if ckpt_path is None and self._resume_from_checkpoint is not None:
            ckpt_path = self._resume_from_checkpoint
        if self.fit_loop.max_epochs is None:
            # PL: an epoch limit only when nothing else limits the run (steps, a Timer or max_time)
            timer = self._max_time is not None or any(type(cb).__name__ == "Timer" for cb in self.callbacks)
            if self.fit_loop.max_steps == -1 and not timer:
                rank_zero_warn(
                    "`max_epochs` was not set. Setting it to 1000 epochs. To train without an epoch limit, set "
                    "`max_epochs=-1`.",
                    category=PossibleUserWarning,
                )
                self.fit_loop.max_epochs = 1000
            else:
                self.fit_loop.max_epochs = -1
        self.state.fn = TrainerFn.FITTING
        self.state.status = TrainerStatus.RUNNING
        self.training = True
        self.should_stop = False
        self._data.attach(datamodule, train=train_dataloaders, val=val_dataloaders)
        self.fit_loop.train_dataloader = None
        self._module = model  # also what a spawning launcher gives the results back to
        self._call_and_handle_interrupt(self._fit_impl, model, ckpt_path)

    def _fit_impl(self, model: LightningModule, ckpt_path: str | None) -> None:
        from ._run import run

        run(self, model, ckpt_path)

    def validate(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule: LightningDataModule | None = None,
        weights_only: bool | None = None,
        **legacy: Any,
    ) -> list[dict[str, float]]:
        self._ckpt_weights_only = weights_only
        dataloaders = rename_kwarg(legacy, "val_dataloaders", "dataloaders", dataloaders, "validate")
        return self._evaluate(TrainerFn.VALIDATING, model, dataloaders, ckpt_path, verbose, datamodule)

    def test(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule: LightningDataModule | None = None,
        weights_only: bool | None = None,
        **legacy: Any,
    ) -> list[dict[str, float]]:
        self._ckpt_weights_only = weights_only
        dataloaders = rename_kwarg(legacy, "test_dataloaders", "dataloaders", dataloaders, "test")
        return self._evaluate(TrainerFn.TESTING, model, dataloaders, ckpt_path, verbose, datamodule)

    def predict(
        self,
        model: LightningModule | None = None,
        dataloaders: Any = None,
        datamodule: LightningDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
    ) -> Any:
        self._ckpt_weights_only = weights_only
        return self._evaluate(
            TrainerFn.PREDICTING, model, dataloaders, ckpt_path, False, datamodule, return_predictions
        )

    def _evaluate(
        self,
        fn: TrainerFn,
        model: LightningModule | None,
        dataloaders: Any,
        ckpt_path: str | None,
        verbose: bool,
        datamodule: LightningDataModule | None,
        return_predictions: bool | None = None,
    ) -> Any:
        if model is None:
            if self._module is None:
                raise TypeError(
                    f"`Trainer.{fn.value}()` requires a `LightningModule` when it hasn't been passed in a previous run"
                )
            model = self._module
            if ckpt_path is None and self.checkpoint_callback is not None:
                ckpt_path = "best"
                rank_zero_warn(
                    f"`.{fn.value}(ckpt_path=None)` was called without a model. The best model of the previous "
                    f"`fit` call will be used. You can pass `.{fn.value}(ckpt_path='best')` to use the best model "
                    f"or `.{fn.value}(ckpt_path='last')` to use the last model. If you pass a value, this warning "
                    "will be silenced."
                )
        _check_module(model, fn.value)
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        if datamodule is not None and dataloaders is not None:
            raise MisconfigurationException(
                f"You cannot pass both `trainer.{fn.value}(dataloaders=..., datamodule=...)`"
            )
        self.state.fn = fn
        self.state.status = TrainerStatus.RUNNING
        self.state.stage = {
            TrainerFn.VALIDATING: RunningStage.VALIDATING,
            TrainerFn.TESTING: RunningStage.TESTING,
            TrainerFn.PREDICTING: RunningStage.PREDICTING,
        }[fn]
        kind = {TrainerFn.VALIDATING: "val", TrainerFn.TESTING: "test", TrainerFn.PREDICTING: "predict"}[fn]
        if (
            datamodule is None
            and dataloaders is None
            and self._data.datamodule is not None
            and model is self._module
        ):
            datamodule = self._data.datamodule
        self._data.attach(datamodule, **{kind: dataloaders})
        loop: Any = {"val": self.validate_loop, "test": self.test_loop, "predict": self.predict_loop}[kind]
        loop.loaders = []
        if kind != "predict":
            loop.verbose = verbose
        if return_predictions is None:
            return_predictions = self.strategy.kind not in ("ddp_spawn", "ddp_fork", "ddp_notebook")
        self._return_predictions = return_predictions
        self._module = model
        return self._call_and_handle_interrupt(self._evaluate_impl, model, ckpt_path)

    def _evaluate_impl(self, model: LightningModule, ckpt_path: str | None) -> Any:
        from ._logging import to_scalars
        from ._run import run

        result = run(self, model, ckpt_path)
        if self.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING) and result is not None:
            return [to_scalars(d) for d in result]
        return result

    def _call_and_handle_interrupt(self, fn: Any, *args: Any) -> Any:
        from ._run import handle_interrupt

        launcher = self.strategy.launcher
        if launcher is not None:
            return handle_interrupt(self, lambda: launcher.launch(fn, *args, trainer=self))
        return handle_interrupt(self, lambda: fn(*args))

    def save_checkpoint(
        self, filepath: str, weights_only: bool = False, storage_options: dict[str, Any] | None = None
    ) -> None:
        """Write the run's checkpoint (PL's layout) to ``filepath``; rank 0 writes, every rank waits."""
        if self._module is None:
            raise AttributeError(
                "Saving a checkpoint is only possible if a model is attached to the Trainer. Did you call "
                "`Trainer.save_checkpoint()` before calling `Trainer.{fit,validate,test,predict}`?"
            )
        from ._checkpoint import atomic_save
        from ._restore import dump_checkpoint

        with self.profiler.profile("save_checkpoint"):
            checkpoint = dump_checkpoint(self, weights_only)
            if self.is_global_zero:
                atomic_save(checkpoint, str(filepath), storage_options)
                if self._work_link is not None:
                    self._work_link.saved(str(filepath), weights_only)
            self.strategy.barrier("Trainer.save_checkpoint")

    # -- state -----------------------------------------------------------------------------------
    def _stage_is(self, stage: RunningStage) -> bool:
        return self.state.stage == stage

    def _set_stage(self, stage: RunningStage, value: bool) -> None:
        if value:
            self.state.stage = stage
        elif self.state.stage == stage:
            self.state.stage = None

    training = property(
        lambda self: self._stage_is(RunningStage.TRAINING),
        lambda self, v: self._set_stage(RunningStage.TRAINING, v),
    )
    validating = property(
        lambda self: self._stage_is(RunningStage.VALIDATING),
        lambda self, v: self._set_stage(RunningStage.VALIDATING, v),
    )
    testing = property(
        lambda self: self._stage_is(RunningStage.TESTING),
        lambda self, v: self._set_stage(RunningStage.TESTING, v),
    )
    predicting = property(
        lambda self: self._stage_is(RunningStage.PREDICTING),
        lambda self, v: self._set_stage(RunningStage.PREDICTING, v),
    )
    sanity_checking = property(
        lambda self: self._stage_is(RunningStage.SANITY_CHECKING),
        lambda self, v: self._set_stage(RunningStage.SANITY_CHECKING, v),
    )

    @property
    def interrupted(self) -> bool:
        return self.state.status == TrainerStatus.INTERRUPTED

    @property
    def _active_loop(self) -> Any:
        if self.training:
            return self.fit_loop
        if self.sanity_checking or (self.validating and self.state.fn == TrainerFn.FITTING):
            return self.fit_loop.val_loop
        if self.validating:
            return self.validate_loop
        if self.testing:
            return self.test_loop
        if self.predicting:
            return self.predict_loop
        return None

    @property
    def _results(self) -> ResultCollection | None:
        if self.state.stage is RunningStage.TRAINING:  # the hot case: self.log in training_step
            return self.fit_loop.results
        loop = self._active_loop
        return getattr(loop, "results", None)


def _check_module(model: Any, fn: str) -> None:
    if not isinstance(model, LightningModule):
        raise TypeError(f"`Trainer.{fn}()` requires a `LightningModule`, got: {type(model).__qualname__}")
