"""evaluate's report.html, bootstrap intervals in metrics.json, calibration and the stored temperature."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NEEDS_CHROMIUM, TINY, compose_config, screenshot
from PIL import Image

from seglight.data.dataset import SegmentationDataset
from seglight.data.palette import Palette
from seglight.inference.evaluation import evaluate, evaluate_checkpoint
from seglight.inference.predictor import TTA, Predictor
from seglight.model.calibration import ReliabilityBins, fit_temperature


@pytest.fixture(scope="module")
def trained(trained_tiny) -> tuple[Path, Path]:
    """(checkpoint, data root) of the shapes model trained for a few steps."""
    return trained_tiny[0], trained_tiny[1]


def test_fit_temperature_recovers_a_known_temperature():
    """Labels drawn from softmax(z); the model says 3z: the fitted temperature is 3."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (40000, 5))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    assert fit_temperature(3 * z, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z, labels) == pytest.approx(1.0, rel=0.05)


def test_ece_equals_its_definition():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=(30, 20)).transpose(2, 0, 1)  # (C,H,W)
    target = rng.integers(0, 4, (30, 20))
    target[:3] = 255
    bins = ReliabilityBins(10)
    bins.update(probs, target)
    keep = target != 255
    conf, correct = probs.max(0)[keep], (probs.argmax(0) == target)[keep]
    which = np.minimum((conf * 10).astype(int), 9)
    expected = sum(
        (which == b).sum() / keep.sum() * abs(correct[which == b].mean() - conf[which == b].mean())
        for b in range(10)
        if (which == b).any()
    )
    assert bins.ece() == pytest.approx(expected, abs=1e-9)


class OverconfidentPredictor(Predictor):
    """Reads the class from the red channel (class k painted as red = 60k) and says so with logit 8 against 0:
    about 99.9% confident, while the labels below disagree with the image on 30% of the pixels."""

    def __init__(self) -> None:
        palette = Palette(["a", "b", "c", "d"], [(0, 0, 0), (60, 0, 0), (120, 0, 0), (180, 0, 0)])
        super().__init__(palette.names, palette, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), tile_size=None)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        k = (x[:, 0] * 255 / 60).round().long().clamp(0, 3)  # (B,H,W)
        return torch.nn.functional.one_hot(k, 4).permute(0, 3, 1, 2).float() * 8.0


def _noisy_set(root: Path, n: int = 6, noise: float = 0.3) -> SegmentationDataset:
    rng = np.random.default_rng(2)
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i in range(n):
        cls = np.repeat(rng.integers(0, 4, (8, 10)), 8, axis=0).repeat(8, axis=1)  # (64,80) blocks
        image = np.zeros((64, 80, 3), np.uint8)
        image[..., 0] = cls * 60
        label = np.where(rng.random(cls.shape) < noise, rng.integers(0, 4, cls.shape), cls)
        Image.fromarray(image).save(root / "img" / f"{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "ann" / f"{i}.png")
    return SegmentationDataset(root / "img", root / "ann", 4)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model(tmp_path):
    predictor, ds = OverconfidentPredictor(), _noisy_set(tmp_path)
    result = evaluate(predictor, ds, tmp_path / "eval", calibrate=True)
    assert result["acc"] == pytest.approx(0.775, abs=0.03)  # 70% clean + 30% noise that lands right 1 in 4
    assert result["ece"] > 0.2  # ~99.9% sure, ~78% right
    assert result["temperature"] > 2
    assert result["ece_sample_after"] < result["ece_sample_before"] / 5
    # the fitted temperature applied to every pixel: calibrated, and the masks are unchanged
    predictor.temperature = result["temperature"]
    after = evaluate(predictor, ds, tmp_path / "after")
    assert after["ece"] < result["ece"] / 5 and after["mIoU"] == result["mIoU"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "Temperature fitted on this split" in html and f"{result['temperature']:.3f}" in html


def test_report_html_and_intervals_in_metrics_json(trained, tmp_path):
    ckpt, data = trained
    run = str(ckpt.parent.parent)
    result = evaluate_checkpoint(
        ckpt,
        {**_data_config(data)},
        "val",
        tmp_path / "eval",
        top_k=2,
    )
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    low, high = saved["mIoU_ci"]
    assert low <= saved["mIoU"] <= high and high - low > 0
    for name in ("background", "circle", "square", "triangle"):
        ci = saved[f"iou_ci/{name}"]
        assert ci is None or ci[0] <= saved[f"iou/{name}"] <= ci[1]
    assert 0 <= saved["ece"] <= 1 and result["mIoU"] == saved["mIoU"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "95% CI" in html and f"{saved['mIoU']:.3f}" in html and f"{low:.3f}" in html
    assert not re.search(r"(src|href)=\"https?:", html)  # self-contained: nothing fetched
    assert len(re.findall(r"src=\"data:image/png;base64,", html)) == 2 + 2 + 2  # confusion, reliability, 2+2
    assert run in html and "recorded by the run" in html  # provenance: run dir, split
    with (tmp_path / "eval" / "per_image.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: float(r["mIoU"]))
    worst = html.index("Worst 2 images")
    best = html.index("Best 2 images")
    for r in rows[:2]:  # the two lowest per-image mIoU are in the worst gallery, not only somewhere
        assert worst < html.index(f'alt="{Path(r["image"]).name}"') < best


def _data_config(root: Path) -> dict:
    cfg = compose_config([*TINY, f"data.root={root}"])
    from seglight.util.values import plain

    return plain(cfg.data)


def test_calibrate_stores_the_temperature_in_the_checkpoint_and_the_onnx_file(trained, tmp_path):
    from seglight.inference.export import export_checkpoint

    ckpt, data = trained
    copy = tmp_path / "model.ckpt"
    shutil.copy(ckpt, copy)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.html").write_text("an earlier evaluation's report")  # its model's numbers: removed
    result = evaluate_checkpoint(copy, _data_config(data), "val", tmp_path / "eval", report=False, calibrate=True)
    t = result["temperature"]
    assert t != pytest.approx(1.0, abs=1e-3)
    assert not (tmp_path / "eval" / "report.html").exists()
    predictor = Predictor.load(copy, precision="32")
    assert predictor.temperature == pytest.approx(t)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    plain = Predictor.load(ckpt, precision="32")
    assert plain.temperature == 1.0
    logits = np.log(plain.predict_image(image))  # log softmax: equal to the logits up to a shift per pixel
    expected = torch.from_numpy(logits / t).softmax(0).numpy()
    np.testing.assert_allclose(predictor.predict_image(image), expected, atol=1e-4)
    export_checkpoint(copy, "onnx", tmp_path / "export", smp_folder=False)
    onnx_predictor = Predictor.load(next((tmp_path / "export").glob("*.onnx")))
    assert onnx_predictor.temperature == pytest.approx(t)


@NEEDS_CHROMIUM
def test_report_renders_in_a_browser(trained, tmp_path):
    ckpt, data = trained
    evaluate_checkpoint(ckpt, _data_config(data), "val", tmp_path / "eval", top_k=3)
    shot = screenshot(tmp_path / "eval" / "report.html", tmp_path / "report.png")
    assert shot.shape[0] >= 2000
    rows = shot.reshape(shot.shape[0], -1)
    drawn = (rows.std(axis=1) > 1).mean()  # rows that are not one flat colour: text, tables, pictures
    assert drawn > 0.4, f"only {drawn:.0%} of the page has content"
    colourful = (shot.max(axis=2).astype(int) - shot.min(axis=2)) > 60  # the galleries' colour masks
    assert colourful.mean() > 0.01


def test_an_all_void_image_has_no_per_image_score(tmp_path):
    from seglight.report.bootstrap import bootstrap

    perfect = np.zeros((3, 2, 2), np.int64)
    perfect[:, 0, 0], perfect[:, 1, 1] = 50, 50
    stats = bootstrap(np.concatenate([perfect, np.zeros((1, 2, 2), np.int64)]))
    assert stats["per_image_mIoU"] == 1.0 and list(stats["per_image_mIoU_ci"]) == [1.0, 1.0]
    predictor, ds = OverconfidentPredictor(), _noisy_set(tmp_path / "data", n=3)
    Image.fromarray(np.full((64, 80), 255, np.uint8)).save(tmp_path / "data" / "ann" / "1.png")  # all void
    evaluate(predictor, ds, tmp_path / "eval", top_k=3)
    with (tmp_path / "eval" / "per_image.csv").open() as f:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(f)}
    assert rows["1.png"]["mIoU"] == "" and rows["0.png"]["mIoU"] != ""
    assert 'alt="1.png"' not in (tmp_path / "eval" / "report.html").read_text()  # not "worst" at 0.000


def test_a_stored_temperature_compounds_and_tta_is_refused(tmp_path):
    """Calibrating a model that already has T0 stores T0 * t, the same T as calibrating from T = 1."""
    ds = _noisy_set(tmp_path)
    fitted = []
    for t0 in (1.0, 4.0, 0.5):
        predictor = OverconfidentPredictor()
        predictor.temperature = t0
        fitted.append(evaluate(predictor, ds, tmp_path / f"t{t0}", report=False, calibrate=True)["temperature"])
    assert fitted[1] == pytest.approx(fitted[0], rel=1e-3) and fitted[2] == pytest.approx(fitted[0], rel=1e-3)
    predictor = OverconfidentPredictor()
    predictor.tta = TTA(flip=True)
    with pytest.raises(ValueError, match="tta.flip=false"):
        evaluate(predictor, ds, tmp_path / "tta", report=False, calibrate=True)


def test_store_temperature_follows_a_symlink_and_keeps_the_mode(trained, tmp_path):
    import os
    import stat

    from seglight.inference.export import store_temperature

    target = tmp_path / "run" / "best.ckpt"
    target.parent.mkdir()
    shutil.copy(trained[0], target)
    target.chmod(0o444)
    link = tmp_path / "current.ckpt"
    link.symlink_to(target)
    assert store_temperature(link, 2.5) == target.resolve()
    assert link.is_symlink() and stat.S_IMODE(os.stat(target).st_mode) == 0o444
    assert Predictor.load(target).temperature == 2.5


def test_a_model_trained_on_its_val_images_is_not_calibrated_or_reported_as_held_out(trained, tmp_path, caplog):
    ckpt, data = trained
    copy = tmp_path / "trainval.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["data_split"]["data"]["train_on_val"] = True  # as data.train_on_val=true records it
    torch.save(state, copy)
    with pytest.raises(ValueError, match="train_on_val.*held-out"):
        evaluate_checkpoint(copy, _data_config(data), "val", tmp_path / "cal", report=False, calibrate=True)
    with caplog.at_level("WARNING"):
        evaluate_checkpoint(copy, _data_config(data), "val", tmp_path / "eval", top_k=1)
    assert "not held-out" in caplog.text
    assert "not held-out scores" in (tmp_path / "eval" / "report.html").read_text()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["train_on_val"] is True  # compare reads it
    assert "scoring the configured" not in caplog.text  # the run's recorded val split is still the one scored


def test_an_exported_model_keeps_whether_it_trained_on_val(trained, tmp_path):
    """An ONNX export of a model trained on its val images scored those images as held out: the file carried no
    trace of the run's split. Its metadata now holds the run's data_split; a model with no record is
    "unchecked"."""
    from seglight.inference.export import export_checkpoint
    from seglight.report.tables import val_caveat

    ckpt, data = trained
    # last.ckpt: the final weights, so the caveat is about the split alone (copies of best.ckpt say chosen on val)
    state = torch.load(ckpt.parent / "last.ckpt", map_location="cpu", weights_only=False)
    for name, flag in (("trainval", True), ("train", False), ("unknown", None)):
        copy = tmp_path / f"{name}.ckpt"
        if flag is None:
            state.pop("data_split")  # a checkpoint from before splits were recorded
        else:
            state["data_split"]["data"]["train_on_val"] = flag
        torch.save(state, copy)
        export_checkpoint(copy, "onnx", tmp_path / name, smp_folder=False)
        onnx = next((tmp_path / name).glob("*.onnx"))
        evaluate_checkpoint(onnx, _data_config(data), "val", tmp_path / f"eval_{name}", report=False)
        metrics = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())
        assert metrics["train_on_val"] is flag
        caveat = val_caveat(metrics)
        assert (caveat == "trained on val") if flag else (caveat is None) if flag is False else "unchecked" in caveat


def test_options_added_since_a_checkpoint_do_not_count_as_data_differences():
    from seglight.data.splits import data_differences

    old = {"images": "a", "masks": "b"}
    assert data_differences(old, {**old, "train_on_val": False, "cache_images": True}) == ([], [])
    assert data_differences(old, {**old, "train_on_val": True}) == ([], ["train_on_val"])
    moved = {"root": "/work/a/../shared/camvid"}  # the same folder, reached from another checkout
    assert data_differences(moved, {"root": "/work/b/../shared/camvid"}) == ([], [])
    assert data_differences(moved, {"root": "/work/other"}) == (["root"], [])


def test_evaluate_refuses_data_whose_classes_come_in_another_order(trained, tmp_path, caplog):
    """The data's masks index its palette's classes, the model's outputs its own: a palette CSV with two rows
    swapped would score circle against square under the model's names. Refused, naming both orders; other
    names for the same count are warned about."""
    import logging

    from seglight.util.values import plain

    ckpt, data = trained
    shapes = next(p.parent for p in data.rglob("palette.csv"))
    palette = Palette.from_csv(shapes / "palette.csv")

    def folder(names: list[str], order: list[int]) -> dict:
        Palette(names, [palette.colors[i] for i in order]).to_csv(tmp_path / "palette.csv")
        cfg = compose_config(
            [
                "data=folder",
                *(f"data.{k}={shapes / 'train' / d}" for k, d in (("images", "images"), ("masks", "masks"))),
                *(f"data.val_{k}={shapes / 'val' / k}" for k in ("images", "masks")),
                f"data.palette={tmp_path / 'palette.csv'}",
            ]
        )
        return plain(cfg.data)

    swapped = [0, 2, 1, *range(3, palette.num_classes)]
    with pytest.raises(ValueError, match=r"predicts the classes \['background', 'circle', 'square'.*index \['backgr"):
        evaluate_checkpoint(ckpt, folder([palette.names[i] for i in swapped], swapped), "val", tmp_path / "e1")
    assert not (tmp_path / "e1").exists()
    renamed = [f"c{i}" for i in range(palette.num_classes)]
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_checkpoint(ckpt, folder(renamed, list(range(palette.num_classes))), "val", tmp_path / "e2")
    assert "scores are reported under the model's names" in caplog.text
    assert f"iou/{palette.names[1]}" in metrics


def test_check_classes_refuses_any_shared_class_at_another_index(caplog):
    import logging

    from seglight.inference.scored_data import check_classes

    with pytest.raises(ValueError, match="predicts the classes"):  # road and car swapped, the rest renamed
        check_classes(["road", "car", "person", "sky"], ["car", "road", "person", "tree"], "m.ckpt")
    with pytest.raises(ValueError, match="predicts the classes"):  # case aside, the same swap
        check_classes(["Road", "Car"], ["car", "road"], "m.ckpt")
    with caplog.at_level(logging.WARNING):
        check_classes(["road", "car"], ["class_0", "class_1"], "m.ckpt")  # index masks named by default
        check_classes(["road", "car"], ["road", "car"], "m.ckpt")
    assert caplog.text.count("scores are reported under the model's names") == 1


def test_evaluate_on_the_train_split_says_the_model_trained_on_it(trained, tmp_path):
    """``evaluate split=train`` scored the run's own training images and called them clean: no caveat in
    metrics.json, compare or the summary. They now say so, and calibrating on them is refused."""
    from seglight.report.tables import val_caveat

    ckpt, data = trained
    evaluate_checkpoint(ckpt, _data_config(data), "train", tmp_path / "eval", report=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "train" and val_caveat(metrics) == "scored on its training images"
    with pytest.raises(ValueError, match="calibrate on held-out images"):
        evaluate_checkpoint(ckpt, _data_config(data), "train", tmp_path / "cal", report=False, calibrate=True)
    evaluate_checkpoint(ckpt.parent / "last.ckpt", _data_config(data), "val", tmp_path / "val", report=False)
    val = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert val["split"] == "val" and val_caveat(val) is None
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state.pop("data_split")  # no record: the configured train split may not be the one it trained on
    torch.save(state, tmp_path / "unknown.ckpt")
    evaluate_checkpoint(tmp_path / "unknown.ckpt", _data_config(data), "train", tmp_path / "unknown", report=False)
    assert "unchecked" in val_caveat(json.loads((tmp_path / "unknown" / "metrics.json").read_text()))


def test_best_ckpt_scored_on_the_val_images_it_was_chosen_on_says_so(trained, tmp_path):
    """best.ckpt is the best of its run's validations on the val images: scored on them again, its figure carries
    that selection. metrics.json (so compare) and the report's provenance say so; the final weights' do not."""
    from seglight.report.tables import val_caveat

    ckpt, data = trained
    assert ckpt.name == "best.ckpt"
    evaluate_checkpoint(ckpt, _data_config(data), "val", tmp_path / "best", report=False)
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["chosen_on"] == "val/mIoU"
    assert val_caveat(metrics) == "checkpoint chosen on these images (best val/mIoU)"
    copied = tmp_path / "elsewhere" / "best.ckpt"  # the same file elsewhere: still the run's choice
    copied.parent.mkdir()
    copied.write_bytes(ckpt.read_bytes())
    evaluate_checkpoint(copied, _data_config(data), "val", tmp_path / "copied", report=False)
    assert json.loads((tmp_path / "copied" / "metrics.json").read_text())["chosen_on"] == "val/mIoU"
    for name, split in (("last.ckpt", "val"), ("best.ckpt", "train")):  # the final weights; images not chosen on
        out = tmp_path / f"{name}_{split}"
        evaluate_checkpoint(ckpt.parent / name, _data_config(data), split, out, report=False)
        assert json.loads((out / "metrics.json").read_text()).get("chosen_on") is None


def test_a_renamed_copy_of_best_ckpt_is_still_chosen_on_val(trained, tmp_path):
    """Each checkpoint records the callback that wrote it (SAVED_AS), so the choice survives a new file name."""
    from seglight.model.checkpoint import SAVED_AS, chosen_on, load_checkpoint

    ckpt, _ = trained
    renamed = tmp_path / "unet_shapes_final.ckpt"
    renamed.write_bytes(ckpt.read_bytes())
    assert load_checkpoint(renamed)[SAVED_AS] == {"file": "best.ckpt", "monitor": "val/mIoU"}
    assert chosen_on(load_checkpoint(renamed), renamed) == "val/mIoU"
    last = tmp_path / "best.ckpt"  # last.ckpt under best's name: the final weights, not a choice
    last.write_bytes((ckpt.parent / "last.ckpt").read_bytes())
    assert chosen_on(load_checkpoint(last), last) is None
