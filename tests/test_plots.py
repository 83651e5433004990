"""Figures that encode geometry must put it in the right place."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_utils import plots  # noqa: E402


def test_patch_attention_overlay_covers_exactly_the_image():
    image = np.zeros((48, 48, 3), np.uint8)
    weights = np.zeros((2, 9))
    weights[0, 4] = weights[1, 0] = 1.0  # the centre cell, the top-left cell
    fig = plots.patch_attention(image, weights, grid=3)
    for ax in fig.axes:
        picture, overlay = ax.get_images()
        assert tuple(overlay.get_extent()) == tuple(picture.get_extent())  # no half-pixel shift
        lines = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_xdata()[0] == line.get_xdata()[1])
        assert lines == [15.5, 31.5]  # cell borders between pixels 15|16 and 31|32
    # the lit cell has no shade, every other cell the full darkness
    alpha = fig.axes[0].get_images()[1].get_array()[..., 3]
    assert alpha[1, 1] == 0 and np.allclose(np.delete(alpha.ravel(), 4), 0.8)
    plt.close(fig)


def test_patch_attention_rejects_weights_of_the_wrong_grid():
    with pytest.raises(ValueError, match=r"weights must be \(rows, cols, grid\*grid=9\)"):
        plots.patch_attention(np.zeros((48, 48, 3), np.uint8), np.ones((2, 16)), grid=3)
