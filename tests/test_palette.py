import time

import numpy as np
import pytest

from seglight.data.palette import Palette, UnknownColorError, default_colors

PAL = Palette(["bg", "a", "b", "c"], [(0, 0, 0), (255, 0, 0), (0, 255, 0), (10, 20, 30)], void_colors=[(255, 255, 255)])


def reference_to_index(rgb: np.ndarray, palette: Palette) -> np.ndarray:
    """The textbook per-colour loop the LUT must agree with."""
    out = np.full(rgb.shape[:2], 254, dtype=np.uint8)
    for i, c in enumerate(palette.colors):
        out[np.all(rgb == c, axis=-1)] = i
    for c in palette.void_colors:
        out[np.all(rgb == c, axis=-1)] = palette.ignore_index
    return out


def test_lookup_matches_reference_loop():
    rng = np.random.default_rng(0)
    index = rng.choice([0, 1, 2, 3, 255], size=(37, 53))
    rgb = PAL.to_color(index)
    np.testing.assert_array_equal(PAL.to_index(rgb), reference_to_index(rgb, PAL))
    np.testing.assert_array_equal(PAL.to_index(rgb), index)


def test_lookup_is_much_faster_than_the_loop_measured_in_one_run():
    """Speed as a ratio in one run (the benchmark records the figure: experiments/bench/run.py, >= 50x)."""
    rng = np.random.default_rng(0)
    palette = Palette([f"c{i}" for i in range(32)], [tuple(int(v) for v in c) for c in rng.choice(256, (32, 3))])
    rgb = palette.to_color(np.kron(rng.integers(0, 32, (45, 60)), np.ones((8, 8), dtype=np.int64)))  # 360x480
    palette.to_index(rgb)  # builds the table

    def best_of(fn, n):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    ratio = best_of(lambda: reference_to_index(rgb, palette), 3) / best_of(lambda: palette.to_index(rgb), 10)
    assert ratio > 20, f"palette lookup only {ratio:.1f}x faster than the per-colour loop"


def test_round_trip_index_color_index():
    index = np.random.default_rng(1).integers(0, 4, size=(2, 16, 16))
    rgb = PAL.to_color(index)
    assert rgb.shape == (2, 16, 16, 3) and rgb.dtype == np.uint8
    assert {tuple(c) for c in rgb.reshape(-1, 3)} <= set(PAL.colors)
    np.testing.assert_array_equal(PAL.to_index(rgb[1]), index[1])


def test_void_is_painted_apart_from_every_class():
    """Without void colours void was black, like default_colors' first class: the two looked alike in pictures."""
    void = np.array([[255]], dtype=np.uint8)
    assert tuple(PAL.to_color(void)[0, 0]) == (255, 255, 255)  # its own void colour
    defaults = Palette(["a", "b", "c"], default_colors(3))
    assert defaults.colors[0] == (0, 0, 0) and tuple(defaults.to_color(void)[0, 0]) == (255, 255, 255)
    assert tuple(Palette(["a"], [(9, 9, 9)]).to_color(void)[0, 0]) == (0, 0, 0)  # black where no class is black
    both = Palette(["k", "w"], [(0, 0, 0), (255, 255, 255)])
    assert tuple(both.to_color(void)[0, 0]) not in both.colors


def test_unknown_colour_names_file_colour_and_count():
    rgb = PAL.to_color(np.zeros((4, 4), dtype=np.uint8))
    rgb[0, :3] = (1, 2, 3)
    with pytest.raises(UnknownColorError, match=r"masks/x\.png.*\(1, 2, 3\) x3 px"):
        PAL.to_index(rgb, source="masks/x.png")


def test_csv_round_trip(tmp_path):
    PAL.to_csv(tmp_path / "p.csv")
    back = Palette.from_csv(tmp_path / "p.csv")
    assert back.names == PAL.names and back.colors == PAL.colors and back.void_colors == PAL.void_colors


@pytest.mark.parametrize(
    "rows, match",
    [
        ("name,r,g,b\na,0,0,0\nb,0,0,0\n", "duplicate colour"),
        ("name,r,g,b\na,0,0,0\na,1,1,1\n", "duplicate class name"),
        ("name,r,g\na,0,0\n", "missing"),
        ("name,r,g,b\na,0,0,300\n", "RGB triple"),
    ],
)
def test_bad_csv_named_in_error(tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    with pytest.raises(ValueError, match=match) as info:
        Palette.from_csv(path)
    assert "bad.csv" in str(info.value)


def test_default_colors_distinct():
    colors = default_colors(32)
    assert len(set(colors)) == 32
