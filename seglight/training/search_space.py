"""What a trial of a search samples: the space, one train override per line in Hydra's sweep syntax, as Optuna
distributions; a trial's values as train overrides; and a sampler seeded per trial."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

SYNTAX = (
    "choice(a, b, ...) of plain values, interval(low, high), tag(log, interval(low, high)), "
    "int(interval(low, high)) or range(start, stop[, step])"
)


def distribution(key: str, expression: str) -> BaseDistribution:
    """The distribution of the search-space line ``key: expression``: ``choice(a, b)`` categorical;
    ``interval(low, high)`` floats (``tag(log, ...)``: on a log scale; ``int(interval(...))``: integers);
    ``range(start, stop[, step])`` the integers Python's range gives (step > 0)."""
    sweep = OverridesParser.create().parse_overrides([f"{key}={expression}"])[0].value()
    if isinstance(sweep, ChoiceSweep):
        choices = [v for v in sweep.list if isinstance(v, (str, int, float, bool, type(None)))]
        if len(choices) == len(sweep.list):
            return CategoricalDistribution(choices)
    if isinstance(sweep, IntervalSweep) and sweep.start is not None and sweep.end is not None:
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int) and step > 0 and start < stop:
            return IntDistribution(start, range(start, stop, step)[-1], step=step)
    raise ValueError(f"hparams_search.params: {key}: {expression!r} is not a search distribution; use {SYNTAX}")


def search_space(params: Mapping[str, str]) -> dict[str, BaseDistribution]:
    """{train key: distribution} of the ``hparams_search.params`` lines."""
    return {str(key): distribution(str(key), str(expression)) for key, expression in params.items()}


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """The trial's value of ``name``, drawn from ``dist`` (or the one it already has)."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"{name}: no suggest for {type(dist).__name__}")


def as_override(key: str, value: Any) -> str:
    """``key=value`` as Hydra reads it back (None: null, booleans: true/false)."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{key}={text}"


class TrialSeeded(BaseSampler):
    """Samples each trial with its own sampler, ``make(seed + trial number)``: a study is reproducible from its
    seed, and processes that share a study, or resume it, draw different values (one sampler seeded alike in each
    would repeat the same draws in every process)."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._sampler = make(seed)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._sampler = self._make(self._seed + trial.number)
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()
