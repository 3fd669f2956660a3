"""One round = one invoke for every stream with a new message (step and window models)."""
