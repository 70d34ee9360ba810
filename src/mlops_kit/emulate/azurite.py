"""Azurite, the Azure Storage emulator (Blob, Queue, Table), for tests and the local Azure path.

The first call installs `azurite@3.35.0` with npm into a cache folder (3.35.0 is the last
release that runs on node 20); later calls reuse it. `running()` starts it headless on
127.0.0.1 on free ports with a throwaway `--location`, waits until all three services accept
connections, yields the connection string of the well-known `devstoreaccount1` account, and
stops it. `--skipApiVersionCheck` is required: current SDKs send a newer API version than
Azurite knows.

    python -m mlops_kit.emulate.azurite install   # npm install into the cache (make test does it)
    python -m mlops_kit.emulate.azurite run       # print the connection string, run until Ctrl-C
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlops_kit.errors import MlopsKitError

VERSION = "3.35.0"
HOST = "127.0.0.1"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, published in its README. It opens only the emulator;
# the cloud path never uses a key (DefaultAzureCredential).
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"  # noqa: S105
               "K1SZFPTOtr/KBHBeksoGMGw==")
SERVICES = ("blob", "queue", "table")


def cache_dir() -> Path:
    """MLOPSKIT_CACHE_DIR, else $XDG_CACHE_HOME/mlops-kit, else ~/.cache/mlops-kit."""
    root = os.environ.get("MLOPSKIT_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-kit"
    return Path(root) / "azurite"


def installed_version(cache: Path) -> str | None:
    meta = cache / "node_modules" / "azurite" / "package.json"
    try:
        return json.loads(meta.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install(version: str = VERSION, cache: Path | None = None) -> Path:
    """The azurite executable, installed with npm into the cache the first time. A file lock
    serialises concurrent installers (pytest-xdist workers)."""
    cache = cache or cache_dir()
    exe = cache / "node_modules" / ".bin" / "azurite"
    if installed_version(cache) == version and exe.exists():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(cache) == version and exe.exists():
            return exe
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise MlopsKitError("Azurite needs node (20) and npm on PATH: install Node.js, "
                                f"then run `npm install --prefix {cache} azurite@{version}`")
        cmd = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
               "--loglevel=error", f"azurite@{version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            raise MlopsKitError(f"`{' '.join(cmd)}` took more than 15 minutes") from None
        if done.returncode != 0 or installed_version(cache) != version:
            tail = (done.stderr or done.stdout).strip()[-2000:]
            raise MlopsKitError(f"npm could not install azurite@{version} into {cache}: {tail}")
    return exe


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def connection_string(ports: dict[str, int], host: str = HOST) -> str:
    endpoints = ";".join(f"{svc.capitalize()}Endpoint=http://{host}:{ports[svc]}/{ACCOUNT}"
                         for svc in SERVICES)
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"{endpoints};")


@dataclass
class Azurite:
    process: subprocess.Popen
    ports: dict[str, int]
    location: Path
    log_path: Path
    host: str = HOST
    _own_location: bool = field(default=False, repr=False)

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports, self.host)

    def endpoint(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}/{ACCOUNT}"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if Azurite has not exited within `timeout` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._own_location:
            shutil.rmtree(self.location, ignore_errors=True)


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start(*, location: Path | None = None, version: str = VERSION, timeout: float = 60.0,
          attempts: int = 3) -> Azurite:
    """Start Azurite on free loopback ports; retried when a port was taken meanwhile."""
    exe = install(version)
    own = location is None
    loc = Path(location or tempfile.mkdtemp(prefix="mlops-kit-azurite-"))
    loc.mkdir(parents=True, exist_ok=True)
    error = ""
    for _ in range(attempts):
        ports = {svc: free_port() for svc in SERVICES}
        log_path = loc / "azurite.log"
        cmd = [str(exe), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
               "--location", str(loc)]
        for svc in SERVICES:
            cmd += [f"--{svc}Host", HOST, f"--{svc}Port", str(ports[svc])]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=loc)
        emu = Azurite(proc, ports, loc, log_path, _own_location=own)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if all(_listening(HOST, p) for p in ports.values()):
                return emu
            time.sleep(0.1)
        error = emu.log_tail()
        emu._own_location = False  # keep the folder for the next attempt
        emu.stop()
    if own:
        shutil.rmtree(loc, ignore_errors=True)
    raise MlopsKitError(f"Azurite did not start within {timeout:.0f}s: {error or 'no output'}")


@contextlib.contextmanager
def running(**kwargs) -> Iterator[Azurite]:
    emu = start(**kwargs)
    try:
        yield emu
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["install"]:
        print(install())
        return 0
    if args[:1] == ["run"]:
        with running() as emu:
            print(json.dumps({"connection_string": emu.connection_string,
                              "ports": emu.ports, "location": str(emu.location)}), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                emu.process.wait()
        return 0
    print("usage: python -m mlops_kit.emulate.azurite install | run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
