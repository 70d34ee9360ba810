"""Drift of the new feature types over 1M captured rows, in memory (no capture I/O: that is
monitoring.py's figure): a text column judged by its length, out-of-vocabulary rate and
top-term shift (a 500-word TF-IDF vocabulary, Zipf-distributed words from 2,000, 1-20 words a
text), and a datetime column judged by its days, month/weekday/hour parts and out-of-range
dates.

Baseline: what monitoring did for these columns before (issue 26's drift work): a text as its
words per value only (normalise_text then split, per value, into a numeric accumulator) and a
date as its days only (a numeric accumulator). The ratio is what the new signals cost."""

from __future__ import annotations

import time

import numpy as np

from common import parse_args, row, summary, write_result


def texts(n: int, seed: int) -> list[str]:
    from mlops_kit.core.features import normalise_text

    rng = np.random.default_rng(seed)
    words = np.asarray([f"w{i}" for i in range(2000)], dtype=object)
    p = 1 / np.arange(1, 2001)
    idx = rng.choice(2000, size=n * 10, p=p / p.sum())
    sizes = rng.integers(1, 21, n)
    out, pos = [], 0
    for k in sizes.tolist():
        if pos + k > idx.size:
            pos = 0
        out.append(normalise_text(" ".join(words[idx[pos:pos + k]])))  # as captured
        pos += k
    return out


def main() -> None:
    from mlops_kit.core.features import normalise_text, parse_days, text_tokens
    from mlops_kit.core.monitoring.accumulators import NumericAccumulator
    from mlops_kit.core.monitoring.drift import FeatureDriftAccumulator
    from mlops_kit.core.spec import parse_spec
    from mlops_kit.core.stats import numeric_profile, term_profile

    args = parse_args(__doc__)
    n = 20_000 if args.smoke else 1_000_000
    repeats = 1 if args.smoke else 3
    spec = parse_spec({"name": "m", "task": "binary_classification", "target": "y",
                       "features": [{"name": "note", "type": "text"},
                                    {"name": "since", "type": "datetime"}]})
    ref_texts = texts(20_000, 1)
    vocab = [f"w{i}" for i in range(500)]
    rng = np.random.default_rng(2)
    start = parse_days("2020-01-01")
    ref_days = start + rng.uniform(0, 4 * 365, 20_000)
    profile = {"features": {
        "note": {**numeric_profile([len(text_tokens(t)) or None for t in ref_texts]),
                 "terms": term_profile(vocab, (text_tokens(t) for t in ref_texts))},
        "since": numeric_profile(ref_days)}}
    live_texts = texts(n, 3)
    live_days = (start + rng.uniform(0, 5 * 365, n)).astype(np.float32)  # captured: float32
    now = start + 5 * 365

    def old_words(values: list) -> np.ndarray:  # monitoring's text path before
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if v is not None:
                k = len(normalise_text(str(v)).split())
                if k:
                    out[i] = k
        return out

    cases = {
        "text": (lambda: FeatureDriftAccumulator(
                     {"features": {"note": profile["features"]["note"]}}, spec, now_days=now
                 ).add_columns({"note": live_texts}, n),
                 lambda: NumericAccumulator(profile["features"]["note"]).add(
                     old_words(live_texts))),
        "datetime": (lambda: FeatureDriftAccumulator(
                         {"features": {"since": profile["features"]["since"]}}, spec,
                         now_days=now).add_columns({"since": live_days}, n),
                     lambda: NumericAccumulator(profile["features"]["since"]).add(live_days)),
    }
    rows = []
    for kind, (kit, base) in cases.items():
        kit_s, base_s = [], []
        for _ in range(repeats):  # interleaved: the machine's load hits both alike
            t0 = time.perf_counter()
            kit()
            kit_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            base()
            base_s.append(time.perf_counter() - t0)
        k, b = summary(kit_s), summary(base_s)
        what = ("length, out-of-vocabulary rate, top-term shift" if kind == "text"
                else "days, month/weekday/hour, out-of-range dates")
        rows.append(row(
            f"{kind} drift, {n:,} captured rows", None, "accumulate one window", k, "s",
            baseline=("words per text only" if kind == "text" else "days only") + " (before)",
            baseline_stats=b, ratio=b["median"] / k["median"],
            ratio_label="x the baseline's speed",
            note=f"{what}; {n / k['median']:,.0f} rows/s"))
    print(write_result("drift_types", rows, smoke=args.smoke, out_dir=args.out))


if __name__ == "__main__":
    main()
