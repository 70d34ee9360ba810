"""The local batch engine: each training job runs `python -m mlops_kit.train_job` in its own
process, so a big training never blocks validation or serving. `mlops-kit emulate` uses it as
its "AWS Batch" (the job then talks to the emulated S3 and DynamoDB).

What Batch does, on a folder (<root>/<job name>/):
- the name is claimed once (mkdir is atomic): a second submit returns the first job;
- a supervisor process (`python -m mlops_kit.adapters.local.process_runner <root> <name>`) runs the
  attempts: exit 75 (EX_TEMPFAIL, a transient fault) is retried up to `attempts`, any other
  failure is final; an attempt over `timeout_s` is killed;
- state.json moves SUBMITTED -> RUNNING -> SUCCEEDED | FAILED with a reason and each
  attempt's exit code and peak memory (ru_maxrss);
- `poll()` reports state changes once each (the Batch Job State Change events), including a
  supervisor that died without a result.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_kit.ports import JobHandle, JobState

ENTRY_MODULE = "mlops_kit.train_job"
RETRY_EXIT = 75
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Supervisors this process started, by job folder: any runner on the same root (the train
# handler's, the emulator's forwarder) reaps them, so none lingers as a zombie.
_PROCS: dict[Path, subprocess.Popen] = {}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, default=str))
    os.replace(tmp, path)  # readers see the old or the new state, never half of one


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


class ProcessRunner:
    """JobRunner: one supervised process per job, state under `root`."""

    engine = "process"

    def __init__(self, root: str | Path, *, attempts: int = 2, timeout_s: int = 4 * 3600,
                 python: str = sys.executable, env: dict[str, str] | None = None,
                 command: tuple[str, ...] | None = None) -> None:
        self.root = Path(root)
        self.attempts, self.timeout_s, self.python = attempts, timeout_s, python
        self.command = list(command or (python, "-m", ENTRY_MODULE))  # what each attempt runs
        # extra environment for the job: the backend's settings; under `emulate --enforce-iam`
        # the batch job role's keys (a Batch task runs under its job role)
        self.env = env or {}

    def _dir(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"job name {name!r} must match {_NAME.pattern}")
        return self.root / name

    def submit(self, name: str, env: dict[str, str]) -> JobHandle:
        folder = self._dir(name)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            for _ in range(50):  # the first submitter writes state.json right after mkdir
                state = _read(folder / "state.json")
                if state:
                    return JobHandle(self.engine, name, state["job_id"], False)
                time.sleep(0.02)
            raise RuntimeError(f"job {name} exists without a state") from None
        job_id = uuid.uuid4().hex
        _write(folder / "state.json", {
            "name": name, "job_id": job_id, "status": "SUBMITTED", "env": env,
            "attempts": [], "max_attempts": self.attempts, "timeout_s": self.timeout_s,
            "command": self.command, "submitted_at": _now()})
        log = open(folder / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "mlops_kit.adapters.local.process_runner", str(self.root), name],
                env={**os.environ, **self.env}, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)  # a worker's Ctrl-C does not kill it
        finally:
            log.close()
        _PROCS[folder.resolve()] = proc  # the supervisor records its pid itself (one writer)
        return JobHandle(self.engine, name, job_id, True)

    # -- state changes -------------------------------------------------------------------------
    def state(self, name: str) -> dict[str, Any] | None:
        return _read(self._dir(name) / "state.json")

    def running(self) -> int:
        """Jobs not yet finished (reaps supervisors this process started)."""
        return sum(1 for s in self._states() if s.get("status") not in ("SUCCEEDED", "FAILED"))

    def poll(self) -> list[JobState]:
        """State changes not reported yet, oldest first. Call `reported` once handled."""
        out = []
        for s in self._states():
            if s.get("status") != self._reported(s["name"]):
                out.append(JobState(self.engine, s["name"], s["job_id"], s["status"],
                                    s.get("reason"), dict(s.get("env") or {}),
                                    len(s.get("attempts") or [])))
        return out

    def reported(self, state: JobState) -> None:
        """The change was handled (a file of its own: the supervisor owns state.json)."""
        (self._dir(state.name) / "reported").write_text(state.status)

    def _reported(self, name: str) -> str | None:
        try:
            return (self._dir(name) / "reported").read_text()
        except FileNotFoundError:
            return None

    def _states(self) -> list[dict[str, Any]]:
        for folder, proc in list(_PROCS.items()):
            if proc.poll() is not None:  # reap: a finished supervisor is no zombie
                del _PROCS[folder]
        states: list[dict[str, Any]] = []
        if not self.root.is_dir():
            return states
        for path in sorted(self.root.glob("*/state.json")):
            s = _read(path)
            if not s:
                continue
            if s.get("status") not in ("SUCCEEDED", "FAILED") and not self._alive(s):
                s = _read(path) or s  # it may have finished between the two reads
                if s.get("status") not in ("SUCCEEDED", "FAILED"):
                    s = {**s, "status": "FAILED", "stopped_at": _now(),
                         "reason": "the job's supervisor exited without a result"}
                    _write(path, s)
            states.append(s)
        return sorted(states, key=lambda s: s.get("submitted_at", ""))

    def _alive(self, state: dict[str, Any]) -> bool:
        proc = _PROCS.get((self.root / state["name"]).resolve())
        if proc is not None:
            return proc.poll() is None
        pid = state.get("supervisor_pid")
        if pid is None:  # started by another process, not yet running: give it a minute
            submitted = datetime.fromisoformat(state.get("submitted_at") or _now())
            return (datetime.now(UTC) - submitted).total_seconds() < 60
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


# -- the supervisor (runs in its own process) ----------------------------------------------------
def _last_json_line(path: Path) -> dict[str, Any] | None:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines[-5:]):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][:300] if lines else ""


def supervise(root: Path, name: str) -> int:
    folder = root / name
    path = folder / "state.json"
    state = _read(path) or {}
    env = {**os.environ, **state.get("env", {})}
    attempts: list[dict[str, Any]] = []
    status, reason = "FAILED", None
    for n in range(1, int(state.get("max_attempts", 1)) + 1):
        out, err = folder / f"attempt-{n}.out", folder / f"attempt-{n}.log"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(state["command"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=o, stderr=e)
        state = {**state, "status": "RUNNING", "attempts": attempts, "pid": proc.pid,
                 "supervisor_pid": os.getpid(), "started_at": state.get("started_at") or _now()}
        _write(path, state)
        timed_out = threading.Event()

        def kill(p: subprocess.Popen = proc, flag: threading.Event = timed_out) -> None:
            flag.set()
            p.kill()

        timer = threading.Timer(float(state.get("timeout_s", 4 * 3600)), kill)
        timer.start()
        _, wait_status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(wait_status)  # we reaped it ourselves
        code = proc.returncode
        outcome = _last_json_line(out) or {}
        attempt: dict[str, Any] = {"exit_code": code, "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
                   "seconds": round(usage.ru_utime + usage.ru_stime, 2)}
        if timed_out.is_set():
            attempt["reason"] = f"Job attempt duration exceeded timeout ({state.get('timeout_s')} s)"
        elif code < 0:
            attempt["reason"] = f"killed by {signal.Signals(-code).name}" + (
                " (out of memory?)" if -code == signal.SIGKILL else "")
        elif code != 0:
            attempt["reason"] = outcome.get("reason") or _last_line(err) or f"exit code {code}"
        attempts.append(attempt)
        if code == 0:
            status, reason = "SUCCEEDED", None
            break
        reason = attempt["reason"]
        if code != RETRY_EXIT:  # only a transient fault is retried (Batch: evaluateOnExit)
            break
    _write(path, {**state, "status": status, "reason": reason, "attempts": attempts,
                  "stopped_at": _now(), "supervisor_pid": os.getpid()})
    return 0


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1]), sys.argv[2]))
