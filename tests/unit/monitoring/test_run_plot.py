"""The run plots (server-side SVG) and pages: well-formed, escaped, the best marked; the
monitoring report shows the champion's training run from its lineage."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mlops_kit.core.monitoring.report_html import render_report
from mlops_kit.core.monitoring.run_plot import param_plots, run_plot_svg
from mlops_kit.core.monitoring.run_report import render_run_report

SVG = "{http://www.w3.org/2000/svg}"
XSS = "<script>alert(1)</script>"


def rows():
    out = [{"hash": f"h{i}", "kind": "random_forest", "params": {"max_depth": d, "n_estimators": 50,
                                                                  "criterion": XSS},
            "status": "ok", "value": v, "best": False}
           for i, (d, v) in enumerate([(2, 0.71), (4, 0.78), (8, 0.74)])]
    out += [{"hash": "lr", "kind": "logistic_regression", "params": {"C": c}, "status": "ok",
             "value": v, "best": False} for c, v in ((0.01, 0.70), (1.0, 0.80), (100.0, 0.79))]
    out[4]["best"] = True
    out.append({"hash": "bad", "kind": XSS, "params": {}, "status": "failed", "value": None,
                "best": False, "reason": XSS})
    return out


def test_run_plot_is_well_formed_escaped_svg_with_the_best_marked():
    svg = run_plot_svg(rows(), "roc_auc")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # well-formed XML, escaping intact
    circles = root.findall(f".//{SVG}circle[@data-hash]")
    assert len(circles) == 6  # every scored trial
    [best] = [c for c in circles if "best" in c.get("class")]
    assert best.get("data-hash") == "lr"
    assert len(root.findall(f".//{SVG}g[@class='trial failed']")) == 1
    # the best score is the right-most point
    assert float(best.get("cx")) == max(float(c.get("cx")) for c in circles)


def test_one_scatter_per_numeric_parameter_that_varies():
    plots = dict(param_plots(rows(), "roc_auc"))
    assert set(plots) == {"max_depth", "C"}  # n_estimators is constant, criterion a string
    assert "(log)" in plots["C"] and "(log)" not in plots["max_depth"]
    for svg in plots.values():
        ET.fromstring(svg)


def test_the_run_page_and_the_monitoring_report_show_the_run():
    summary = {"model": "churn", "run": 3, "metric": "roc_auc", "status": "finished",
               "dataset_key": f"datasets/churn/{XSS}.csv"}
    page = render_run_report(summary, rows())
    assert "<script>" not in page and "run-plot" in page and "param-plot" in page
    assert page.count("★") == 1
    report = {"model": "churn", "version": 3, "status": "ok", "lineage": {
        "version": 3, "lineage": {"dataset_key": "datasets/churn/a.csv", "experiment": {
            "run": 3, "strategy": "grid", "metric": "roc_auc", "trials": 7, "ok": 6,
            "failed": 1, "skipped": 0,
            "winner": {"hash": "lr", "kind": "logistic_regression", "params": {"C": 1.0},
                       "cv": {"roc_auc": 0.80}},
            "beat": [{"hash": f"h{i}", "kind": "random_forest", "cv": v}
                     for i, v in enumerate([0.78, 0.74, 0.71])]}}}}
    html = render_report(report)
    assert "Training run 3" in html and 'class="run-plot"' in html
    assert html.count('class="trial best"') == 1 and html.count('class="trial"') == 3
