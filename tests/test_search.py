"""hparams_search: an Optuna study of train configs that resumes after a kill, is shared by processes, and prunes
trials from their val mIoU curve."""

from __future__ import annotations

import csv
import functools
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import optuna
import pytest
import torch
from conftest import TINY, compose_config
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from pytorch_lightning.trainer.states import TrainerFn

from seglight.model.checkpoint import load_checkpoint
from seglight.training.pruning import PRUNED_AT, STORAGE_ENV, OptunaPruning
from seglight.training.search import CLAIM_LOCK, WORKER, search, shared_overrides
from seglight.training.search_space import TrialSeeded, as_override, distribution, search_space
from seglight.training.trials import FINISHED, SURPLUS, run_trials

STUDY = "seglight_miou"  # conf/hparams_search/optuna_miou.yaml


def load_trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep / 'study.db'}")
    return sorted(study.get_trials(), key=lambda t: t.number)


def search_command(sweep: Path, data_cache: Path, n_trials: int, grace_s: int) -> list[str]:
    """The search CLI on tiny shapes: trials of 2 steps, heartbeats every second."""
    return [
        sys.executable,
        "-m",
        "seglight.train",
        "hparams_search=optuna_miou",
        f"hparams_search.n_trials={n_trials}",
        "hparams_search.heartbeat.interval=1",
        f"hparams_search.heartbeat.grace_period={grace_s}",
        *TINY,
        f"data.root={data_cache}",
        f"hydra.sweep.dir={sweep}",
    ]


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as f:
        return subprocess.Popen(command, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ})


# ---- the search space and the sampler -----------------------------------------------------------------------
def test_search_space_lines_become_distributions():
    space = search_space(
        {
            "optimizer.lr": "tag(log, interval(0.0001, 0.01))",
            "loss": "choice(ce, dice)",
            "data.batch_size": "range(4, 17, 4)",
            "scheduler.warmup_steps": "int(interval(0, 100))",
            "loss.gamma": "interval(1, 3)",
        }
    )
    assert space == {
        "optimizer.lr": FloatDistribution(0.0001, 0.01, log=True),
        "loss": CategoricalDistribution(["ce", "dice"]),
        "data.batch_size": IntDistribution(4, 16, step=4),
        "scheduler.warmup_steps": IntDistribution(0, 100),
        "loss.gamma": FloatDistribution(1.0, 3.0),
    }
    for bad in ("0.01", "choice([1,2],[3])", "range(5, 1)"):
        with pytest.raises(ValueError, match="not a search distribution"):
            distribution("x", bad)
    assert [as_override("a", v) for v in (None, True, 0.5, "ce")] == ["a=null", "a=true", "a=0.5", "a=ce"]


def test_the_search_keeps_the_trials_overrides_and_refuses_a_searched_key():
    space = search_space({"loss": "choice(ce, dice)"})
    given = ["hparams_search=optuna_miou", "hparams_search.n_trials=5", "hydra.sweep.dir=x", "data=camvid", "seed=1"]
    assert shared_overrides(given, space) == ["data=camvid", "seed=1"]
    with pytest.raises(ValueError, match="loss=focal: loss is searched"):
        shared_overrides(["loss=focal"], space)


def test_processes_sharing_a_study_draw_different_values(tmp_path):
    """One TPE seeded alike in each process would draw the same first values in every process; seeded per trial,
    they differ, and a fresh study with the same seed draws the same again."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    def first_draws(name: str, sampler: Callable[[], optuna.samplers.BaseSampler]) -> list[float]:
        """The first lr each of two processes draws from study ``name``, each with its own ``sampler()``."""
        studies = [optuna.create_study(study_name=name, storage=storage, sampler=sampler(), load_if_exists=True)]
        studies.append(optuna.load_study(study_name=name, storage=storage, sampler=sampler()))
        return [s.ask().suggest_float("lr", 1e-4, 1e-2, log=True) for s in studies]

    def tpe(seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed)

    def seeded() -> optuna.samplers.BaseSampler:
        return TrialSeeded(tpe, 42)

    same = first_draws("alike", functools.partial(tpe, 42))
    assert same[0] == same[1]  # the trap: both processes try the same values
    a, b = first_draws("per_trial", seeded)
    assert a != b
    assert first_draws("again", seeded) == [a, b]  # reproducible from the seed


# ---- pruning ---------------------------------------------------------------------------------------------
def fake_trainer(miou: float, fn: TrainerFn = TrainerFn.FITTING) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        state=SimpleNamespace(fn=fn),
        callback_metrics={"val/mIoU": torch.tensor(miou)},
        is_global_zero=True,
        strategy=SimpleNamespace(broadcast=lambda value, src=0: value),
        should_stop=False,
    )


@pytest.mark.parametrize(("curve", "pruned_at"), [([0.30, 0.10, 0.12], 1), ([0.55, 0.75, 0.85], None)])
def test_a_bad_val_miou_curve_is_pruned(tmp_path, curve, pruned_at):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for values in ([0.5, 0.7, 0.8], [0.4, 0.6, 0.9]):  # two finished trials: median 0.65 at validation 1
        study.add_trial(
            optuna.trial.create_trial(
                value=values[-1], intermediate_values=dict(enumerate(values)), state=TrialState.COMPLETE
            )
        )
    trial = study.ask()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    callback = OptunaPruning("s", trial._trial_id, pruner, storage=storage)
    callback.on_validation_end(fake_trainer(0.0, TrainerFn.VALIDATING), None)  # trainer.validate: not reported
    stopped = []
    for miou in curve:
        trainer = fake_trainer(miou)
        callback.on_validation_end(trainer, None)
        stopped.append(trainer.should_stop)
    frozen = study.get_trials()[-1]
    reported = curve[: pruned_at + 1] if pruned_at is not None else curve  # none after the trial is pruned
    assert frozen.intermediate_values == pytest.approx(dict(enumerate(reported)))
    assert frozen.user_attrs.get(PRUNED_AT) == pruned_at
    assert stopped == [pruned_at is not None and i >= pruned_at for i in range(len(curve))]


def tiny_search(tmp_path, data_cache, monkeypatch, *overrides: str) -> tuple[float | None, Path]:
    """The search run in this process on tiny shapes; returns (its result, the sweep dir)."""
    monkeypatch.setenv(STORAGE_ENV, "")  # restored after the test
    shared = [*TINY, f"data.root={data_cache}"]
    cfg = compose_config(["hparams_search=optuna_miou", *overrides, *shared])
    sweep = tmp_path / "sweep"
    return search(cfg.hparams_search, ["hparams_search=optuna_miou", *overrides, *shared], sweep, compose_config), sweep


def test_a_pruned_trial_stops_training_and_keeps_its_run(tmp_path, data_cache, monkeypatch):
    pruner = [  # prunes any trial below an mIoU of 1.1 from its first validation on
        "hparams_search.pruner._target_=optuna.pruners.ThresholdPruner",
        "~hparams_search.pruner.n_startup_trials",
        "~hparams_search.pruner.n_warmup_steps",
        "+hparams_search.pruner.lower=1.1",
    ]
    best, sweep = tiny_search(
        tmp_path, data_cache, monkeypatch, "hparams_search.n_trials=1", *pruner, "trainer.max_epochs=3"
    )
    (trial,) = load_trials(sweep)
    assert trial.state == TrialState.PRUNED and trial.user_attrs[PRUNED_AT] == 0
    assert list(trial.intermediate_values) == [0]
    assert best is None  # no trial completed
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(r["job"], r["state"]) for r in rows] == [("0", "pruned")]
    assert float(rows[0]["val/mIoU"]) == pytest.approx(trial.value)  # the run ended as usual: metrics.json
    assert {p.name for p in (sweep / "0" / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert load_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt")["global_step"] == 2  # 1 epoch of 3


# ---- resuming and sharing a study across processes ------------------------------------------------------------
def wait_for_trials(
    sweep: Path, process: subprocess.Popen, want: dict[int, TrialState], training: int, timeout_s: float
) -> None:
    """Until the study holds trials in the ``want``ed states and trial ``training`` trains (its splits.json)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            states = {t.number: t.state for t in load_trials(sweep)}
        except Exception:  # noqa: BLE001  (the study is not created yet)
            states = {}
        if all(states.get(n) == s for n, s in want.items()) and (sweep / str(training) / "splits.json").is_file():
            return
        time.sleep(0.5)
    raise AssertionError(f"no trials {want} within {timeout_s} s (search exit code {process.poll()})")


def test_a_killed_search_resumes_from_its_study(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    command = search_command(sweep, data_cache, n_trials=3, grace_s=4)
    first = start(command, tmp_path, tmp_path / "first.log")
    try:
        wait_for_trials(sweep, first, {0: TrialState.COMPLETE, 1: TrialState.RUNNING}, training=1, timeout_s=300)
    finally:
        first.kill()
        first.wait()
    before = load_trials(sweep)[0]
    metrics_0 = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    trials = load_trials(sweep)
    assert [(t.number, t.state) for t in trials] == [
        (0, TrialState.COMPLETE),  # kept, not trained again
        (1, TrialState.FAIL),  # running when killed: failed once its heartbeat was stale, and replaced
        (2, TrialState.COMPLETE),
        (3, TrialState.COMPLETE),
    ]
    assert (trials[0].datetime_complete, trials[0].params) == (before.datetime_complete, before.params)
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == metrics_0
    assert trials[0].user_attrs[WORKER] != trials[2].user_attrs[WORKER] == trials[3].user_attrs[WORKER]
    finished = [t for t in trials if t.state in FINISHED]
    assert len({t.params["optimizer.lr"] for t in finished}) == 3  # the resumed process drew new values
    assert all((sweep / str(t.number) / "metrics.json").is_file() for t in finished)
    rows = {r["job"]: r for r in csv.DictReader((sweep / "summary.csv").open())}
    assert {job: r["state"] for job, r in rows.items()} == {
        "0": "complete",
        "1": "fail",
        "2": "complete",
        "3": "complete",
    }
    assert rows["1"]["best_ckpt"] == "(failed)"


def test_two_processes_share_one_study(tmp_path, data_cache):
    sweep = tmp_path / "sweep"
    command = search_command(sweep, data_cache, n_trials=3, grace_s=10)
    processes = [start(command, tmp_path, tmp_path / f"worker{i}.log") for i in range(2)]
    codes = [p.wait(timeout=600) for p in processes]
    assert codes == [0, 0], [(tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2)]
    trials = load_trials(sweep)
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(3)]
    assert len({t.user_attrs[WORKER] for t in trials}) == 2  # both processes ran trials
    assert len({t.params["optimizer.lr"] for t in trials}) == 3
    assert all((sweep / str(t.number) / "metrics.json").is_file() for t in trials)


def run_in_threads(targets: list[Callable[[], None]]) -> None:
    """Runs each target in a thread of its own; fails on a target's exception or one still running after 60 s."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a process is stuck (deadlock?)"
    assert not errors, errors


def delayed_ask(monkeypatch, wait: Callable[[], object]) -> None:
    """study.ask calls ``wait()`` before it creates the trial: processes that count free slots together both
    count before either creates its trial."""
    ask = optuna.Study.ask

    def slow_ask(self, *args, **kwargs):
        wait()
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", slow_ask)


def test_processes_racing_for_the_last_slot_take_it_once(tmp_path, monkeypatch):
    """Two processes that both count a free slot before either creates its trial would both create one (a study of
    n_trials ending with n_trials + 1, seen in CI): the count and the creation happen under one lock. Threads
    with their own study objects and lock files stand for the processes (flock locks separate opens of a file)."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="race", storage=storage)
    delayed_ask(monkeypatch, functools.partial(time.sleep, 0.5))  # the second waits for the lock meanwhile

    def process() -> None:
        study = optuna.load_study(study_name="race", storage=storage)
        run_trials(study, 1, lambda trial: 0.5, tmp_path / CLAIM_LOCK, wait_s=5.0, poll_s=0.1, max_failures=1)

    run_in_threads([process, process])
    trials = optuna.load_study(study_name="race", storage=storage).get_trials()
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.COMPLETE)]


def test_without_a_shared_lock_a_surplus_trial_fails_instead_of_counting(tmp_path, monkeypatch, caplog):
    """Where the lock does not reach (each process with a lock of its own: a sweep dir on a file system whose
    flock is local to each machine), a trial that finds the study full before it trains is failed (failed
    trials do not count) and the process stops without counting it as a failure."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="race", storage=storage)
    delayed_ask(monkeypatch, threading.Barrier(2, timeout=30).wait)  # both have counted a free slot
    trained: list[int] = []

    def process(lock: Path) -> None:
        study = optuna.load_study(study_name="race", storage=storage)
        run_trials(study, 1, lambda trial: trained.append(trial.number) or 0.5, lock, 5.0, 0.1, max_failures=1)

    run_in_threads([functools.partial(process, tmp_path / f"{i}.lock") for i in range(2)])
    trials = optuna.load_study(study_name="race", storage=storage).get_trials()
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.COMPLETE), (1, TrialState.FAIL)]
    assert trained == [0]  # the surplus trial never trained
    assert trials[1].user_attrs[SURPLUS] is True
    assert "trial 1 found the study full" in caplog.text


def test_a_file_system_without_flock_runs_without_the_lock(tmp_path, monkeypatch, caplog):
    """Lustre without -o flock raises ENOSYS on every flock: the search warns once and goes on (a surplus trial
    is then failed before it trains, as tested above) instead of failing every process."""
    import errno
    import fcntl

    from seglight.training.trials import ClaimLock

    calls = []

    def no_flock(file, operation):
        calls.append(operation)
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = ClaimLock(tmp_path / CLAIM_LOCK)
    for _ in range(2):
        lock.acquire()
        lock.release()
    assert len(calls) == 1 and lock.unsupported and lock.file is None
    assert caplog.text.count("cannot be locked") == 1


@pytest.mark.parametrize("then", ["returns", "reports"])
def test_a_trial_failed_from_outside_while_it_ran_is_replaced(tmp_path, caplog, then):
    """Another process marks a running trial failed when its heartbeat is late; its own process warns and runs
    the next trial instead of dying on Optuna's refusal to finish it (after the objective returns: tell's
    ValueError, turned into an AssertionError; when it reports a value for pruning: UpdateFinishedTrialError).
    It counts as a failure: when it happens to every trial, max_failures stops the process."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="late", storage=storage)
    other = optuna.load_study(study_name="late", storage=storage)

    def objective(trial: optuna.Trial, late: int) -> float:
        if trial.number < late:  # what fail_stale_trials in another process does to a trial with a late heartbeat
            other._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            if then == "reports":
                trial.report(0.5, step=1)
        return 0.5

    run_trials(study, 1, functools.partial(objective, late=1), tmp_path / CLAIM_LOCK, 5.0, 0.1, max_failures=2)
    trials = optuna.load_study(study_name="late", storage=storage).get_trials()
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.FAIL), (1, TrialState.COMPLETE)]
    assert "trial 0 was failed while it ran" in caplog.text
    with pytest.raises(RuntimeError, match="2 trials failed in a row"):
        run_trials(study, 2, functools.partial(objective, late=9), tmp_path / CLAIM_LOCK, 5.0, 0.1, max_failures=2)


def test_a_grace_period_shorter_than_two_heartbeats_is_refused(tmp_path):
    """Processes waiting for a slot fail trials whose heartbeat is older than the grace period: shorter than two
    heartbeat intervals, live trials would be failed between their heartbeats."""
    from seglight.config import compose_config

    cfg = compose_config(["hparams_search=optuna_miou", "hparams_search.heartbeat.grace_period=50"]).hparams_search
    with pytest.raises(ValueError, match="grace_period=50 is shorter than twice heartbeat.interval=30"):
        search(cfg, [], tmp_path / "sweep", compose=None)  # type: ignore[arg-type]
    assert not (tmp_path / "sweep").exists()  # refused before anything is created


def test_other_errors_of_finishing_a_trial_are_raised(tmp_path):
    """Only Optuna's refusal to finish a trial failed elsewhere is forgiven: a sampler's own error is raised."""

    class Broken(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            raise ValueError("the sampler broke")

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}", sampler=Broken())
    with pytest.raises(ValueError, match="the sampler broke"):
        run_trials(study, 1, lambda trial: 0.5, tmp_path / CLAIM_LOCK, 5.0, 0.1, max_failures=3)


def test_a_sweep_dir_belongs_to_one_study(tmp_path):
    """Trial dirs are numbered per study: a second study (or an old --multirun's jobs) in the same sweep dir is
    refused instead of overwritten."""
    from seglight.training.search import SWEEP_OWNER, claim_sweep_dir

    claim_sweep_dir(tmp_path, "a", "sqlite:///x.db")
    claim_sweep_dir(tmp_path, "a", "sqlite:///x.db")  # the same study again: resumes
    assert (tmp_path / SWEEP_OWNER).exists()
    with pytest.raises(ValueError, match="holds the trials of study 'a'"):
        claim_sweep_dir(tmp_path, "b", "sqlite:///x.db")
    multirun = tmp_path / "old"
    (multirun / "0" / ".hydra").mkdir(parents=True)
    (multirun / "0" / ".hydra" / "overrides.yaml").write_text("[]")
    with pytest.raises(ValueError, match="jobs of another sweep"):
        claim_sweep_dir(multirun, "a", "sqlite:///y.db")


def test_a_study_refuses_another_search_space(tmp_path):
    """Resuming a study after its search space changed would rank trials drawn from different spaces together."""
    from omegaconf import OmegaConf

    from seglight.config import compose_config
    from seglight.training.search import open_study
    from seglight.training.search_space import search_space

    cfg = compose_config(["hparams_search=optuna_miou"]).hparams_search
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = search_space(cfg.params)
    open_study(cfg, url, [], space)
    open_study(cfg, url, [], space)  # unchanged: resumes
    smaller = dict(OmegaConf.to_container(cfg.params))
    smaller.pop(next(iter(smaller)))
    with pytest.raises(ValueError, match="searched"):
        open_study(cfg, url, [], search_space(OmegaConf.create(smaller)))


def test_resuming_a_study_valued_by_best_ckpt_warns_that_values_do_not_compare(tmp_path, caplog):
    """Trials finished before the objective became the final weights' score keep best.ckpt's (higher) values."""
    from seglight.config import compose_config
    from seglight.training.search import OBJECTIVE, open_study

    cfg = compose_config(["hparams_search=optuna_miou"]).hparams_search
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(cfg, url, [])
    study.tell(study.ask(), 0.5)
    with caplog.at_level(logging.WARNING):
        open_study(cfg, url, [])
    assert "do not compare" not in caplog.text  # begun with this objective
    study.set_user_attr(OBJECTIVE, None)  # as a study begun before it
    with caplog.at_level(logging.WARNING):
        open_study(cfg, url, [])
    assert "1 earlier trials are valued by best.ckpt's val/mIoU" in caplog.text


def test_a_trial_without_validation_is_refused_before_training(tmp_path):
    """trainer.limit_val_batches=0 leaves no val/mIoU to optimise: the trial trained, then failed on a KeyError."""
    from conftest import compose_config

    from seglight.training.search import run_trial

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with pytest.raises(ValueError, match="limit_val_batches=0"):
        run_trial(trial, {}, ["trainer.limit_val_batches=0"], tmp_path, compose_config, {})
    assert not (tmp_path / "0").exists()  # nothing trained


@pytest.mark.parametrize(
    ("metrics", "objective"),
    [
        ({"val/mIoU": 0.8, "final_weights_val/mIoU": 0.6}, 0.6),  # best.ckpt was chosen on these val images
        ({"val/mIoU": 0.8}, 0.8),  # the final weights were not scored (ddp_spawn): best.ckpt's, with a note
    ],
)
def test_a_trial_scores_the_weights_it_ended_with(tmp_path, monkeypatch, metrics, objective):
    """best.ckpt is the best of a trial's validations on the val images the study maximises: its score is the
    maximum of noisy figures, which favours noisy recipes. The study maximises the final weights' score."""
    from seglight.training import search as search_module

    monkeypatch.setattr(search_module, "train", lambda cfg: dict(metrics))
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    assert search_module.run_trial(trial, {}, [*TINY], tmp_path, compose_config, {}) == objective
    attrs = study.trials[0].user_attrs
    assert attrs["best_ckpt_val/mIoU"] == 0.8 and attrs["scored"] == (
        "final weights" if objective == 0.6 else "best.ckpt"
    )
