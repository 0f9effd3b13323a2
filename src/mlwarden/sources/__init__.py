"""Sources: where audits read from (datasets as Arrow batches; later models and endpoints)."""
