"""The learning curve of a run: history.csv and history.png (through ml_phasing.plots)."""

from __future__ import annotations

import csv
import io
import os

from ml_phasing.io.atomic_io import write_text

HISTORY = "history.csv"


def write_history(directory: str, history: list) -> None:
    """history.csv (one row per epoch) and its plot."""
    if not history:
        return
    from ml_phasing import plots

    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow(row)
    write_text(os.path.join(directory, HISTORY), buf.getvalue())
    plots.training_history(history, os.path.join(directory, "history.png"))
