"""Score archives of complaints in bulk: CSV, JSON Lines or Parquet in, Parquet out.

`batch.archive` holds what every engine shares (reading a file's columns, checking them,
scoring one table of rows with `triage.Scorer`); `batch.local` runs it on local processes and
`batch.ray_data` on a Ray cluster with Ray Data. Nothing here imports torch, and ray is
imported only by `batch.ray_data`.
"""
