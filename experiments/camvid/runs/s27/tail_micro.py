"""Session 27: the preset's full-size tail alone: the head's output (8,11,56,64) bf16 channels_last, 4x bilinear
upsampling, dice_ce, backward; ms per call (medians of 10 calls, 8 turns), arms in turns:

- ``old``: dice_ce through autograd's graph (its terms from one shared log-softmax, as until session 27);
- ``a_eager``: dice_ce as built now (the closed form);
- ``f32_cl``, ``f32_contig``, ``bf16_contig``: the closed form after the head's output is made fp32 / contiguous.

Also prints the largest gradient difference from ``old``. Ran on a noisy VM (the same arm moved by up to 1.5x
between turns).
"""

import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, "/work/main")
from seglight.model.losses import build_loss, log_probs  # noqa: E402

torch.manual_seed(0)
loss = build_loss("dice_ce", 11, 255, (torch.rand(11) + 0.5).tolist())
base = torch.randn(8, 11, 56, 64).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 11, (8, 224, 256))
y[:, :10] = 255


def up(x):
    return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=True)


def tail_old(x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp = log_probs(up(x))
        return sum(loss.weights[k] * m.from_log_probs(logp, y) for k, m in loss.terms.items())


def tail(prep):
    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return loss(up(prep(x)), y)

    return f


def run(f, n=10):
    times = []
    for _ in range(n + 2):
        x = base.clone().requires_grad_(True)
        start = time.perf_counter()
        f(x).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1e3, x.grad


if __name__ == "__main__":
    arms = {
        "old": tail_old,
        "a_eager": tail(lambda x: x),
        "f32_cl": tail(lambda x: x.float()),
        "f32_contig": tail(lambda x: x.float().contiguous()),
        "bf16_contig": tail(lambda x: x.contiguous()),
    }
    ms, grads = {k: [] for k in arms}, {}
    for _ in range(8):
        for k, f in arms.items():
            t, grads[k] = run(f)
            ms[k].append(round(t, 1))
    for k in arms:
        gap = float((grads[k].float() - grads["old"].float()).abs().max())
        print(k, "ms", ms[k], "median", statistics.median(ms[k]), "grad max diff", gap)
