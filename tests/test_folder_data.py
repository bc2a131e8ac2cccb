"""data=folder reproduces data=camvid, and colour masks equal index masks of the same content."""

from pathlib import Path

import pytest
import torch
from conftest import compose_config
from helpers import TOY, make_pairs
from hydra.utils import instantiate

from seglight.data.datamodule import SegDataModule

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "camvid"


@pytest.mark.skipif(not CAMVID.is_dir(), reason="../shared/camvid not present")
def test_folder_config_on_camvid_folders_gives_the_camvid_data():
    camvid = instantiate(compose_config(["data=camvid"]).data, _convert_="all")
    folder = instantiate(
        compose_config(
            [
                "data=folder",
                f"data.images={CAMVID}/train",
                f"data.masks={CAMVID}/trainannot",
                f"data.val_images={CAMVID}/val",
                f"data.val_masks={CAMVID}/valannot",
                "data.num_classes=11",
                "data.void_values=[11]",
            ]
        ).data,
        _convert_="all",
    )
    for split in ("train", "val"):
        a, b = camvid.raw_dataset(split), folder.raw_dataset(split)
        assert len(a) == len(b) and len(a) in (367, 101)
        for i in (0, len(a) // 2, len(a) - 1):
            (ia, ma), (ib, mb) = a.read_pair(i), b.read_pair(i)
            assert (ia == ib).all() and (ma == mb).all()
            assert set(ma.ravel().tolist()) <= set(range(11)) | {255}  # void 11 -> ignore 255
    assert camvid.class_names[:2] == ["Sky", "Building"] and folder.num_classes == camvid.num_classes == 11


def test_colour_and_index_masks_of_the_same_content_give_identical_tensors(tmp_path):
    colour_images, colour_masks = make_pairs(tmp_path / "colour", n=5, color_masks=True, seed=4)
    index_images, index_masks = make_pairs(tmp_path / "index", n=5, color_masks=False, seed=4)
    TOY.to_csv(tmp_path / "palette.csv")
    kw = dict(val_fraction=0.4, crop_size=32, batch_size=3, eval_batch_size=2, num_workers=0, seed=1)
    by_colour = SegDataModule(str(colour_images), str(colour_masks), palette=str(tmp_path / "palette.csv"), **kw)
    by_index = SegDataModule(str(index_images), str(index_masks), num_classes=3, **kw)
    for dm in (by_colour, by_index):
        dm.setup("fit")
    for split in ("train", "val"):
        for a, b in zip(by_colour.datasets[split], by_index.datasets[split]):  # same seed: same augmentations
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert len(by_colour.datasets["val"]) == 2
