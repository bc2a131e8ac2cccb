"""Taking trials of a study that several processes share: each runs trials until the study holds ``n_trials``
finished ones, and the last free slot goes to one process only (``run_trials``)."""

from __future__ import annotations

import errno
import fcntl
import logging
import time
import warnings
from pathlib import Path
from typing import IO, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SURPLUS = "surplus"  # trial user attribute: it found the study full before it trained (failed, not run)


def free_slots(study: optuna.Study, n_trials: int, wait_s: float, poll_s: float) -> int:
    """How many more trials this process may start: ``n_trials`` less the finished and the running ones. While
    running trials alone hold the rest, waits up to ``wait_s`` for them: the trial of a killed process goes stale
    within it, is marked failed and frees its slot; live ones are left to their processes."""
    deadline = time.monotonic() + wait_s
    waiting = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if len(trials) < n_trials or len(trials) - len(running) >= n_trials or time.monotonic() >= deadline:
            return max(n_trials - len(trials), 0)
        if not waiting:
            log.info("trials %s hold the rest of n_trials: waiting up to %.0f s for them", running, wait_s)
            waiting = True
        time.sleep(poll_s)


class ClaimLock:
    """An exclusive lock on a file in the sweep dir, shared by every process of the study (they share that dir:
    their trial dirs are in it). Counting the free slots and creating the trial happen under it, so two processes
    cannot both take the last slot (without it, a study of n_trials could end with n_trials + 1). Where the file
    system has no flock, the processes go on without it: ``run_trials`` fails a surplus trial before it trains."""

    LOG_AFTER_S = 30.0  # a wait this long is logged: the holder may be stuck
    BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)  # held by another process (POSIX allows EACCES)

    def __init__(self, path: Path):
        self.path = path
        self.file: IO[bytes] | None = None
        self.unsupported = False

    def acquire(self) -> None:
        if self.unsupported:
            return
        self.file = self.path.open("ab")
        started, logged = time.monotonic(), False
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno in self.BUSY:
                    if not logged and time.monotonic() - started > self.LOG_AFTER_S:
                        log.info("waiting for %s: another process of the study is taking a trial", self.path)
                        logged = True
                    time.sleep(0.05)
                    continue
                # no flock on this file system (ENOSYS, EOPNOTSUPP, EINVAL; ENOLCK: none left on an NFS server)
                log.warning("%s cannot be locked (%s): processes sharing the study may draw a surplus trial, "
                            "which is failed before it trains", self.path, e)  # fmt: skip
                self.unsupported = True
                self.release()
                return

    def release(self) -> None:
        if self.file is not None:
            if not self.unsupported:
                fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def failed_elsewhere(error: BaseException) -> bool:
    """Whether ``error``, raised by ``study.optimize``, is Optuna refusing to finish a trial that another process
    had already failed (its heartbeat came late): ``UpdateFinishedTrialError`` from ``trial.report``, or tell's
    ``ValueError("Cannot tell a FAIL trial.")``, which Optuna 5 turns into ``AssertionError("Should not reach.")``
    when the objective had returned."""
    if isinstance(error, optuna.exceptions.UpdateFinishedTrialError):
        return True
    if isinstance(error, AssertionError) and error.__context__ is not None:
        error = error.__context__
    return isinstance(error, ValueError) and str(error).startswith("Cannot tell a FAIL trial")


class SurplusTrial(Exception):
    """A trial created when the study already held ``n_trials`` finished or running ones."""


def run_trials(
    study: optuna.Study,
    n_trials: int,
    objective: Callable[[optuna.Trial], float],
    lock_path: Path,
    wait_s: float,
    poll_s: float,
    max_failures: int,
) -> None:
    """Runs ``objective`` in new trials of ``study`` until it holds ``n_trials`` finished ones (``free_slots``).
    The last free slot is taken by one process only: the count and ``study.ask`` (inside ``study.optimize``) run
    under ``ClaimLock(lock_path)``, released once the trial exists, before it trains. A trial that still finds
    ``n_trials`` finished or running trials numbered below it (processes the lock does not reach) is failed
    before it trains (user attribute ``surplus``) and does not count as a failure. A trial that another process
    failed while it ran (its heartbeat came late) is logged and replaced."""
    ran: list[FrozenTrial] = []
    lock = ClaimLock(lock_path)
    current: dict[str, int] = {}

    def record(_: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial)

    def claimed(trial: optuna.Trial) -> float:
        lock.release()  # the trial is RUNNING in the study now: other processes count it
        current["number"] = trial.number
        held = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in held) >= n_trials:
            trial.set_user_attr(SURPLUS, True)
            log.warning("trial %d found the study full (n_trials %d) before it trained: failed, not run (is "
                        "%s shared by every process?)", trial.number, n_trials, lock.path)  # fmt: skip
            raise SurplusTrial(f"trial {trial.number}: the study already holds n_trials={n_trials} trials")
        return objective(trial)

    def state_of(number: int) -> TrialState | None:
        return next((t.state for t in study.get_trials(deepcopy=False) if t.number == number), None)

    failures = 0
    while free_slots(study, n_trials, wait_s, poll_s) > 0:  # waits for running trials outside the lock
        lock.acquire()
        current.clear()
        try:
            if free_slots(study, n_trials, 0.0, poll_s) == 0:  # another process took the slot meanwhile
                continue
            study.optimize(claimed, n_trials=1, catch=(Exception,), callbacks=[record], gc_after_trial=True)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, AssertionError) as e:
            number = current.get("number")
            if not failed_elsewhere(e) or number is None or state_of(number) != TrialState.FAIL:
                raise
            log.warning("trial %d was failed while it ran: its heartbeat came later than hparams_search.heartbeat."
                        "grace_period allows (raise it); a new trial takes its place", number)  # fmt: skip
            failed = True
        else:
            if ran and ran[-1].user_attrs.get(SURPLUS):
                continue
            failed = bool(ran) and ran[-1].state == TrialState.FAIL
        finally:
            lock.release()
        failures = failures + 1 if failed else 0
        if failures >= max_failures:
            raise RuntimeError(f"{failures} trials failed in a row (their errors are logged above): stopping")
