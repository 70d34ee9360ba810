"""Scheduled monitoring: captured requests of a window against the champion's reference profile
(feature drift, missing / out-of-range rates, prediction drift), live quality from late labels,
alerts, retrain on drift, and the HTML report. numpy only (the light monitor function)."""

from mlops_kit.core.monitoring.labels import LabelIndex, ingest_labels, load_labels
from mlops_kit.core.monitoring.usecase import run_monitor

__all__ = ["LabelIndex", "ingest_labels", "load_labels", "run_monitor"]
