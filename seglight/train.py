"""python -m seglight.train [overrides]: train a segmentation model (see conf/train.yaml);
with hparams_search=<name>, run an Optuna study of train configs (see conf/hparams_search/)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seglight.config import CONF_DIR, compose_config, run_hydra
from seglight.model.metrics import MONITOR


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    if cfg.get("hparams_search"):  # the run dir is the sweep dir; each trial trains in a dir of its own there
        from seglight.training.search import search

        hydra_cfg = HydraConfig.get()
        return search(cfg.hparams_search, hydra_cfg.overrides.task, hydra_cfg.runtime.output_dir, compose_config)

    from seglight.training.fit import train  # imported late: `--help` and config errors stay fast

    return train(cfg).get(MONITOR)  # the value a hyperparameter sweeper optimises; None: validation was off


def main() -> None:
    run_hydra(_main, "train")


if __name__ == "__main__":
    main()
