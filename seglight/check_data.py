"""python -m seglight.check_data data=... : find every bad file before training (see conf/check_data.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="check_data", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.report.data_report import check_data

    sys.exit(check_data(cfg.data, cfg.splits, cfg.plot))


def main() -> None:
    run_hydra(_main, "check_data")


if __name__ == "__main__":
    main()
