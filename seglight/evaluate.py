"""python -m seglight.evaluate ckpt=PATH data=... split=val|test output=DIR (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig, OmegaConf

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")
def _main(cfg: DictConfig) -> float:
    from hydra.utils import instantiate

    from seglight.evaluation import evaluate, split_dataset
    from seglight.inference import Predictor
    predictor = Predictor.load(cfg.ckpt, device=cfg.device, precision=cfg.precision, tta=cfg.tta,
                               tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap)
    dm = instantiate(cfg.data, _convert_="all")
    dataset = split_dataset(dm, cfg.split, cfg.ckpt, OmegaConf.to_container(cfg.data, resolve=True))
    return evaluate(predictor, dataset, cfg.output)["mIoU"]


def main() -> None:
    run_hydra(_main, "evaluate")


if __name__ == "__main__":
    main()
