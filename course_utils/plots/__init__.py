"""Figures the chapters share. Only matplotlib; every function returns the ``Figure`` it drew.

:mod:`~course_utils.plots.diagrams` (architectures), :mod:`~course_utils.plots.attention`
(attention maps, learning curves, failure grids), :mod:`~course_utils.plots.encoders`
(patches, positions, pixels, similarities), :mod:`~course_utils.plots.results` (data
and results) and :mod:`~course_utils.plots.scaling` (error against data and width); every
figure is importable from here: ``plots.patch_attention(...)``.
"""

from course_utils.plots.attention import (
    attention_heatmap,
    failure_grid,
    learning_curves,
    patch_attention,
    to_numpy,
)
from course_utils.plots.diagrams import pipeline_diagram
from course_utils.plots.encoders import (
    accuracy_vs_data,
    patch_grid,
    pixel_histograms,
    position_similarity,
    similarity_matrices,
)
from course_utils.plots.results import (
    bar_panels,
    flan_curve,
    grouped_bars,
    retrieval_curves,
    show_examples,
    table_heatmap,
)
from course_utils.plots.scaling import error_vs_examples, error_vs_width

__all__ = [
    "accuracy_vs_data",
    "attention_heatmap",
    "bar_panels",
    "error_vs_examples",
    "error_vs_width",
    "failure_grid",
    "flan_curve",
    "grouped_bars",
    "learning_curves",
    "patch_attention",
    "patch_grid",
    "pipeline_diagram",
    "pixel_histograms",
    "position_similarity",
    "retrieval_curves",
    "show_examples",
    "similarity_matrices",
    "table_heatmap",
    "to_numpy",
]
