"""python -m seglight.check_data data=... : find every bad file before training; infer=true guesses classes and void
and prints the training command (see conf/check_data.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="check_data", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.report.data_report import check_data, infer_data

    if cfg.infer:
        sys.exit(infer_data(cfg.data, cfg.output, cfg.infer_max_masks, cfg.seed))
    sys.exit(check_data(cfg.data, cfg.splits, cfg.plot))


def main() -> None:
    run_hydra(_main, "check_data")


if __name__ == "__main__":
    main()
