"""Sensitivity by lesion size: bins, joins on the file, shares, and the figure that draws them."""

import numpy as np
import pandas as pd

from liverlib.lesion_size import bin_labels, lesion_slices, sensitivity_by_lesion_size


def _case():
    manifest = pd.DataFrame({
        "file": ["benign/a.png", "benign/b.png", "benign/c.png", "malignant/d.png", "malignant/e.png", "normal/f.png"],
        "patient_id": ["P1", "P1", "P2", "P3", "P3", "P4"],
        "max_lesion_diameter_mm": [5.0, 25.0, 0.0, 50.0, 8.0, 0.0],
    })
    predictions = pd.DataFrame({
        "file": ["/data/phantom/" + f for f in manifest["file"]],  # a run's split holds absolute paths
        "class": ["benign", "benign", "benign", "malignant", "malignant", "normal"],
        "predicted": ["normal", "benign", "normal", "malignant", "cirrhosis", "normal"],
    })
    return predictions, manifest


def test_bin_labels():
    assert bin_labels((0, 10, 20, np.inf)) == ["<10 mm", "10-20 mm", "20+ mm"]


def test_only_lesion_slices_of_the_lesion_classes_are_kept():
    rows = lesion_slices(*_case())
    assert sorted(rows["file"].str[-5:]) == ["a.png", "b.png", "d.png", "e.png"]  # c: no lesion; f: normal


def test_shares_per_class_and_bin():
    table = sensitivity_by_lesion_size(*_case(), edges=(0, 10, 30, np.inf))
    small = table.loc[("all", "<10 mm")]
    assert small["slices"] == 2 and small["patients"] == 2
    assert small["predicted true class"] == 0.0 and small["predicted abnormal"] == 0.5  # e: cirrhosis is abnormal
    assert table.loc[("benign", "10-30 mm"), "predicted true class"] == 1.0
    assert table.loc[("malignant", "30+ mm"), "predicted abnormal"] == 1.0
    assert table.loc[("malignant", "10-30 mm"), "slices"] == 0
    assert np.isnan(table.loc[("malignant", "10-30 mm"), "predicted true class"])


def test_the_figure_draws_the_shares():
    from liverlib.plots import lesion_size_figure

    table = sensitivity_by_lesion_size(*_case(), edges=(0, 10, 30, np.inf))
    fig = lesion_size_figure(table)
    line = fig.axes[1].get_lines()[-1]  # "all" on the right panel: predicted abnormal
    np.testing.assert_allclose(line.get_ydata(), [0.5, 1.0, 1.0])
