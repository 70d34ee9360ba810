"""Loading the handlers in functions/ the way Lambda does (a fresh module per function) and
the context object they receive."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_kit.emulate.aws_resources import ACCOUNT
from mlops_kit.topology import Topology

_loaded: dict[Path, ModuleType] = {}


def functions_dir(explicit: str | Path | None = None) -> Path:
    """The handlers: `explicit`, else ./functions, else the copy shipped in the wheel
    (mlops_kit/_functions), else functions/ of this source checkout."""
    here = Path(__file__).resolve()
    candidates = [Path(explicit)] if explicit else [
        Path.cwd() / "functions", here.parents[1] / "_functions", here.parents[3] / "functions"]
    for c in candidates:
        if (c / "serve.py").is_file():
            return c.resolve()
    raise FileNotFoundError(f"no functions/ directory with the handlers in "
                            f"{', '.join(map(str, candidates))}")


def load_function(name: str, directory: str | Path | None = None) -> ModuleType:
    """Import functions/<name>.py the way Lambda does (its folder on sys.path), once."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"function name {name!r} is invalid")
    folder = functions_dir(directory)
    path = folder / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("[a-z]*.py"))
        raise FileNotFoundError(f"no function {name!r}; known: {', '.join(known)}")
    if path not in _loaded:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location(f"mlops_kit_fn_{name}", path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _loaded[path] = module
    return _loaded[path]


def reset_functions() -> None:
    """Forget the handlers' cached backend (after the environment changed)."""
    wiring: Any = sys.modules.get("_wiring")
    if wiring is not None:
        wiring.reset()
    for module in _loaded.values():
        if hasattr(module, "_api"):
            setattr(module, "_api", None)  # noqa: B010 - the serve handler's cached API


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: int = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    region: str = field(default_factory=lambda: os.environ.get("MLOPSKIT_REGION") or "us-east-1")
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = self.invoked_function_arn or \
            f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def context_for(topology: Topology, function: str) -> LambdaContext:
    f = topology.function(function)
    return LambdaContext(function, memory_limit_in_mb=f.memory_mb, timeout_s=f.timeout_s)
