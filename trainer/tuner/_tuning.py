"""``Tuner``: PL 2.x's entry point to the learning-rate finder and the batch-size finder."""

import logging
import warnings
from typing import Any

from .._errors import MisconfigurationException
from ._attr import TunerAttributeError, lightning_hasattr, lightning_setattr
from ._batch_size import BatchSizeSearch, validate_search_args
from ._lr_finder import _LRCallback, _LRFinder, determine_lr_attr_name
from ._trials import check_single_process, free_memory, restored_module, trial_trainer

log = logging.getLogger("lightning_kernel.trainer.tuner.tuning")

_METHODS = ("fit", "validate", "test", "predict")
_LOADER_HOOKS = {
    "fit": "train_dataloader",
    "validate": "val_dataloader",
    "test": "test_dataloader",
    "predict": "predict_dataloader",
}
_LIMIT_ARGS = {
    "validate": "limit_val_batches",
    "test": "limit_test_batches",
    "predict": "limit_predict_batches",
}


def _check_tuner_configuration(
    train_dataloaders: Any, val_dataloaders: Any, dataloaders: Any, method: str
) -> None:
    if method not in _METHODS:
        raise MisconfigurationException(f"method {method!r} is invalid. Should be one of {_METHODS}.")
    if method == "fit":
        if dataloaders is not None:
            raise MisconfigurationException(
                f"In tuner with method={method!r}, `dataloaders` argument should be None, please consider "
                "setting `train_dataloaders` and `val_dataloaders` instead."
            )
    elif train_dataloaders is not None or val_dataloaders is not None:
        raise MisconfigurationException(
            f"In tuner with `method`={method!r}, `train_dataloaders` and `val_dataloaders` arguments "
            "should be None, please consider setting `dataloaders` instead."
        )


def _dataset_length(source: Any, hook: str) -> int | None:
    """The length of the dataset behind ``source.<hook>()``, or None when it cannot be known yet."""
    try:
        loaders = getattr(source, hook)()
    except Exception:
        # a datamodule not set up yet, or a hook that needs a Trainer: the next trial will know
        return None
    if not isinstance(loaders, list | tuple):
        loaders = [loaders]
    lengths = []
    for loader in loaders:
        try:
            lengths.append(len(loader.dataset))
        except (AttributeError, TypeError):
            return None
    return max(lengths) if lengths else None


class Tuner:
    """Tune the hyper-parameters of a ``Trainer`` run: ``Tuner(trainer).lr_find(model)``,
    ``Tuner(trainer).scale_batch_size(model)``.

    Trials run on temporary Trainers built from ``trainer``'s arguments; the module's weights and
    modes are restored afterwards, and only the tuned attribute (``lr``, ``batch_size``) changes.
    """

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer
        #: ``(batch_size, fitted)`` for each trial of the last ``scale_batch_size`` call
        self.last_batch_size_trials: list[tuple[int, bool]] = []

    def scale_batch_size(
        self,
        model: Any,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: Any = None,
        method: str = "fit",
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        batch_arg_name: str = "batch_size",
        margin: float = 0.05,
        max_val: int = 8192,
    ) -> int | None:
        """Find the largest batch size that fits in memory and set it on the module (or datamodule).

        Returns the batch size found, or None with ``fast_dev_run``.
        """
        _check_tuner_configuration(train_dataloaders, val_dataloaders, dataloaders, method)
        check_single_process(self._trainer, "scale_batch_size")
        validate_search_args(mode, steps_per_trial, init_val, max_trials, margin)
        if (method == "fit" and train_dataloaders is not None) or (
            method != "fit" and dataloaders is not None
        ):
            raise MisconfigurationException(
                "The batch size finder cannot be used with dataloaders passed directly to "
                f"`.{method}()`: the finder changes `{batch_arg_name}` and needs the dataloader to be "
                "rebuilt from it. Build the dataloader in your LightningModule's or LightningDataModule's "
                f"`{_LOADER_HOOKS[method]}` hook instead."
            )
        if self._trainer.fast_dev_run:
            warnings.warn("Skipping batch size scaler since `fast_dev_run` is enabled.", stacklevel=2)
            return None
        if not lightning_hasattr(model, batch_arg_name, datamodule):
            raise TunerAttributeError(
                f"Field {batch_arg_name} not found in `model`, `datamodule`, nor their `hparams` attributes."
            )
        hparams = getattr(model, "hparams", None)
        if hasattr(model, batch_arg_name) and isinstance(hparams, dict) and batch_arg_name in hparams:
            warnings.warn(
                f"Field `model.{batch_arg_name}` and `model.hparams.{batch_arg_name}` are mutually "
                f"exclusive! `model.{batch_arg_name}` will be used as the initial batch size for scaling. "
                "If this is not the intended behavior, please remove either one.",
                stacklevel=2,
            )

        trainer = self._trainer

        def run_trial() -> None:
            if method == "fit":
                trial = trial_trainer(
                    trainer,
                    [],
                    max_steps=steps_per_trial,
                    max_epochs=-1,
                    limit_train_batches=1.0,
                    limit_val_batches=steps_per_trial,
                )
                trial.fit(model, val_dataloaders=val_dataloaders, datamodule=datamodule)
            else:
                trial = trial_trainer(trainer, [], **{_LIMIT_ARGS[method]: steps_per_trial})
                getattr(trial, method)(model, datamodule=datamodule)

        source = datamodule if datamodule is not None else model
        search = BatchSizeSearch(
            model,
            datamodule,
            batch_arg_name,
            run_trial,
            lambda: _dataset_length(source, _LOADER_HOOKS[method]),
            max_val=max_val,
        )
        with restored_module(model):
            search.adjust(value=init_val)
            new_size = search.power(max_trials) if mode == "power" else search.binsearch(max_trials, margin)
        free_memory()
        log.info(f"Finished batch size finder, will continue with full run using batch size {new_size}")
        self.last_batch_size_trials = search.trials
        if method == "fit":
            _attach_train_loader(trainer, model, datamodule, val_dataloaders)
        return new_size

    def lr_find(
        self,
        model: Any,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        dataloaders: Any = None,
        datamodule: Any = None,
        method: str = "fit",
        min_lr: float = 1e-8,
        max_lr: float = 1,
        num_training: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        update_attr: bool = True,
        attr_name: str = "",
    ) -> _LRFinder | None:
        """Run the learning-rate range test; with ``update_attr`` set the suggestion on the module.

        Returns the finder (``.results``, ``.suggestion()``, ``.plot()``), or None with ``fast_dev_run``.
        """
        if method != "fit":
            raise MisconfigurationException("method='fit' is the only valid configuration to run lr finder.")
        _check_tuner_configuration(train_dataloaders, val_dataloaders, dataloaders, method)
        check_single_process(self._trainer, "lr_find")
        if num_training < 1:
            raise MisconfigurationException(f"lr_find(num_training={num_training}) must be >= 1.")
        if not 0 < min_lr < max_lr:
            raise MisconfigurationException(f"lr_find needs 0 < min_lr < max_lr (got {min_lr}, {max_lr}).")
        if self._trainer.fast_dev_run:
            warnings.warn("Skipping learning rate finder since `fast_dev_run` is enabled.", stacklevel=2)
            return None
        if update_attr:
            attr_name = determine_lr_attr_name(model, attr_name, datamodule)

        finder = _LRFinder(mode, min_lr, max_lr, num_training)
        callback = _LRCallback(num_training, early_stop_threshold)
        with restored_module(model):
            finder._wrap_configure_optimizers(model)
            try:
                trial = trial_trainer(
                    self._trainer, [callback], max_steps=num_training, max_epochs=-1, limit_val_batches=0
                )
                trial.fit(model, train_dataloaders, val_dataloaders, datamodule)
            finally:
                # the wrapper lives on the instance: removing it uncovers the class's method again
                del model.configure_optimizers
        finder.results = {"lr": list(callback.lrs), "loss": list(callback.losses)}
        if len(callback.losses) < num_training:
            log.info(f"LR finder stopped early after {len(callback.losses)} steps due to diverging loss.")
        if update_attr:
            lr = finder.suggestion()
            if lr is not None:
                lightning_setattr(model, attr_name, lr, datamodule)
                log.info(f"Learning rate set to {lr}")
        return finder


def _attach_train_loader(trainer: Any, model: Any, datamodule: Any, val_dataloaders: Any) -> None:
    """Leave ``trainer.train_dataloader`` built at the size found, as PL's finder leaves it."""
    previous = trainer._module
    trainer._module = model
    try:
        trainer._data.attach(datamodule, val=val_dataloaders)
        trainer.fit_loop.setup_data(force=True)
    except Exception:  # a datamodule that needs setup() first: the fit that follows builds it
        trainer._module = previous
