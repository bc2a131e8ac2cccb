"""python -m seglight.predict ckpt=PATH input=FILE|DIR|GLOB output=DIR (see conf/predict.yaml)."""

import hydra
from omegaconf import DictConfig

from seglight.config import CONF_DIR, run_hydra


@hydra.main(config_path=str(CONF_DIR), config_name="predict", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from seglight.inference.files import predict_checkpoint
    from seglight.util.values import plain

    counts = predict_checkpoint(**plain(cfg))
    print(f"predicted {counts['predicted']} image(s), skipped {counts['skipped']} already done -> {cfg.output}")


def main() -> None:
    run_hydra(_main, "predict")


if __name__ == "__main__":
    main()
