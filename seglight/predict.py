"""python -m seglight.predict ckpt=PATH input=FILE|DIR|GLOB output=DIR (see conf/predict.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="predict", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.inference import Predictor
    from seglight.prediction import predict_files
    predictor = Predictor.load(cfg.ckpt, device=cfg.device, precision=cfg.precision, tta=cfg.tta,
                               tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap)
    counts = predict_files(predictor, cfg.input, cfg.output, cfg.batch_size, cfg.save_probs, cfg.overwrite)
    print(f"predicted {counts['predicted']} image(s), skipped {counts['skipped']} already done -> {cfg.output}")


def main() -> None:
    run_hydra(_main, "predict")


if __name__ == "__main__":
    main()
