"""export format=hf: smp's folder with a model card; predict loads the folder; the push fails clearly offline."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

from seglight.inference.export import export_checkpoint
from seglight.inference.predictor import Predictor
from seglight.report.tables import selected_above_final


def test_hf_folder_has_a_model_card_and_predicts_like_the_checkpoint(trained_tiny, tmp_path, monkeypatch, capsys):
    import seglight.inference.hub as hub

    ckpt, _, run = trained_tiny
    out = tmp_path / "hf"
    monkeypatch.setattr(hub, "reachable", lambda host: False)  # offline, whatever the test machine is
    assert export_checkpoint(ckpt, "hf", out, push_to_hub="someone/shapes") is False  # the push could not happen
    assert "cannot be reached" in capsys.readouterr().err
    assert {"config.json", "seglight.json", "README.md"} <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "library_name: segmentation-models-pytorch" in card
    for name in ("background", "circle", "square", "triangle"):
        assert f"| {name} |" in card
    assert f"**{metrics['val/mIoU']:.3f}**" in card and "95% CI [" in card  # val mIoU with its interval
    assert "normalised with mean [0.485, 0.456, 0.406]" in card
    assert "not a held-out figure" not in card
    retrained = tmp_path / "run_on_val"  # the same run, had it trained on its val images
    shutil.copytree(run, retrained)
    metrics_file = retrained / "metrics.json"
    final = metrics["val/mIoU"] - 0.05  # best.ckpt chosen on val above the weights the run ended with
    metrics_file.write_text(
        json.dumps(
            {
                **metrics,
                "train_on_val": True,
                "best_ckpt": str(retrained / "checkpoints" / ckpt.name),
                "final_weights_val/mIoU": final,
            }
        )
    )
    export_checkpoint(retrained / "checkpoints" / ckpt.name, "hf", tmp_path / "hf_on_val")
    card_on_val = (tmp_path / "hf_on_val" / "README.md").read_text()
    assert "not a held-out figure: trained on val" in card_on_val
    assert f"the weights the run ended with scored {final:.3f}" in card_on_val
    assert ("the weights the run ended with" in card) == (selected_above_final(metrics) is not None)
    same = {**metrics, "final_weights_val/mIoU": metrics["val/mIoU"] - 1e-5}  # the same weights, a few pixels apart
    assert selected_above_final(same) is None
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    folder, original = Predictor.load(out, precision="32"), Predictor.load(ckpt, precision="32")
    assert folder.class_names == original.class_names and folder.palette.colors == original.palette.colors
    np.testing.assert_allclose(folder.predict_image(image), original.predict_image(image), atol=1e-5)
    assert folder.data_split == original.data_split  # evaluate ckpt=<folder> scores the run's own val split
    assert folder.chosen_on == original.chosen_on == "val/mIoU"  # and says it was chosen on it
    assert (folder.tile_size, folder.tile_overlap) == (original.tile_size, original.tile_overlap)
    retiled = tmp_path / "hf64"  # a model validated in windows of 64: the folder tiles as it did
    shutil.copytree(out, retiled)
    info = json.loads((retiled / "seglight.json").read_text())
    (retiled / "seglight.json").write_text(json.dumps({**info, "tile_size": 64, "tile_overlap": 0.5}))
    loaded = Predictor.load(retiled, precision="32")
    assert (loaded.tile_size, loaded.tile_overlap) == (64, 0.5)

    Image.fromarray(image).save(tmp_path / "x.png")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglight.predict",
            f"ckpt={out}",
            f"input={tmp_path / 'x.png'}",
            f"output={tmp_path / 'p'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert np.asarray(Image.open(tmp_path / "p" / "x.png")).shape == (70, 90)


def test_model_card_val_figures_follow_the_best_weights_not_the_path(trained_tiny, tmp_path):
    """A run dir copied from elsewhere (metrics.json names a path that is gone) and a renamed copy of its best.ckpt
    keep the val figures; other weights in the run dir get none, whatever their name."""
    import torch

    from seglight.inference.hub import run_record

    ckpt, _, run = trained_tiny
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    metrics = json.loads((moved / "metrics.json").read_text())
    gone = f"/elsewhere/run/checkpoints/{ckpt.name}"
    (moved / "metrics.json").write_text(json.dumps({**metrics, "best_ckpt": gone}))
    best = moved / "checkpoints" / ckpt.name
    shutil.copy(best, moved / "checkpoints" / "chosen.ckpt")
    assert run_record(ckpt)["metrics"]["val/mIoU"] == metrics["val/mIoU"]  # the run where it was trained
    assert run_record(best)["metrics"]["val/mIoU"] == metrics["val/mIoU"]
    assert run_record(moved / "checkpoints" / "chosen.ckpt")["metrics"]["val/mIoU"] == metrics["val/mIoU"]
    state = torch.load(best, map_location="cpu", weights_only=False)
    first = next(iter(state["state_dict"]))
    state["state_dict"][first] = state["state_dict"][first] + 1.0
    torch.save(state, moved / "checkpoints" / "other.ckpt")
    assert "metrics" not in run_record(moved / "checkpoints" / "other.ckpt")
