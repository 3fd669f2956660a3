"""What `statecast train` prints at the end: the choices it made and why, and the skill report.

Exit status 3 when the model does not beat the best baseline at every horizon step on the
held-back tail (the model file is still written, so it can be inspected), unless allowed.
"""
from __future__ import annotations

import os

from . import skill

NO_SKILL_EXIT = 3


def choice_lines(meta: dict) -> list[str]:
    lines = []
    for choice in meta.get("choices", []):
        value = f" = {choice['value']}" if "value" in choice else ""
        lines.append(f"{choice['choice']}{value}: {choice['reason']}")
    if "shrinkage" in meta:
        factors = ", ".join(f"{a:.3f}" for a in meta["shrinkage"]["factors"])
        lines.append(f"shrinkage of the predicted change per output (fitted on the validation part): {factors}")
    return lines


def print_training_report(meta: dict, out: str, allow_no_skill: bool) -> int:
    for line in choice_lines(meta):
        print(line)
    print(f"trained {meta['cell']} {meta['layers']}x{meta['units']} for {meta['epochs_run']} epochs, "
          f"best validation loss {meta['val_loss_scaled']:.4f} (scaled units) -> {out}")
    reports = meta.get("skill", [])
    for csv, report in zip(meta["csvs"], reports):
        for line in skill.format_report(report, label=os.path.basename(csv)):
            print(line)
    if meta.get("report_png"):
        print(f"report: {meta['report_png']}")
    if reports and not all(r["has_skill"] for r in reports):
        if allow_no_skill:
            print(f"NO SKILL: the model does not beat persistence / seasonal-naive at every step on the held-back "
                  f"rows; {out} kept because of --allow-no-skill.")
            return 0
        print(f"NO SKILL: the model does not beat persistence / seasonal-naive at every step on the held-back "
              f"rows; {out} was written for inspection. Pass --allow-no-skill to accept it anyway.")
        return NO_SKILL_EXIT
    return 0
