"""Training progress: one line redrawn in place on a terminal, one plain line per epoch otherwise
(logs, CI). Keras's own progress bar is off (verbose=0): it floods a log with batch updates."""
from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_callback(max_epochs: int, stream=None):
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stream = stream or sys.stderr
            self.terminal = self.stream.isatty()
            self.started = time.monotonic()
            self.best = float("inf")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            done = epoch + 1
            elapsed = time.monotonic() - self.started
            val = logs.get("val_loss", float("nan"))
            self.best = min(self.best, val)
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            # An upper bound: early stopping usually ends sooner than max_epochs.
            left = elapsed / done * (max_epochs - done)
            text = (f"epoch {done}/{max_epochs}: loss {logs.get('loss', float('nan')):.4f}, validation {val:.4f} "
                    f"(best {self.best:.4f}), lr {rate:.2g}, {_duration(elapsed)} elapsed, "
                    f"at most {_duration(left)} left")
            if self.terminal:
                self.stream.write("\r\033[K" + text)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

        def on_train_end(self, logs=None):
            if self.terminal:
                self.stream.write("\n")
                self.stream.flush()

    return EpochProgress()
