"""Per-stream state and its durability: the state table, checkpoints, the journal, takeover."""
