"""Lightning callbacks of a training run, as the configs name them (``seglight.training.callbacks.<Name>``)."""

from seglight.training.callbacks.checkpoint import RunCheckpoint
from seglight.training.callbacks.confusions import ImageConfusions
from seglight.training.callbacks.copy_paste import CopyPaste
from seglight.training.callbacks.ema import EMA, RAW_KEY
from seglight.training.callbacks.epoch_seeds import EpochSeeds
from seglight.training.callbacks.media import CurvesPlot, ValidationMedia
from seglight.training.callbacks.progressive import ProgressiveResize
from seglight.training.callbacks.time_budget import TimeBudget, epochs_that_fit, parse_duration

__all__ = [
    "EMA",
    "RAW_KEY",
    "CopyPaste",
    "CurvesPlot",
    "EpochSeeds",
    "ImageConfusions",
    "ProgressiveResize",
    "RunCheckpoint",
    "TimeBudget",
    "ValidationMedia",
    "epochs_that_fit",
    "parse_duration",
]
