"""The model artifact and the interpreters that run it (one backend file per runtime)."""
