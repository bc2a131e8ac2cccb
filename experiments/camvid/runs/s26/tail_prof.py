"""Session 26: one profiled step of the preset's model and loss (session 25's prof.py: smp's FPN built directly, so
its GroupNorms are plain, as before session 26), grouped by input shape: what the full-size tail costs, the ops on
the logits (8,11,224,256) after the head's 4x upsampling. Output: tail_prof.txt."""

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parents[1] / "s25"))
import prof  # noqa: E402

if __name__ == "__main__":
    adamw = torch.optim.AdamW(prof.model.parameters(), 1e-3)
    for _ in range(2):
        prof.step(adamw)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        prof.step(adamw)
    table = p.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=30, max_shapes_column_width=70
    )
    print(table)
