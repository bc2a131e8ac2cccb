"""Pruning an Optuna trial from its validation curve while it trains (optuna-integration's Lightning callback
needs the ``lightning`` package; seglight runs on ``pytorch_lightning``)."""

from __future__ import annotations

import logging
import os

import optuna
import pytorch_lightning as pl
from optuna.pruners import BasePruner
from pytorch_lightning.trainer.states import TrainerFn

from seglight.model.metrics import MONITOR

log = logging.getLogger(__name__)

PRUNED_AT = "pruned_at_validation"  # trial user attribute: the validation after which the pruner stopped it
STORAGE_ENV = "SEGLIGHT_SEARCH_STORAGE"  # the study's storage URL, set by the search (kept out of saved configs)


class OptunaPruning(pl.Callback):
    """After each validation of ``fit``, reports ``monitor`` to trial ``trial_id`` of the study (step: the
    validation's index, 0, 1, ...) and, when the pruner says so, sets the trial's ``PRUNED_AT`` attribute and
    stops training. The run then ends as any other (its best checkpoint validated, metrics.json written); the
    search marks the trial pruned.

    It reopens the study from ``storage`` (a URL; None: the environment's ``STORAGE_ENV``) when first needed, so
    it is built from config and works in processes the Trainer spawns. Rank 0 reports and decides; every rank stops
    with it."""

    def __init__(
        self,
        study_name: str,
        trial_id: int,
        pruner: BasePruner | None = None,
        storage: str | None = None,
        monitor: str = MONITOR,
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.trial_id = trial_id
        self.pruner = pruner
        self.monitor = monitor
        self.validations = 0
        self.pruned = False
        self._trial: optuna.Trial | None = None

    def trial(self) -> optuna.Trial:
        if self._trial is None:
            study = optuna.load_study(
                study_name=self.study_name,
                storage=self.storage or os.environ[STORAGE_ENV],
                sampler=optuna.samplers.RandomSampler(),  # never samples here: the cheapest to build
                pruner=self.pruner or optuna.pruners.NopPruner(),
            )
            self._trial = optuna.Trial(study, self.trial_id)
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if self.pruned:  # validated again before the stop took effect: the decision stands
            trainer.should_stop = True
            return
        step = self.validations
        self.validations += 1
        prune = False
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.is_global_zero and score is not None:
            trial, value = self.trial(), float(score)
            trial.report(value, step)
            prune = trial.should_prune()
            if prune:
                trial.set_user_attr(PRUNED_AT, step)
                log.info("trial %d pruned after validation %d (%s %.4f)", trial.number, step, self.monitor, value)
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned = True
            trainer.should_stop = True
