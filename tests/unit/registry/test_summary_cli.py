"""`mlops-kit registry list` reads the models' summaries; `registry rebuild-summary` recomputes
them from the rows (after an upgrade from a version without them, or to repair one)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlops_kit.cli.app import app
from mlops_kit.core.table_keys import MODELS_PK, SUMMARY_SK, model_pk

runner = CliRunner()


def cli(ws, *args):
    r = runner.invoke(app, list(args), env={"MLOPSKIT_WORKSPACE": str(ws)},
                      catch_exceptions=False)
    assert r.exit_code == 0, r.stdout
    return json.loads(r.stdout)


def _register(reg, model, run):
    v = reg.reserve_version(model, run, {}).version
    reg.complete_version(model, v, {"status": "registered", "metrics": {"auc": 0.5 + v / 10}})
    return v


def test_list_reads_summaries_and_rebuild_repairs_them(backend):
    reg, ws = backend.ctx.registry, backend.settings.workspace
    for run in ("a", "b"):
        _register(reg, "m", run)
    reg.promote("m", 2, actor="t", reason="x")
    reg.reserve_version("m", "c", {})  # pending: listed as the latest version
    expected = [{"model": "m", "versions": 3, "latest": 3, "champion": 2, "challenger": None}]
    assert cli(ws, "registry", "list", "--json") == expected
    # a summary gone wrong (or never written: an upgrade) is recomputed from the rows
    table = reg.table
    table.put(model_pk("m"), SUMMARY_SK, {**table.get(model_pk("m"), SUMMARY_SK), "versions": {}})
    table.put(MODELS_PK, "m", {"model": "m", "created_at": "x"})
    assert cli(ws, "registry", "rebuild-summary", "--json") == expected
    assert cli(ws, "registry", "list", "--json") == expected
    assert cli(ws, "registry", "rebuild-summary", "m", "--json") == expected
