"""Run locks: one process trains a run at a time, whether the processes share a machine or an output directory.

A lock is a file (`OUT/STUDY/locks/<run>.lock`) naming its holder: host, process id, when it was taken. It is created
with `os.link` from a complete temporary file, which is atomic and fails when the lock exists, on local file
systems and on NFS alike, so a reader never sees half a lock. While the lock is held, a thread touches the file
every `HEARTBEAT_SECONDS`. A lock is stale when its holder is gone: on the same host, its process id is not
alive; on any host, its heartbeat is older than `stale_after` seconds (`LMZOO_LOCK_TIMEOUT`, default
`STALE_AFTER_SECONDS`). A stale lock is taken over (under a second, short-lived lock, so two processes never
both break it) and the run resumes from its checkpoint. Importing this module does not load TensorFlow.
"""

import contextlib
import json
import os
import pathlib
import socket
import tempfile
import threading
import time

from lmzoo.errors import ConfigError

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 600.0  # 20 missed heartbeats: a holder this quiet is dead or hung
TIMEOUT_VARIABLE = "LMZOO_LOCK_TIMEOUT"


def this_process():
    """`host:pid` of this process, as locks and run records name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def stale_after_seconds(environ=os.environ):
    """The heartbeat age after which a lock is stale: `LMZOO_LOCK_TIMEOUT` seconds, else the default."""
    value = environ.get(TIMEOUT_VARIABLE)
    try:
        return float(value) if value else STALE_AFTER_SECONDS
    except ValueError:
        raise ConfigError(f"{TIMEOUT_VARIABLE}={value!r} must be a number of seconds, e.g. 600.") from None


class Lock:
    """An exclusive lock file with a heartbeat, taken with `acquire` and given back with `release`.

    Args:
        path: the lock file (its directory is created when missing).
        stale_after: seconds without a heartbeat after which any holder is presumed dead.
        heartbeat: seconds between heartbeats while held (0: none, e.g. for short critical sections).

    Examples:

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "lock"
        >>> first, second = Lock(path, heartbeat=0), Lock(path, heartbeat=0)
        >>> first.acquire(), second.acquire()
        (True, False)
        >>> second.holder == first.holder == this_process()
        True
        >>> first.release(); second.acquire()
        True
    """

    def __init__(self, path, stale_after=None, heartbeat=HEARTBEAT_SECONDS):
        self.path = pathlib.Path(path)
        self.stale_after = stale_after_seconds() if stale_after is None else stale_after
        self.heartbeat = heartbeat
        self.holder = None  # who holds it, as "host:pid", after `acquire` (this process when it got it)
        self.took_over = None  # the stale holder it replaced, if any
        self.lost = False  # another process took it over (this one was presumed dead)
        self._content = None
        self._stop = threading.Event()
        self._thread = None

    def acquire(self):
        """Take the lock if it is free or stale; False when a live process holds it (`holder` names it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lock that vanishes or goes stale between two looks is looked at again
            if self._create():
                self._start_heartbeat()
                return True
            current = _read(self.path)
            if current is None:
                continue
            if not self._is_stale(current):
                self.holder = current.get("process", "another process")
                return False
            self._break(current)
        return False

    def release(self):
        """Give the lock back (only if it is still this process's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._content is not None and _read_text(self.path) == self._content:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._content = None

    # --- internals ------------------------------------------------------------------------------------------

    def _create(self):
        content = json.dumps({"process": this_process(), "host": socket.gethostname(), "pid": os.getpid(),
                              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(content)
            os.link(tmp, self.path)  # atomic, and fails when the lock exists
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        self._content, self.holder = content, this_process()
        return True

    def _is_stale(self, holder):
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            return True
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False  # released meanwhile: the next look finds it free
        return age > self.stale_after

    def _break(self, stale):
        # Under a second lock, so two processes that both find it stale do not both break it (the second would
        # break the fresh lock of the first). The breaker's own lock is held for milliseconds: no heartbeat.
        breaker = Lock(self.path.with_name(self.path.name + ".break"), stale_after=60.0, heartbeat=0)
        if not breaker.acquire():
            time.sleep(0.1)
            return
        try:
            if _read(self.path) == stale:  # still the same stale holder
                self.path.unlink()
                self.took_over = stale.get("process")
        finally:
            breaker.release()

    def _start_heartbeat(self):
        if not self.heartbeat:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lmzoo-lock-{self.path.parent.name}", daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(self.heartbeat):
            if _read_text(self.path) != self._content:
                self.lost = True  # presumed dead by another process, which now holds the run
                return
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)


def _read_text(path):
    try:
        return pathlib.Path(path).read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _read(path):
    text = _read_text(path)
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return {"process": "unknown"}  # unreadable: not ours; stale only by its age
    return value if isinstance(value, dict) else {"process": "unknown"}


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # alive under another user; or no pid to check: judged by its heartbeat only
    return True
