"""Session 26: GroupNorm and BatchNorm forward + backward (ms) on bf16 input with fp32 weights, channels_last and
contiguous, each also run on a contiguous copy; the gradient is a real tensor of the output's layout."""

import functools
import time

import torch
import torch.nn.functional as F


def bench(fn, x: torch.Tensor) -> float:
    x = x.detach().requires_grad_()
    g = torch.randn_like(fn(x))
    for _ in range(3):
        fn(x).backward(g)
    t = time.perf_counter()
    for _ in range(20):
        fn(x).backward(g)
    return round((time.perf_counter() - t) / 20 * 1e3, 2)


def via_contiguous(norm, fmt: torch.memory_format):
    """``norm`` run on a contiguous copy of its input, the output back in ``fmt``."""
    return lambda t: norm(t.contiguous()).contiguous(memory_format=fmt)


def main() -> None:
    for shape in [(8, 32, 112, 128), (8, 32, 56, 64), (8, 160, 14, 16)]:
        c = shape[1]
        w, b = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
        gn = functools.partial(F.group_norm, num_groups=32, weight=w, bias=b)
        bn = functools.partial(F.batch_norm, running_mean=torch.zeros(c), running_var=torch.ones(c), weight=w, bias=b,
                               training=True)  # fmt: skip
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(shape).bfloat16().contiguous(memory_format=fmt)
            r = [bench(gn, x), bench(via_contiguous(gn, fmt), x), bench(bn, x), bench(via_contiguous(bn, fmt), x)]
            print(shape, str(fmt)[6:], "gn", r[0], "gn via contig", r[1], "bn", r[2], "bn via contig", r[3])


if __name__ == "__main__":
    main()
