"""Workstation and development tools (score, replay, demo, watch, bench); the service never imports them."""
