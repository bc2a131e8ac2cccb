"""python -m seglight.audit ckpt=PATH data=... split=train output=DIR (see conf/audit.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="audit", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.inference.audit import audit_checkpoint
    from seglight.util.values import plain

    options = plain(cfg)
    options.pop("seed")  # only the data config reads it
    audit_checkpoint(**options)


def main() -> None:
    run_hydra(_main, "audit")


if __name__ == "__main__":
    main()
