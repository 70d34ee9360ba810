"""Progress of a job as it runs (uploaded -> validated -> trained -> exported -> parity ->
registered -> promoted), on stderr with the time of each step, so `--json` stdout stays one
JSON document. Fed by the worker's per-message events and the core's Context.step events."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from mlops_kit.core.layout import parse_key

OK, BAD, SKIP = "[green]✓[/green]", "[red]✗[/red]", "[yellow]•[/yellow]"


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1024:,.0f} KB" if n >= 1024 else f"{n} bytes"


class Steps:
    """One line per finished step with its seconds; a spinner on the running one. `record`
    keeps [{"step", "seconds", "detail"}] for the --json document."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console, self.enabled = console, enabled
        self.record: list[dict[str, Any]] = []
        self.last: dict[str, dict[str, Any]] = {}  # message id -> its latest result
        self._status: Status | None = None
        self._label: str | None = None
        self._t0 = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Steps:
        if self.enabled and self.console.is_terminal:
            self._status = self.console.status("", spinner="dots")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._label is not None:  # interrupted mid-step
            self.end("interrupted", self._label, mark=BAD)
        if self._status is not None:
            self._status.stop()

    def begin(self, label: str) -> None:
        if self._label is not None:
            self.end(self._label, self._label)
        self._label, self._t0 = label, time.monotonic()
        if self._status is not None:
            self._status.update(f"{escape(label)} …")

    def end(self, step: str, detail: str, *, mark: str = OK) -> None:
        seconds = time.monotonic() - self._t0
        self.record.append({"step": step, "seconds": round(seconds, 3), "detail": detail})
        if self.enabled:
            self.console.print(f"{mark} {escape(detail)} [dim]({seconds:.1f} s)[/dim]",
                               highlight=False, soft_wrap=True)
        self._label, self._t0 = None, time.monotonic()
        if self._status is not None:
            self._status.update("")

    # -- event sources ---------------------------------------------------------------------
    def worker_event(self, event: str, info: dict[str, Any]) -> None:
        """local.worker.run_once(progress=...): each message's start and result."""
        queue, body = info.get("queue"), info.get("body") or {}
        if event == "start":
            if queue == "train":
                self.begin(f"training {body.get('model', '')} on {body.get('rows', '?')} rows")
            elif isinstance(body.get("score_chunk"), dict):  # core/scoring/fanout.py
                c = body["score_chunk"]
                self.begin(f"scoring {c.get('key', '')} chunk {c.get('index', '?')}")
            else:
                key = str(body.get("key", ""))
                what = {"scoring": "scoring", "labels": "reading labels"}.get(
                    parse_key(key).kind, "validating")
                self.begin(f"{what} {key}")
            return
        r = info.get("result") or {}
        if info.get("message_id") is not None:
            self.last[str(info["message_id"])] = r
        self._result(queue, r)

    @property
    def unfinished(self) -> bool:
        """A message whose latest attempt failed and is to be retried (or dead-lettered)."""
        return any(r.get("final") is False for r in self.last.values())

    def core_step(self, name: str, info: dict[str, Any]) -> None:
        """Context.step(...) from inside a use case."""
        v = info.get("version")
        if name == "read":
            if self._label is not None:
                self._label = f"training v{v} on {info.get('rows', '?'):,} rows"
                if self._status is not None:
                    self._status.update(f"{escape(self._label)} …")
        elif name == "trained":
            self.end("trained", f"trained v{v} ({info.get('estimator')}, "
                                f"{info.get('rows', '?'):,} training rows)")
            self.begin("exporting ONNX")
        elif name == "exported":
            self.end("exported", f"exported ONNX ({_bytes(info.get('bytes'))})")
            self.begin("checking parity (sklearn vs onnxruntime)")
        elif name == "parity":
            p = info.get("parity") or {}
            diff = p.get("max_abs_diff")
            text = f"max |diff| {diff:.1e}" if isinstance(diff, float) else ""
            tol = p.get("tolerance")
            if text and isinstance(tol, (int, float)):
                kind = p.get("tolerance_kind") or "absolute"
                text += (f", tolerance {tol:g} {kind}"
                         + (" to max(1, |prediction|)" if kind == "relative" else ""))
            if p.get("passed"):
                self.end("parity", f"parity passed ({text})")
            else:
                self.end("parity", f"parity failed: {p.get('reason') or text}", mark=BAD)
            self.begin("registering")
        elif name in ("registered", "rejected", "failed"):
            mark = OK if name == "registered" else BAD
            self.end(name, f"{name} v{v}", mark=mark)
            self.begin("applying the promotion policy")

    def _result(self, queue: str | None, r: dict[str, Any]) -> None:
        status = r.get("status", "?")
        label = self._label or status
        why = r.get("error") or r.get("reason") or "; ".join(r.get("reasons") or [])
        if r.get("duplicate"):
            self.end("duplicate", f"{r.get('dataset_key') or r.get('key') or label}: already "
                                  f"processed ({status}); nothing to do", mark=SKIP)
        elif status == "validated":
            self.end("validated", f"validated {r.get('rows', 0):,} rows")
        elif status == "quarantined":
            what = "labels quarantined" if r.get("kind") == "labels" else "quarantined"
            self.end("quarantined", f"{what} -> {r.get('quarantine_key')}: "
                                    f"{r.get('summary') or r.get('reason') or ''}", mark=BAD)
        elif status == "scored":
            again = " (already scored: nothing to do)" if r.get("already") else ""
            self.end("scored", f"scored {r.get('rows_scored', 0):,} rows with "
                               f"v{r.get('version')}, {r.get('rows_rejected', 0):,} rejected"
                               f"{again}")
        elif status == "running" and "chunks" in r:  # a big scoring file, fanned out
            self.end("fanned out", f"split into {r['chunks']} chunks "
                                   f"({r.get('dispatched', 0)} sent now)")
        elif status == "chunk_scored":
            self.end("chunk", f"chunk {r.get('chunk')} ({r.get('done')}/{r.get('total')}): "
                              f"{r.get('rows_scored', 0):,} rows scored, "
                              f"{r.get('rows_rejected', 0):,} rejected")
        elif status == "duplicate" and "chunk" in r:
            self.end("duplicate", f"chunk {r.get('chunk')} already scored: nothing to do",
                     mark=SKIP)
        elif status == "labels_received":
            self.end("labels", f"labels received: {r.get('rows', 0):,} rows")
        elif status in ("registered", "rejected") and "promoted" in r:
            if status == "rejected":
                self.end("rejected", f"v{r.get('version')} rejected: {why}", mark=BAD)
            elif r.get("promoted"):
                self.end("promoted", f"v{r.get('version')} promoted to champion")
            else:
                self.end("not promoted", f"v{r.get('version')} registered, not promoted: "
                                         f"{why or 'the promotion policy held it back'}",
                         mark=SKIP)
        elif status in ("failed", "labels_rejected", "labels_quarantined"):
            retry = " (will be retried)" if r.get("final") is False else ""
            self.end(status, f"{label}: {status}{retry} — {why}", mark=BAD)
        elif status == "duplicate":
            self.end("duplicate", f"v{r.get('version')} was already trained "
                                  f"({r.get('registry_status')})", mark=SKIP)
        else:
            self.end(status, f"{label}: {status}{' — ' + why if why else ''}", mark=SKIP)
