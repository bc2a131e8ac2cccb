"""Session 26: where the preset's step loses time to memory layout. The model runs channels_last; its logits
(B,11,224,256) come out channels_last, and every full-size op after them (the 4x upsampling's backward, the fp32
cast, log-softmax, the loss) then works on an 11-channel channels_last tensor. Arms, taking turns in one process
(prof.py's step: light FPN on RegNetX-400MF, batch 8, 224x256, bf16 autocast, dice_ce): as is; the head's 1x1
conv output made contiguous before the 4x upsampling ("head"); that plus smp's GroupNorm run on a contiguous copy
of its input ("head+gn"). img/s: median, min, max of 7 turns of 4 steps."""

import copy
import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).parents[1] / "s25"))
import prof  # noqa: E402
from norm_step import contiguous_gn, in_turns, swapped  # noqa: E402


def head_contiguous(m: nn.Module) -> nn.Module:
    m = copy.deepcopy(m)
    m.segmentation_head[0].register_forward_hook(lambda mod, args, out: out.contiguous())
    return m


if __name__ == "__main__":
    arms = {
        "as_is": prof.model,
        "head": head_contiguous(prof.model),
        "head+gn": head_contiguous(swapped(prof.model, contiguous_gn)),
    }
    print(in_turns(arms))
