"""python -m seglight.evaluate ckpt=PATH data=... split=val|test output=DIR (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")
def _main(cfg: DictConfig) -> float:
    from hydra.utils import instantiate

    from seglight.evaluation import evaluate
    from seglight.inference import Predictor
    predictor = Predictor.load(cfg.ckpt, device=cfg.device, precision=cfg.precision, tta=cfg.tta,
                               tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap)
    dm = instantiate(cfg.data, _convert_="all")
    return evaluate(predictor, dm.raw_dataset(cfg.split), cfg.output)["mIoU"]


def main() -> None:
    run_hydra(_main, "evaluate")


if __name__ == "__main__":
    main()
