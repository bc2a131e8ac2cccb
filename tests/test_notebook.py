"""The quickstart notebook runs cleanly from a fresh kernel."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path, data_cache, monkeypatch):
    monkeypatch.setenv("SEGLIGHT_CACHE", str(data_cache))  # the kernel inherits it
    monkeypatch.setenv("WANDB_MODE", "offline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "val mIoU of the best checkpoint" in text and "triangle" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # curves and predictions


def test_committed_notebook_keeps_its_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "run `make notebook` before committing"
