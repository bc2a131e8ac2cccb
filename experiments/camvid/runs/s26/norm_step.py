"""Session 26: the preset's step (prof.py's: light FPN on RegNetX-400MF, batch 8, 224x256, bf16 autocast,
channels_last) with smp's FPN GroupNorm(32, 32) as it is, run on a contiguous copy of its input (back to
channels_last after it, or left contiguous), and swapped for BatchNorm2d; the arms take turns in one process
(img/s: median, min, max of 7 turns of 4 steps)."""

import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parents[1] / "s25"))
import prof  # noqa: E402


class ContiguousGroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


class ContiguousOutGroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous())


def swapped(m: nn.Module, make) -> nn.Module:
    """A copy of ``m`` with every GroupNorm replaced by ``make(gn)``."""
    m = copy.deepcopy(m)
    for child in list(m.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.GroupNorm):
                setattr(child, attr, make(sub))
    return m.to(memory_format=torch.channels_last)


def contiguous_gn(gn: nn.GroupNorm, cls: type = ContiguousGroupNorm) -> nn.Module:
    new = cls(gn.num_groups, gn.num_channels, gn.eps, gn.affine)
    new.load_state_dict(gn.state_dict())
    return new


def in_turns(arms: dict[str, nn.Module], turns: int = 7) -> dict[str, tuple[float, float, float]]:
    """img/s of prof.step with each model in turn: median, min, max of ``turns`` turns of 4 steps."""
    opts = {k: torch.optim.AdamW(m.parameters(), 1e-3) for k, m in arms.items()}
    res: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(turns):
        for k, m in arms.items():
            prof.model = m
            prof.step(opts[k])
            start = time.perf_counter()
            for _ in range(4):
                prof.step(opts[k])
            res[k].append(32 / (time.perf_counter() - start))
    return {k: (round(statistics.median(v), 2), round(min(v), 1), round(max(v), 1)) for k, v in res.items()}


if __name__ == "__main__":
    torch.manual_seed(0)
    arms = {
        "group_norm": prof.model,
        "group_norm_contiguous": swapped(prof.model, contiguous_gn),
        "group_norm_contiguous_out": swapped(prof.model, lambda gn: contiguous_gn(gn, ContiguousOutGroupNorm)),
        "batch_norm": swapped(prof.model, lambda gn: nn.BatchNorm2d(gn.num_channels)),
    }
    seen = []
    hook = (
        arms["group_norm"]
        .decoder.seg_blocks[0]
        .block[0]
        .block[1]
        .register_forward_pre_hook(lambda mod, args: seen.append((args[0].dtype, args[0].is_contiguous())))
    )
    res = in_turns(arms)
    hook.remove()
    print("GroupNorm input (dtype, contiguous):", seen[0])
    print(res)
