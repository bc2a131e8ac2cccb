"""Loggers built from config. W&B runs offline unless it can really reach a server."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)


def wandb_mode(requested: str = "auto", timeout: float = 2.0) -> str:
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
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return "online"
    except OSError:
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


def wandb_logger(save_dir: str, project: str = "seglight", name: str | None = None, group: str | None = "auto",
                 mode: str = "auto", log_model: bool = False, **kwargs):
    """Lightning's WandbLogger with the mode decided by ``wandb_mode``; group "auto" = the sweep's group."""
    from pytorch_lightning.loggers import WandbLogger

    if os.environ.get("WANDB_MODE", "x").strip() == "":  # an empty WANDB_MODE is a wandb validation error
        del os.environ["WANDB_MODE"]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    group = sweep_group() if group == "auto" else group
    return WandbLogger(save_dir=save_dir, project=project, name=name, group=group, mode=wandb_mode(mode),
                       log_model=log_model, **kwargs)
