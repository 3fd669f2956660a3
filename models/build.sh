#!/usr/bin/env bash
# Rebuilds the shipped models from the NAB development subset (one command, ~2 min on 2 cores).
#   bash models/build.sh            (uses .venv from `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CSV=data/nab/data/realKnownCause/machine_temperature_system_failure.csv
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# GRU, 1 layer of 64 units. Trained on the first 15,000 rows (5-minute samples, ~52 days) with
# train's own choices (window, calendar, shrinkage, printed with their reasons); its skill report
# is on rows 12,750..15,000 (held back from training); rows 15,000.. stay unseen. train exits
# non-zero if the model has no skill, convert if int8 fails its gate.
# Not the design prototype's 2-layer LSTM(64) any more: trained to beat persistence (Adam 1e-2),
# that LSTM's int8 step model fails the int8 gate (RMS |int8 - float| 0.86 x the true change's
# spread, int8 skill -0.21 vs float +0.15; LSTM 1x64 and online scaling fail too), while the GRU's
# int8 keeps its skill (+0.116 vs float +0.129 on the held-back rows).
# --no-forecast-guard: these were built before train's forecast guard became its default and
# ship without one (they beat persistence on their unseen rows as they are, models/README.md).
$PY -m statecast.daemon train --csv "$CSV" --rows :15000 --cell gru --units 64 --layers 1 \
    --horizon 1 --seed 0 --no-forecast-guard --out "$WORK/machine_temperature.keras"
for mode in float32 int8; do
  $PY -m statecast.daemon convert "$WORK/machine_temperature.keras" --quantize $mode \
      --calibration-csv "$CSV" --name machine_temperature-$mode --out models/machine_temperature-$mode
done
