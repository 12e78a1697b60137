"""A one-line progress bar per run, with an ETA, written to stderr."""

import sys
import time


# Not keras.utils.Progbar: its ETA divides the time of this process by every step since 0, so a resumed run
# (which starts at its checkpoint's step) shows a wildly short ETA, and it has no tokens/s.
class ProgressBar:
    """`name [=====>    ] step/total loss 1.234 5,678 tok/s ETA 0:42`, redrawn in place.

    Args:
        name: the run's name.
        total: the number of steps of the run.
        start: the step the run resumes from.
        enabled: False draws nothing (non-chief workers, tests).
        stream: where to draw (stderr by default).

    Examples:

        >>> bar = ProgressBar("gpt-seed0", 100, enabled=False)
        >>> bar.update(10, loss=2.5, speed=1000.0)
    """

    def __init__(self, name, total, start=0, enabled=True, stream=None, width=24):
        self.name, self.total, self.start, self.enabled = name, total, start, enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.began = time.perf_counter()
        self.drawn = False  # a bar is on the current line

    def update(self, step, loss=None, speed=None):
        if not self.enabled:
            return
        done = step / max(self.total, 1)
        filled = int(self.width * done)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * max(self.width - filled - 1, 0)
        elapsed = time.perf_counter() - self.began
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else 0.0
        line = f"\r{self.name} [{bar}] {step}/{self.total}"
        if loss is not None:
            line += f" loss {loss:.4f}"
        if speed is not None:
            line += f" {speed:,.0f} tok/s"
        line += f" ETA {_clock(eta)}"
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def end_line(self):
        """End a drawn bar's line, so what is printed next starts on a line of its own."""
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def close(self, summary):
        """End the bar's line and print the run's one-line summary."""
        if not self.enabled:
            return
        self.stream.write("\r\033[K" + summary + "\n")
        self.stream.flush()
        self.drawn = False


def _clock(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
