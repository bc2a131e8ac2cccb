"""An Optuna study of train configs (``python -m seglight.train hparams_search=<name>``).

This process runs trials until the study holds ``n_trials`` finished (complete or pruned) ones: trial n composes
the train config from the command's overrides plus its sampled ones and trains in <sweep dir>/n/. The study lives
in a database, so a killed search resumes from it and several processes (or SLURM jobs) share one. A trial whose
process died is marked failed once its heartbeat is older than the grace period; failed trials do not count, and
new trials take their place."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from seglight.model.metrics import FINAL_MONITOR, MONITOR
from seglight.training.fit import train
from seglight.training.pruning import PRUNED_AT, STORAGE_ENV
from seglight.training.search_space import TrialSeeded, as_override, search_space, suggest
from seglight.training.sweep import write_summary
from seglight.training.trials import FINISHED, run_trials

log = logging.getLogger(__name__)

STUDY_DB = "study.db"  # in the sweep dir: the default storage, sqlite:///<sweep dir>/study.db
OWN_KEYS = {"hparams_search", "hydra"}  # overrides of the search itself, not of its trials
SHARED = "overrides"  # study user attribute: the train overrides all its trials share
OBJECTIVE = "objective"  # study user attribute: the metrics.json key its trials' values are (FINAL_MONITOR)
WORKER = "worker"  # trial user attribute: host:pid of the process that ran it
SQLITE_TIMEOUT_S = 60  # processes sharing a SQLite study wait up to this for its lock
CONNECT_TRIES = 3
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's


def shared_overrides(overrides: Sequence[str], space: Mapping[str, BaseDistribution]) -> list[str]:
    """The command's overrides that its trials share: all but the search's own (``hparams_search...``,
    ``hydra...``). An override of a searched key is an error."""
    shared = []
    for text, override in zip(overrides, OverridesParser.create().parse_overrides(list(overrides))):
        key = override.key_or_group
        if key.replace("/", ".").split(".")[0] in OWN_KEYS:
            continue
        if key in space:
            raise ValueError(f"{text}: {key} is searched (hparams_search.params): drop the override or the search")
        shared.append(text)
    return shared


def build_sampler(config: DictConfig) -> BaseSampler:
    """The configured sampler; with a seed, trial n draws with seed + n (``TrialSeeded``)."""
    seed = config.get("seed")
    if seed is None:
        return instantiate(config)

    def make(trial_seed: int) -> BaseSampler:
        return instantiate(config, seed=trial_seed)

    return TrialSeeded(make, int(seed))


def connect(search: DictConfig, url: str) -> optuna.storages.RDBStorage:
    """The study's storage, with heartbeats. Processes that create its database at the same moment can collide
    on its tables (SQLite: "table studies already exists"): the losers try again."""

    def storage() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else None,
                heartbeat_interval=int(search.heartbeat.interval),
                grace_period=int(search.heartbeat.grace_period),
            )

    for attempt in range(CONNECT_TRIES - 1):
        try:
            return storage()
        except SQLAlchemyError:
            time.sleep(1.0 + attempt)
    return storage()


def open_study(
    search: DictConfig, url: str, shared: list[str], space: Mapping[str, BaseDistribution] | None = None
) -> optuna.Study:
    """Creates the study in ``url``, or loads it (a killed search's, another process's). A study begun with other
    shared overrides is refused: its trials would not compare with the new ones."""
    study = optuna.create_study(
        storage=connect(search, url),
        study_name=search.study_name,
        sampler=build_sampler(search.sampler),
        pruner=instantiate(search.pruner) if search.pruner else optuna.pruners.NopPruner(),
        direction=search.direction,
        load_if_exists=True,
    )
    searched = {k: repr(v) for k, v in (space or {}).items()}
    if study.user_attrs.get(SPACE, searched) != searched:  # trials drawn from another space do not compare
        raise ValueError(
            f"study {search.study_name!r} in {display(url)} searched {study.user_attrs[SPACE]}, not {searched}: "
            "start another study (hparams_search.study_name=... and its own hydra.sweep.dir)"
        )
    study.set_user_attr(SPACE, searched)
    recorded = study.user_attrs.get(SHARED)
    if recorded is None:
        study.set_user_attr(SHARED, shared)
    elif sorted(recorded) != sorted(shared):
        raise ValueError(
            f"study {search.study_name!r} in {display(url)} was begun with the overrides {recorded}, not {shared}: "
            "run with those, or start another study (hydra.sweep.dir=... or hparams_search.study_name=...)"
        )
    if study.trials and study.user_attrs.get(OBJECTIVE) != FINAL_MONITOR:  # begun before 2026-11-27
        log.warning("study %r: its %d earlier trials are valued by best.ckpt's %s, new ones by %s: the values do not "
                    "compare (start another study for a clean ranking)", search.study_name, len(study.trials),
                    MONITOR, FINAL_MONITOR)  # fmt: skip
    study.set_user_attr(OBJECTIVE, FINAL_MONITOR)
    return study


def display(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def log_to(path: Path) -> Iterator[None]:
    """The block's log records also go to ``path`` (a trial's train.log, as Hydra gives each job its own)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def run_trial(
    trial: optuna.Trial,
    space: Mapping[str, BaseDistribution],
    shared: list[str],
    sweep_dir: Path,
    compose: Callable[[list[str]], DictConfig],
    pruning: dict[str, Any],
) -> float:
    """Trains the trial in <sweep dir>/<trial number>/ and returns the val mIoU of the weights it ended with
    (best.ckpt's where those were not scored); raises TrialPruned when pruned."""
    overrides = [*(as_override(key, suggest(trial, key, dist)) for key, dist in space.items()), *shared]
    run_dir = sweep_dir / str(trial.number)
    trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    log.info("trial %d: %s", trial.number, " ".join(overrides))
    cfg = compose(overrides)
    if str(cfg.trainer.get("strategy", "")).startswith("ddp") and not str(cfg.trainer.strategy).startswith("ddp_spawn"):
        # plain DDP relaunches the whole command per rank: each rank would open the study and draw its own trial
        raise ValueError(f"trainer.strategy={cfg.trainer.strategy} in a search: use ddp_spawn")
    if not cfg.trainer.get("limit_val_batches", 1.0):
        raise ValueError(f"a search optimises {MONITOR}: trainer.limit_val_batches=0 leaves no validation to score")
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
        cfg.callbacks = cfg.get("callbacks") or {}
        cfg.callbacks.optuna_pruning = {**pruning, "trial_id": trial._trial_id}
        if OmegaConf.select(cfg, "logger.wandb.group") == "auto":  # a search's trials share a W&B group
            cfg.logger.wandb.group = trial.study.study_name
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)  # where a --multirun job has them: the sweep summary
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    with log_to(run_dir / "train.log"):
        metrics = train(cfg)
    pruned_at = trial.storage.get_trial_user_attrs(trial._trial_id).get(PRUNED_AT)
    if pruned_at is not None:
        raise optuna.TrialPruned(f"after validation {pruned_at}")
    # best.ckpt is the best of the trial's validations on the val images the study maximises, so its score favours
    # noisy recipes: the study maximises the weights the trial ended with, where they were scored
    trial.set_user_attr(f"best_ckpt_{MONITOR}", float(metrics[MONITOR]))
    trial.set_user_attr("scored", "final weights" if FINAL_MONITOR in metrics else "best.ckpt")
    if FINAL_MONITOR not in metrics:  # e.g. ddp_spawn: the final validation's steps do not come back
        log.warning("trial %d: the final weights were not scored: its value is best.ckpt's %s", trial.number, MONITOR)
    return float(metrics.get(FINAL_MONITOR, metrics[MONITOR]))


def summarise(study: optuna.Study, sweep_dir: Path) -> None:
    """summary.csv and summary.md in the sweep dir: a row per trial dir, with the trial's state."""
    states = {str(t.number): t.state.name.lower() for t in study.get_trials(deepcopy=False)}
    rows = write_summary(sweep_dir, states)
    log.info("search summary (%d trials): %s", len(rows), sweep_dir / "summary.csv")
    if rows:
        print((sweep_dir / "summary.md").read_text())


SPACE = "search_space"  # a study's user attr: the distributions its trials were drawn from
SWEEP_OWNER = "search.json"  # in the sweep dir: the study whose trials its numbered dirs hold
CLAIM_LOCK = "search.lock"  # in the sweep dir: held while a process takes a free trial slot (ClaimLock)


def claim_sweep_dir(sweep_dir: Path, study_name: str, storage: str) -> None:
    """Trial dirs are <sweep dir>/<trial number>: refuses a sweep dir holding another study's trials or another
    sweep's jobs (their dirs would be overwritten), else records this study as its owner."""
    owner = {"study_name": study_name, "storage": storage}
    marker = sweep_dir / SWEEP_OWNER
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded != owner:
            raise ValueError(
                f"{sweep_dir} holds the trials of study {recorded['study_name']!r} ({recorded['storage']}): give this "
                "study a sweep dir of its own (hydra.sweep.dir=...), or its trial dirs would overwrite those"
            )
        return
    if any(sweep_dir.glob("*/.hydra/overrides.yaml")):
        raise ValueError(f"{sweep_dir} holds the jobs of another sweep: give the search its own hydra.sweep.dir")
    marker.write_text(json.dumps(owner))


def search(
    search_cfg: DictConfig, overrides: Sequence[str], sweep_dir: str | Path, compose: Callable[[list[str]], DictConfig]
) -> float | None:
    """Runs trials of the study ``search_cfg`` describes (conf/hparams_search/) until it holds ``n_trials``
    finished ones; returns the best trial's value (None before any completes). ``overrides`` are the command's,
    ``compose(overrides)`` gives a train config (seglight.config.compose_config)."""
    heartbeat = search_cfg.heartbeat
    if heartbeat.grace_period < 2 * heartbeat.interval:  # else live trials are failed as stale between heartbeats
        raise ValueError(
            f"hparams_search.heartbeat.grace_period={heartbeat.grace_period} is shorter than twice "
            f"heartbeat.interval={heartbeat.interval}: running trials would be failed as if their process had died"
        )
    space = search_space(search_cfg.params)
    shared = shared_overrides(overrides, space)
    sweep_dir = Path(sweep_dir).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    url = str(search_cfg.storage or f"sqlite:///{sweep_dir / STUDY_DB}")
    optuna.logging.disable_default_handler()  # Optuna's records go to the search's log like every other
    optuna.logging.enable_propagation()
    study = open_study(search_cfg, url, shared, space)
    claim_sweep_dir(sweep_dir, study.study_name, display(url))
    n_trials = int(search_cfg.n_trials)
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    log.info("study %r in %s: %s; n_trials %d", study.study_name, display(url), dict(counts) or "new", n_trials)
    os.environ[STORAGE_ENV] = url  # for the pruning callback: the URL (and any password in it) stays out of configs
    pruner = OmegaConf.to_container(search_cfg.pruner, resolve=True) if search_cfg.pruner else None
    pruning = {"_target_": "seglight.training.pruning.OptunaPruning", "study_name": study.study_name, "pruner": pruner}
    objective = functools.partial(
        run_trial, space=space, shared=shared, sweep_dir=sweep_dir, compose=compose, pruning=pruning
    )
    wait_s, poll_s = heartbeat.grace_period + heartbeat.interval, min(heartbeat.interval, 5)
    try:
        run_trials(study, n_trials, objective, sweep_dir / CLAIM_LOCK, wait_s, poll_s, int(search_cfg.max_failures))
    finally:
        summarise(study, sweep_dir)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    log.info("study %r holds %d finished trials (n_trials %d)", study.study_name, finished, n_trials)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_value if complete else None
