"""Real CamVid data (../shared/camvid): slow, run with `make test-full`."""

from pathlib import Path

import pytest
from conftest import compose_config
from omegaconf import open_dict

from seglight.training.fit import train

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "camvid"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CAMVID.is_dir(), reason="../shared/camvid not present")]


def test_camvid_preset_debug_run(tmp_path):
    # trainer.max_epochs explicitly: the preset sets it after group choices such as trainer=debug
    cfg = compose_config(
        [
            "experiment=camvid",
            "trainer=debug",
            "trainer.max_epochs=1",
            "logger=csv",
            "data.num_workers=0",
            "loss.class_weights=null",
        ]
    )
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path)
    metrics = train(cfg)
    assert len([k for k in metrics if k.startswith("val/iou/")]) == 11
    assert "val/iou/Bicyclist" in metrics and 0.0 <= metrics["val/mIoU"] <= 1.0
