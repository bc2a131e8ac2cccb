"""Loggers built from config. W&B runs offline unless it can really reach a server; every logger keeps its
history when a run resumes (CSV rows, TensorBoard events in the same folder, the same W&B run)."""

from __future__ import annotations

import csv
import logging
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from seglight.util.network import reachable

log = logging.getLogger(__name__)


def wandb_mode(requested: str = "auto") -> str:
    """'online' only with an API key and a reachable server; 'offline' otherwise. Explicit modes pass through.

    WANDB_MODE in the environment wins when set to a valid value (an empty one is ignored).
    """
    env = os.environ.get("WANDB_MODE", "").strip()
    if env in ("online", "offline", "disabled", "dryrun"):
        return env
    if requested != "auto":
        return requested
    has_key = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    if not has_key:
        return "offline"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    if reachable(host):
        return "online"
    log.warning("W&B server %s unreachable: logging offline (sync later with `wandb sync`)", host)
    return "offline"


def _netrc_has_wandb() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def sweep_group() -> str | None:
    """Under ``--multirun``, a name shared by the sweep's jobs (its dir, e.g. ``2026-11-25/14-05-33``)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra run (tests, notebooks)
        return None
    return "/".join(Path(hc.sweep.dir).parts[-2:]) if hc.mode == RunMode.MULTIRUN else None


WANDB_ID_FILE = "wandb_id.txt"


def wandb_run_id(save_dir: str | Path, resume: bool) -> str:
    """The W&B run id of the run dir: the one stored in ``save_dir/wandb_id.txt`` when resuming, else a new one
    (stored there)."""
    path = Path(save_dir) / WANDB_ID_FILE
    if resume and path.is_file():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:8]  # W&B ids are short [a-z0-9] strings
    if getattr(rank_zero_only, "rank", 0) == 0:  # later DDP ranks log nothing to W&B: they never overwrite it
        path.write_text(run_id)
    return run_id


def wandb_logger(
    save_dir: str,
    project: str = "seglight",
    name: str | None = None,
    group: str | None = "auto",
    mode: str = "auto",
    log_model: bool = False,
    resume: bool = False,
    **kwargs,
):
    """Lightning's WandbLogger with the mode decided by ``wandb_mode``; group "auto" = the sweep's group.
    ``resume=True`` continues the run dir's W&B run (same id) instead of starting another."""
    from pytorch_lightning.loggers import WandbLogger

    if os.environ.get("WANDB_MODE", "x").strip() == "":  # an empty WANDB_MODE is a wandb validation error
        del os.environ["WANDB_MODE"]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    group = sweep_group() if group == "auto" else group
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        mode=wandb_mode(mode),
        log_model=log_model,
        id=wandb_run_id(save_dir, resume),
        resume="allow",
        **kwargs,
    )


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer without its reset: an existing metrics.csv is kept and appended to (Lightning
    deletes it when the folder exists), its header extended when new metrics appear."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))

    def drop_after(self, epoch: int | None, step: int = 0) -> None:
        """Removes the rows of epochs after ``epoch`` (rows without an epoch, such as learning rates: from step
        ``step`` on): a resumed run logs those again. ``epoch=None`` starts the file anew (a fresh run)."""
        if not os.path.isfile(self.metrics_file_path):
            return
        if epoch is None:
            os.remove(self.metrics_file_path)
            self.metrics_keys = []
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = [
                r
                for r in reader
                if (float(r["epoch"]) <= epoch if r.get("epoch") else not r.get("step") or float(r["step"]) < step)
            ]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger that keeps metrics.csv across resumes (``HistoryWriter``) and writes every row as it
    is logged, so a killed run loses no logged epoch."""

    def __init__(self, save_dir: str, name: str = "csv", version: str = "", **kwargs) -> None:
        kwargs.setdefault("flush_logs_every_n_steps", 1)
        super().__init__(save_dir, name=name, version=version, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]
