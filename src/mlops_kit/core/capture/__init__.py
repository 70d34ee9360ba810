"""Captured requests, one room: what serving writes and monitoring reads.

- chunks: captured rows as columns (numeric arrays, categorical codes, factored row ids and
  the 64-bit keys late labels join on)
- codec: the `.cap` object (a JSON header + raw arrays), encode and decode
- buffer: the serve side's capture buffer, flushed to `.cap` objects per model and hour
- reader: a monitoring window's captures, read hour partition by hour partition
- parquet: closed hours compacted to Parquet (pyarrow: the monitor function only)

numpy only except `parquet`; this face imports nothing, so serving and the light monitor
never pull in pyarrow."""
