"""Studies run in child processes, for the tests that kill a run with SIGKILL and resume it.

A killed child must be a real process (a `kill -9` leaves no chance to clean up), so these tests start
`lmzoo.training.compare` or the CLI in a fresh interpreter that imports the same lmzoo as the test.
"""

import json
import os
import signal
import subprocess
import sys
import time

TIMEOUT = 300  # seconds any child may take; tiny studies need a few dozen
_COMPARE = ("import json, sys\nfrom lmzoo.training import compare\n"
            "compare(json.loads(sys.argv[1]), out_dir=sys.argv[2], show_progress=False)\n")


def _env(extra=None):
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2", **(extra or {})}


def start_compare(study, out_dir):
    """`compare(study, out_dir=out_dir)` in a child process (stdout and stderr captured as text)."""
    return subprocess.Popen([sys.executable, "-c", _COMPARE, json.dumps(study), str(out_dir)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_cli(*args, env=None):
    """`python -m lmzoo *args` in a child process, with `env` added to the environment."""
    return subprocess.Popen([sys.executable, "-m", "lmzoo", *map(str, args)], env=_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=TIMEOUT):
    """Wait for `process`, assert it succeeded, and return its stderr."""
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return err


def kill_at_first_checkpoint(process, run_dir, timeout=TIMEOUT):
    """SIGKILL `process` as soon as the run in `run_dir` has written its first checkpoint."""
    marker = run_dir / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no checkpoint was written in {run_dir} in time"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
