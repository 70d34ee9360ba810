"""Batch scoring: a file of records in, a file of predictions out (usecase.score_upload)."""
