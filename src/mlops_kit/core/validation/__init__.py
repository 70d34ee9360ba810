"""Dataset validation: stream an upload (CSV or Parquet) in bounded memory, check it against the
spec (columns, types, nulls, ranges, categories, target, class balance), write a report naming
the column, the rule and example rows, and quarantine a failed dataset (never deleting it).
A passing dataset yields the reference profile and a training job."""

from mlops_kit.core.validation.usecase import validate_upload
from mlops_kit.core.validation.validator import ValidationResult, detect_format, validate_dataset

__all__ = ["ValidationResult", "detect_format", "validate_dataset", "validate_upload"]
