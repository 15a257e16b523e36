"""Click commands of the ``bench`` CLI, one module per stage (imported lazily by benchmark.cli)."""
