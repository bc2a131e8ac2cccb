"""Callbacks that turn validation into pictures: W&B / TensorBoard media and a curves PNG for CSV logs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from seglight.report.figures import confusion_figure, curves_figure, denormalize, figure_to_array, panel, save_figure

log = logging.getLogger(__name__)


class ValidationMedia(pl.Callback):
    """Every ``every_n_epochs`` (and at the last epoch) logs, on rank 0:

    - a fixed panel of the first ``num_images`` val images with ground truth and prediction
      (W&B: segmentation masks with class labels; TensorBoard: image | truth | prediction | overlay);
    - the per-class IoU table (W&B Table; TensorBoard text);
    - the row-normalised val confusion matrix (an image).
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 4) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images

    def _due(self, trainer: pl.Trainer) -> bool:
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or last

    @torch.inference_mode()
    def _examples(self, trainer: pl.Trainer, module) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        loader = trainer.val_dataloaders
        dataset = loader.dataset if loader is not None else None
        if dataset is None or len(dataset) == 0:
            return []
        samples = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
        out = []
        was_training = module.training
        module.eval()
        for s in samples:  # one at a time: val images may differ in size
            logits = module.predict_logits(s["image"][None].to(module.device))  # padded (and tiled) as in validation
            pred = logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)
            out.append(
                (
                    denormalize(s["image"], module.hp.mean, module.hp.std),
                    s["mask"].numpy().astype(np.uint8),
                    pred,
                )
            )
        module.train(was_training)
        return out

    def on_validation_end(self, trainer: pl.Trainer, module) -> None:
        # on_validation_end, not on_validation_epoch_end: callbacks run before the module's epoch-end hook,
        # where this epoch's metrics and confusion matrix are computed
        fitting = trainer.state.fn == "fit"
        if trainer.sanity_checking or not fitting or not trainer.is_global_zero or not self._due(trainer):
            return
        media = [lg for lg in trainer.loggers if isinstance(lg, (WandbLogger, TensorBoardLogger))]
        if not media:
            return
        names = module.class_names
        examples = self._examples(trainer, module)
        ious = [(n, float(trainer.callback_metrics.get(f"val/iou/{n}", float("nan")))) for n in names]
        confusion = getattr(module, "last_val_confusion", None)
        confusion_rgb = figure_to_array(confusion_figure(confusion.numpy(), names)) if confusion is not None else None
        for lg in media:
            if isinstance(lg, WandbLogger):
                self._to_wandb(lg, trainer.global_step, examples, ious, confusion_rgb, names, module.hp.ignore_index)
            else:
                self._to_tensorboard(lg, trainer.global_step, examples, ious, confusion_rgb, module.palette)

    @staticmethod
    def _to_wandb(lg: WandbLogger, step: int, examples, ious, confusion_rgb, names, ignore_index: int) -> None:
        import wandb

        labels = {i: n for i, n in enumerate(names)} | {ignore_index: "void"}
        images = [
            wandb.Image(
                img,
                caption=f"val #{i}",
                masks={
                    "ground_truth": {"mask_data": gt, "class_labels": labels},
                    "prediction": {"mask_data": pred, "class_labels": labels},
                },
            )
            for i, (img, gt, pred) in enumerate(examples)
        ]
        data = {
            "val/examples": images,
            "val/per_class_iou": wandb.Table(columns=["class", "IoU"], data=ious),
            "trainer/global_step": step,
        }
        if confusion_rgb is not None:
            data["val/confusion"] = wandb.Image(confusion_rgb)
        lg.experiment.log(data)

    @staticmethod
    def _to_tensorboard(lg: TensorBoardLogger, step: int, examples, ious, confusion_rgb, palette) -> None:
        if examples:
            grid = np.concatenate([panel(img, gt, pred, palette) for img, gt, pred in examples], axis=0)
            lg.experiment.add_image(
                "val/examples (image | truth | prediction | overlay)", grid, step, dataformats="HWC"
            )
        if confusion_rgb is not None:
            lg.experiment.add_image("val/confusion", confusion_rgb, step, dataformats="HWC")
        table = "| class | IoU |\n|---|---|\n" + "\n".join(f"| {n} | {v:.4f} |" for n, v in ious)
        lg.experiment.add_text("val/per_class_iou", table, step)


class CurvesPlot(pl.Callback):
    """At the end of fit, writes ``curves.png`` (losses and metrics per epoch) beside each CSV log."""

    def on_fit_end(self, trainer: pl.Trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        for lg in trainer.loggers:
            if isinstance(lg, CSVLogger):
                lg.save()
                path = Path(lg.log_dir) / "metrics.csv"
                if path.exists():
                    save_figure(curves_figure(path), Path(lg.log_dir) / "curves.png")
