"""The rows and targets docs/benchmarks.md reports against (shared by the report and its plots)."""
STEP_ROWS = [
    ("step batch 1024", "step model, batch 1,024"),
    ("batched, 1,000 streams, max_batch 1024", "**batched, 1,000 streams** (gather + 1 invoke + scatter)"),
    ("batched, 1,000 streams, max_batch 256", "batched, 1,000 streams, max_batch 256 (4 invokes)"),
    ("step batch 64", "step model, batch 64"),
    ("step batch 1", "step model, batch 1"),
    ("one invoke per message (1,000 streams)", "**one invoke per message** (1,000 streams, gather + invoke + scatter)"),
    ("window TFLite (64 steps) per message", "**window TFLite**, last 64 steps re-run per message"),
    ("window TFLite (64 steps), 1,000 streams batched", "window TFLite, 1,000 streams' windows in one invoke"),
]
E2E_TARGET, BATCH_TARGET, WINDOW_TARGET, P99_TARGET_MS, RSS_TARGET_MB = 0.8, 10.0, 20.0, 5.0, 80.0
SHIPPED_MAX_BATCH = 256          # systemd/statecast.example.toml
