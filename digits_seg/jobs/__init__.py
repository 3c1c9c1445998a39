"""Jobs: the job record and folder (source of truth), the RQ queue glue, task entry points."""
