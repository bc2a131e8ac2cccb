"""Session 26: GroupNorm(32, 32) forward + backward at the FPN decoder's shapes, by layout and dtype (ms); the
same normalisation as instance norm and as batch norm on a reshaped input, and batch norm for comparison. The
gradient is sum()'s (an expanded tensor): bench/norm_layout.py times it with a real gradient."""

import time

import torch
import torch.nn.functional as F

shapes = [(8, 32, 56, 64), (8, 32, 28, 32)]


def gn_as_bn(x: torch.Tensor, groups: int, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    y = F.batch_norm(x.reshape(1, n * groups, -1), None, None, training=True, eps=1e-5).reshape(x.shape)
    return y * w.view(1, c, 1, 1) + b.view(1, c, 1, 1)


def bench(fn, x):
    x = x.detach().requires_grad_()
    for _ in range(3):
        fn(x).sum().backward()
    t = time.perf_counter()
    for _ in range(20):
        fn(x).float().sum().backward()
    return (time.perf_counter() - t) / 20 * 1e3


for shape in shapes:
    w = torch.ones(32, requires_grad=True)
    b = torch.zeros(32, requires_grad=True)
    for dtype in (torch.float32, torch.bfloat16):
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(shape).to(dtype).contiguous(memory_format=fmt)
            wd, bd = w.to(dtype), b.to(dtype)
            r = {
                "group_norm": bench(lambda x, wd=wd, bd=bd: F.group_norm(x, 32, wd, bd), x),
                "instance_norm": bench(lambda x, wd=wd, bd=bd: F.instance_norm(x, weight=wd, bias=bd), x),
                "gn_as_bn": bench(lambda x, wd=wd, bd=bd: gn_as_bn(x, 32, wd, bd), x),
                "batch_norm": bench(lambda x, wd=wd, bd=bd: F.batch_norm(x, None, None, wd, bd, True), x),
            }
            print(
                shape,
                str(dtype)[6:],
                "cl" if fmt is torch.channels_last else "contig",
                {k: round(v, 2) for k, v in r.items()},
            )
