"""Where the configs live, Hydra entry-point plumbing, and config errors a person can act on."""

from __future__ import annotations

import difflib
import os
import re
import sys
from importlib.resources import files
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf


def _config_root() -> Path:
    """The folder holding conf/ and experiments/conf/: the source checkout's top level when seglight runs from
    one (editable install, tests), else the installed package, where the wheel carries both as package data."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf" / "train.yaml").is_file():
        return checkout
    return Path(str(files("seglight")))


ROOT = _config_root()
CONF_DIR = ROOT / "conf"
if not OmegaConf.has_resolver("seglight_root"):
    OmegaConf.register_new_resolver("seglight_root", lambda sub="": str(ROOT / sub))  # ${seglight_root:conf}


def compose_config(overrides: list[str], config_name: str = "train", return_hydra_config: bool = False) -> DictConfig:
    """The config ``python -m seglight.<config_name> *overrides`` would run with, composed in-process
    (for tests, notebooks and benchmarks). ``${hydra:...}`` values are not set: override ``run_dir``
    (or ask for the ``hydra`` node with ``return_hydra_config=True``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


def explain_config_error(err: BaseException, config_name: str, overrides: list[str] | None = None) -> str | None:
    """For an override of a key that does not exist, the message with the valid keys at that level.

    The keys are read from the config composed with the user's other overrides (``loss=focal`` changes
    what ``loss.*`` holds), or from the defaults where those do not compose (sweeps).
    """
    text = str(err)
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if not m:
        return None
    full_key = m.group(1)
    cause = err.__cause__ or err.__context__
    cause_key = getattr(cause, "full_key", None)
    if cause_key:
        full_key = str(cause_key)
    parent_key, _, leaf = full_key.rpartition(".")
    others = [
        o
        for o in overrides or []
        if "=" in o and not o.startswith(("-", "hydra")) and o.split("=", 1)[0].lstrip("+~") != full_key
    ]
    node = None
    for attempt in (others, []):
        try:
            cfg = compose_config(attempt, config_name)
            node = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            break
        except Exception:  # noqa: BLE001  (best effort: next attempt, then Hydra's own message)
            continue
    if not isinstance(node, DictConfig):
        return None
    valid = sorted(str(k) for k in node.keys())
    close = difflib.get_close_matches(leaf, valid, n=1)
    hint = f" Did you mean {parent_key + '.' if parent_key else ''}{close[0]}?" if close else ""
    where = f"'{parent_key}'" if parent_key else "the top level"
    return (
        f"Unknown config key '{full_key}'.{hint}\nValid keys in {where}: {', '.join(valid)}\n"
        f"(to add a new key on purpose, write +{full_key}=...)"
    )


def run_hydra(main: Callable[[], object], config_name: str) -> None:
    """Runs a @hydra.main function; a typo in an override exits 2 listing the valid keys."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from hydra.errors import ConfigCompositionException, MissingConfigException

    try:
        main()
    except (ConfigCompositionException, MissingConfigException) as e:
        cause = f"\n{type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else ""
        message = explain_config_error(e, config_name, sys.argv[1:])
        print(message or f"{type(e).__name__}: {e}{cause}", file=sys.stderr)
        sys.exit(2)
