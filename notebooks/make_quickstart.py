"""Writes notebooks/quickstart.ipynb from the cells below; with --execute, runs it and keeps the outputs."""

import sys
from pathlib import Path

import nbformat as nbf

CELLS = [
    (
        "md",
        "# seglight quickstart\n\nTrain a U-Net on the generated shapes data for about a minute, look at the "
        "training curves, predict on validation images and read the per-class table. Everything runs on a CPU.",
    ),
    (
        "code",
        """import os, tempfile
import sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
import seglight
from seglight.training.fit import train

run_dir = Path(tempfile.mkdtemp(prefix="seglight-quickstart-"))
with initialize_config_dir(str(seglight.CONF_DIR), version_base="1.3"):
    cfg = compose("train", overrides=["data.num_train=256", "data.num_val=64", "trainer.max_epochs=4",
                                      "trainer.enable_progress_bar=false", "logger=csv"])
with open_dict(cfg):
    cfg.run_dir = str(run_dir)
metrics = train(cfg)
print(f"val mIoU of the best checkpoint: {metrics['val/mIoU']:.3f}")""",
    ),
    (
        "md",
        "## Training curves\n\nThe CSV logger's `metrics.csv`, plotted "
        "(the same picture is saved as `csv/curves.png`).",
    ),
    (
        "code",
        """from seglight.report.figures import curves_figure
fig = curves_figure(run_dir / "csv" / "metrics.csv")""",
    ),
    (
        "md",
        "## Predictions\n\nThe checkpoint carries its class names, colours and normalisation: nothing else is "
        "needed to predict. Columns: image, ground truth, prediction, overlay.",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt
import numpy as np
from hydra.utils import instantiate
from seglight.inference.predictor import Predictor
from seglight.report.figures import panel

predictor = Predictor.load(metrics["best_ckpt"], device="cpu")
val = instantiate(cfg.data).raw_dataset("val")
rows = []
for i in range(4):
    image, mask = val.read_pair(i)
    pred = predictor.predict_image(image).argmax(axis=0)  # softmax probabilities (C,H,W) -> index mask (H,W)
    rows.append(panel(image, mask, pred, predictor.palette))
plt.figure(figsize=(10, 10))
plt.imshow(np.concatenate(rows, axis=0))
plt.axis("off")
plt.title("image | ground truth | prediction | overlay")
plt.show()""",
    ),
    ("md", "## Per-class IoU"),
    (
        "code",
        """from seglight.report.tables import print_class_table
print_class_table(metrics, "val", predictor.class_names)""",
    ),
]


def build() -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


if __name__ == "__main__":
    path = Path(__file__).with_name("quickstart.ipynb")
    nb = build()
    if "--execute" in sys.argv:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=900, kernel_name="python3").execute()
    nbf.write(nb, path)
    print(f"wrote {path}")
