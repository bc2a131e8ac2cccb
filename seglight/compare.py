"""python -m seglight.compare runs=[A,B,...] data=... split=val output=DIR (see conf/compare.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="compare", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.inference.compare import compare_runs
    from seglight.util.values import plain

    compare_runs(**plain(cfg))


def main() -> None:
    run_hydra(_main, "compare")


if __name__ == "__main__":
    main()
