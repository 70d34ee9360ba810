"""The one dataset reader: validation (streamed, in bounded memory) and training (the whole file)
read an uploaded CSV or Parquet object through these functions, so both agree on what a value is.

One meaning of missing (core/missing.py), for every column of both formats: a null, an empty
field, a value in NULL_VALUES ("NA", "NaN", "null", ...) or a NaN float. The exception: a
categorical feature whose spec lists such a token as a category (region "NA") keeps it.
Numbers are finite floats (surrounding whitespace allowed, "1_000" and infinities are not
numbers); categories are text (numbers spelled as serving spells them: str(value)). Class
labels are integers when every label is one ("1" and "1.0" are the class 1), text otherwise.

files.py reads CSV and Parquet (streamed, bounded memory); values.py turns a column batch into
numbers, text or class labels.
"""

from mlops_kit.core.datasets.files import (
    CSV_BLOCKS_AHEAD,
    HEADER_LIMIT,
    HashingReader,
    csv_batches,
    parquet_batches,
    read_columns,
    read_csv_header,
)
from mlops_kit.core.datasets.values import (
    class_labels,
    decode_text,
    is_number_type,
    is_text_type,
    label_text,
    normalise,
    to_boolean,
    to_float,
    to_text,
)
from mlops_kit.core.missing import NULL_VALUES, missing_markers, shared_markers

__all__ = ["CSV_BLOCKS_AHEAD", "HEADER_LIMIT", "NULL_VALUES", "HashingReader", "class_labels",
           "csv_batches", "decode_text", "is_number_type", "is_text_type", "label_text",
           "missing_markers", "normalise", "parquet_batches", "read_columns", "read_csv_header",
           "shared_markers", "to_boolean", "to_float", "to_text"]
