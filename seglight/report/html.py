"""Self-contained HTML pages (report.html, audit.html) and markdown (the Hub model card): Jinja2 templates from
seglight/report/templates, pictures inlined as base64 PNG data URIs, so a page is one file that opens without a
network. HTML templates (.html.j2) are autoescaped, markdown ones (.md.j2) are not."""

from __future__ import annotations

import base64
import io
import math
import numbers
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from seglight.util.files import atomic_write

TEMPLATES = Path(__file__).with_name("templates")


def png_uri(picture: Any, dpi: int = 100) -> str:
    """A matplotlib Figure (closed afterwards) or an (H,W[,3]) uint8 array -> "data:image/png;base64,..."."""
    buffer = io.BytesIO()
    if isinstance(picture, np.ndarray):
        Image.fromarray(picture).save(buffer, format="PNG")
    else:
        picture.savefig(buffer, format="PNG", dpi=dpi)
        plt.close(picture)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def number(value: Any, digits: int = 3) -> str:
    """A score for a table cell: fixed digits, "-" where there is none (None or NaN)."""
    if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def hex_color(rgb: Any) -> str:
    """(r, g, b) -> "#rrggbb", for swatches and tables."""
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def interval_text(ci: Any, digits: int = 3) -> str:
    """[low, high] -> "[0.512, 0.561]", "-" where the interval is undefined."""
    if ci is None or any(v is None or math.isnan(float(v)) for v in ci):
        return "-"
    return f"[{float(ci[0]):.{digits}f}, {float(ci[1]):.{digits}f}]"


def render(template: str, path: str | Path, **context: Any) -> Path:
    """Renders templates/<template> with ``context`` (autoescaped) and writes it atomically to ``path``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default=False),  # markdown (.md.j2) as written
        undefined=jinja2.StrictUndefined,  # a name missing from the context is an error, not an empty cell
    )
    env.filters["number"] = number
    env.filters["interval"] = interval_text
    text = env.get_template(template).render(**context)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return Path(path)
