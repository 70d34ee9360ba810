"""Drift maths of the new feature types: text (length, out-of-vocabulary rate, top-term shift),
datetime (calendar parts, out-of-range dates) and boolean (a rate), on in-memory profiles and
columns, with the edge cases: empty and missing text, missing dates, leap days, time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit.core.capture.chunks import Categorical
from mlops_kit.core.features import calendar_parts, normalise_text, parse_days, text_tokens
from mlops_kit.core.monitoring.drift import feature_drift
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.stats import OTHER_CATEGORY, TermCounts, numeric_profile, term_profile
from mlops_kit.core.training.fit import build_pipeline, text_term_profiles, train

SPEC = {
    "name": "m", "task": "binary_classification", "target": "y",
    "features": [{"name": "note", "type": "text", "nullable": True},
                 {"name": "since", "type": "datetime", "nullable": True},
                 {"name": "flag", "type": "boolean", "nullable": True}],
    "monitoring": {"min_rows": 10},
}
WORDS = ["slow", "great", "app", "crash", "bill", "refund", "login", "fast"]


def spec(**monitoring):
    return parse_spec({**SPEC, "monitoring": {**SPEC["monitoring"], **monitoring}})


def texts(n, seed, words=WORDS, p=None):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, rng.integers(1, 6), p=p)) for _ in range(n)]


def text_profile(train_texts):
    vocab = sorted({w for t in train_texts for w in text_tokens(t)})
    words = [float(len(text_tokens(t))) or None for t in train_texts]
    return {"features": {"note": {**numeric_profile(words),
                                  "terms": term_profile(vocab, map(text_tokens, train_texts))}}}


# -- text ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["Can't STOP, école-été!", "", "a b c", "  x1 y_2 \tZ3  ",
                                 "ÉCOLE straße Ⅻ 42", "don't-stop-me-now"])
def test_text_tokens_are_the_tfidf_tokens(raw):
    """Drift counts exactly the words the model's TF-IDF counts: the fitted pipeline's own
    analyzer on the normalised text (as training and serving feed it) gives the same tokens."""
    pipe = build_pipeline(spec())
    vect = dict((n, t) for n, t, _ in pipe.named_steps["preprocess"].transformers)["text_note"]
    assert vect.build_analyzer()(normalise_text(raw)) == text_tokens(raw)
    assert text_tokens(normalise_text(raw)) == text_tokens(raw)  # captured text is normalised


def test_term_counts_oov_and_shares():
    counts = TermCounts({"app", "slow", "great"}, tracked={"app", "slow"})
    counts.add([["app", "slow", "app"], [], ["zzz", "great"]])
    assert (counts.docs, counts.tokens, counts.oov) == (2, 5, 1)
    assert counts.oov_rate == pytest.approx(0.2)
    shares = counts.shares(["app", "slow"])
    assert shares == pytest.approx({"app": 0.4, "slow": 0.2, OTHER_CATEGORY: 0.4})
    assert TermCounts({"a"}).shares(["a"]) == {}  # no tokens: no distribution
    assert TermCounts({"a"}).oov_rate == 0.0


def test_term_profile_keeps_the_top_words_in_order():
    prof = term_profile(["aa", "bb", "cc"], [["aa", "bb", "aa"], ["cc", "dd"]], top=2)
    assert prof["vocabulary"] == ["aa", "bb", "cc"] and prof["docs"] == 2
    assert prof["oov_rate"] == pytest.approx(0.2)
    assert list(prof["top"]) == ["aa", "bb", OTHER_CATEGORY]  # bb before cc: alphabetical tie
    assert sum(prof["top"].values()) == pytest.approx(1.0)


def test_same_text_population_does_not_alert():
    profile = text_profile(texts(800, 1))
    d = feature_drift(profile, {"note": texts(400, 2)}, spec())["features"]["note"]
    assert d["type"] == "text" and not d["drifted"], d["reasons"]
    assert d["oov_rate_cur"] == 0.0 and d["top_term_shift"] < 0.01
    assert not d["oov_alert"] and not d["top_term_alert"]


def test_new_words_raise_the_oov_rate_and_alert():
    profile = text_profile(texts(800, 1))
    live = [t + " zzz qqq" for t in texts(400, 2)]
    d = feature_drift(profile, {"note": live}, spec())["features"]["note"]
    assert d["oov_alert"] and d["drifted"] and d["oov_rate_cur"] > 0.3
    assert any("out of the model's vocabulary" in r for r in d["reasons"])
    # a looser policy tolerates it
    loose = spec(max_oov_rate_increase=0.9, max_top_term_shift=1.0, threshold=100)
    assert not feature_drift(profile, {"note": live}, loose)["features"]["note"]["oov_alert"]


def test_reweighted_known_words_shift_the_top_terms_without_oov():
    profile = text_profile(texts(800, 1))
    p = [0.65, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]  # same words, "slow" dominates
    d = feature_drift(profile, {"note": texts(400, 2, p=p)}, spec())["features"]["note"]
    assert d["oov_rate_cur"] == 0.0 and not d["oov_alert"]
    assert d["top_term_alert"] and d["top_term_shift"] > 0.1
    assert d["top_terms"][0]["term"] == "slow" and d["top_terms"][0]["cur"] > 0.5


def test_empty_and_missing_text_are_missing_not_words():
    profile = text_profile(texts(800, 1))
    live = ["", None, float("nan"), "  ", "!!!"] * 20 + texts(100, 3)
    d = feature_drift(profile, {"note": live}, spec())["features"]["note"]
    assert d["null_rate_cur"] == pytest.approx(0.5)
    assert d["tokens"] == sum(len(text_tokens(t)) for t in live)
    assert not d["oov_alert"]
    # every text empty: no tokens, no term statistics to judge (and no crash)
    d = feature_drift(profile, {"note": [""] * 50}, spec())["features"]["note"]
    assert d["oov_rate_cur"] == 0.0 and d["top_term_shift"] == 0.0 and d["tokens"] == 0


def test_captured_dictionary_text_counts_like_a_list():
    profile = text_profile(texts(800, 1))
    live = texts(300, 2, words=WORDS + ["zzz"])
    values = np.asarray(sorted(set(live)), dtype=object)
    index = {v: i for i, v in enumerate(values.tolist())}
    column = Categorical(np.asarray([index[t] for t in live] + [-1] * 5), values)
    a = feature_drift(profile, {"note": column}, spec())["features"]["note"]
    b = feature_drift(profile, {"note": [*live, None, None, None, None, None]},
                      spec())["features"]["note"]
    for key in ("oov_rate_cur", "top_term_shift", "tokens", "null_rate_cur"):
        assert a[key] == b[key]


def test_too_few_rows_judge_nothing():
    profile = text_profile(texts(800, 1))
    profile["features"].update(date_profile()["features"])
    d = feature_drift(profile, {"note": ["zzz qqq"] * 5, "since": [parse_days("2020-01-06")] * 5},
                      spec())
    assert d["insufficient_data"] and not d["drifted"]
    note, since = d["features"]["note"], d["features"]["since"]
    assert not note["oov_alert"] and not note["top_term_alert"] and note["oov_rate_cur"] == 1.0
    assert not any(p["drifted"] for p in since["parts"].values())


def test_a_profile_without_terms_still_judges_the_length():
    """Versions trained before the words were kept: length drift only, no term fields."""
    profile = text_profile(texts(800, 1))
    del profile["features"]["note"]["terms"]
    d = feature_drift(profile, {"note": texts(200, 2)}, spec())["features"]["note"]
    assert d["type"] == "text" and "oov_rate_cur" not in d and not d["drifted"]


def test_training_keeps_the_models_words_from_the_holdout():
    rng = np.random.default_rng(0)
    notes = texts(300, 5)
    df = pd.DataFrame({"note": [normalise_text(t) for t in notes],
                       "since": rng.uniform(18000, 19000, 300),
                       "flag": rng.integers(0, 2, 300).astype(float),
                       "y": rng.integers(0, 2, 300)})
    s = parse_spec({**SPEC, "features": [{**SPEC["features"][0], "ngrams": 2, "max_features": 5},
                                        *SPEC["features"][1:]]})
    result = train(s, df)
    prof = text_term_profiles(s, result)["note"]
    vect = result.pipeline.named_steps["preprocess"].named_transformers_["text_note"]
    assert set(prof["vocabulary"]) == {t for t in vect.vocabulary_ if " " not in t}
    assert prof["docs"] == result.rows_holdout
    assert 0 < prof["oov_rate"] < 1  # max_features 5 of 8 words, bigrams taking some slots


# -- datetime -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "month", "weekday", "hour"), [
    ("2024-02-29", 1, 3, 0),  # a leap day, a Thursday
    ("2024-02-29T23:55:00Z", 1, 3, 23),
    ("2024-02-29T23:58:00Z", 2, 4, 0),  # rounded to 5 minutes: 2024-03-01T00:00, a Friday
    ("2024-03-01T00:30:00+01:00", 1, 3, 23),  # 2024-02-29T23:30 UTC
    ("2023-12-31T22:00:00-05:00", 0, 0, 3),  # 2024-01-01T03:00 UTC, a Monday
    ("1900-03-01", 2, 3, 0),  # 1900 is no leap year
    ("1969-12-31T12:00:00", 11, 2, 12),  # before the epoch: negative days
    ("2000-02-29T06:00:00", 1, 1, 6),  # 2000 is one
])
def test_calendar_parts_of_edge_dates(text, month, weekday, hour):
    got = calendar_parts(np.array([parse_days(text)]), ["month", "weekday", "hour"])
    assert (got["month"][0], got["weekday"][0], got["hour"][0]) == (month, weekday, hour)


def test_calendar_parts_agree_with_datetime():
    rng = np.random.default_rng(3)
    base = datetime(1950, 1, 1, tzinfo=UTC)
    moments = [base + timedelta(minutes=5 * int(s))  # whole 5 minutes: no rounding across
               for s in rng.integers(0, 100 * 365 * 288, 5000)]  # an hour or a day
    got = calendar_parts(np.array([parse_days(m.isoformat()) for m in moments]),
                         ["month", "weekday", "hour"])
    assert got["month"].tolist() == [m.month - 1 for m in moments]
    assert got["weekday"].tolist() == [m.weekday() for m in moments]
    assert got["hour"].tolist() == [m.hour for m in moments]


def days(texts_):
    return [parse_days(t) if t else None for t in texts_]


def date_profile(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    start = parse_days("2020-01-01")
    return {"features": {"since": numeric_profile(start + rng.uniform(0, 4 * 365, n))}}


def test_dates_in_the_training_range_do_not_alert():
    rng = np.random.default_rng(1)
    live = parse_days("2020-01-01") + rng.uniform(0, 4 * 365, 500)
    d = feature_drift(date_profile(), {"since": live}, spec(),
                      now_days=parse_days("2024-06-01"))["features"]["since"]
    assert d["type"] == "datetime" and not d["drifted"], d["reasons"]
    assert d["out_of_range_rate"] == 0.0
    assert set(d["parts"]) == {"month", "weekday", "hour"}
    assert d["range_min"].startswith("2019-08") and d["range_max"].startswith("2024-05")


def test_dates_beyond_the_widened_range_or_in_the_future_are_out_of_range():
    ok = ["2021-05-05"] * 80
    late = ["2031-01-01"] * 10  # after max + 10% of the span
    early = ["2010-01-01"] * 10
    d = feature_drift(date_profile(), {"since": days(ok + late + early)}, spec(),
                      now_days=parse_days("2040-01-01"))["features"]["since"]
    assert d["out_of_range_rate"] == pytest.approx(0.2) and d["out_of_range"] and d["drifted"]
    assert any("outside 2019-" in r for r in d["reasons"])
    # a wide margin accepts them; the future still counts
    wide = spec(date_margin=10.0)
    d = feature_drift(date_profile(), {"since": days(ok + late + early)}, wide,
                      now_days=parse_days("2030-06-01"))["features"]["since"]
    assert d["out_of_range_rate"] == pytest.approx(0.1)  # the 2031 dates: in the future
    assert d["range_max"].startswith("2030-06-02")  # now + max_future_days (1)


def test_future_dates_are_fine_when_training_had_them():
    """An expiry date: training saw dates years ahead of its time, so the future is no
    anomaly; the widened training range alone judges."""
    profile = date_profile()  # 2020-01-01 .. 2023-12-31
    live = days(["2023-06-01"] * 50 + ["2024-03-01"] * 50)  # within max + 10% of the span
    d = feature_drift(profile, {"since": live}, spec(),
                      now_days=parse_days("2021-01-01"))["features"]["since"]
    assert d["out_of_range_rate"] == 0.0 and d["range_max"].startswith("2024-05")


def test_missing_dates_are_missing_not_out_of_range():
    live = days(["2021-05-05", None, "", "2022-02-28"] * 25) + [float("nan")] * 20
    d = feature_drift(date_profile(), {"since": live}, spec())["features"]["since"]
    assert d["out_of_range_rate"] == 0.0
    assert d["null_rate_cur"] == pytest.approx(70 / 120)


def test_a_weekday_shift_shows_in_the_weekday_part():
    rng = np.random.default_rng(2)
    start = parse_days("2020-01-06")  # a Monday
    live = start + 7 * rng.integers(0, 200, 500)  # Mondays only, same span
    d = feature_drift(date_profile(), {"since": live}, spec())["features"]["since"]
    assert d["parts"]["weekday"]["drifted"] and not d["parts"]["month"]["drifted"]
    assert d["parts"]["weekday"]["cur"][0] == 1.0 and d["drifted"]
    assert any(r.startswith("weekday distribution") for r in d["reasons"])


def test_only_declared_parts_are_compared():
    s = parse_spec({**SPEC, "features": [{"name": "since", "type": "datetime",
                                          "parts": ["days", "week_cycle"]}]})
    d = feature_drift(date_profile(), {"since": [parse_days("2021-01-01")] * 20}, s)
    assert set(d["features"]["since"]["parts"]) == {"weekday"}


# -- boolean ------------------------------------------------------------------------------
def test_boolean_drift_is_a_rate():
    rng = np.random.default_rng(0)
    profile = {"features": {"flag": numeric_profile((rng.random(1000) < 0.3).astype(float))}}
    same = (rng.random(400) < 0.3).astype(float)
    d = feature_drift(profile, {"flag": same}, spec())["features"]["flag"]
    assert d["type"] == "boolean" and not d["drifted"]
    assert d["true_rate_ref"] == pytest.approx(0.3, abs=0.03)
    moved = np.where(rng.random(400) < 0.8, 1.0, 0.0)
    moved[:40] = np.nan  # missing: not a false
    d = feature_drift(profile, {"flag": moved}, spec())["features"]["flag"]
    assert d["drifted"] and d["true_rate_cur"] == pytest.approx(0.8, abs=0.05)
    assert d["null_rate_cur"] == pytest.approx(0.1)
    assert d["histogram"]["labels"] == ["false", "true"]
    assert d["reasons"][0].startswith(f"true rate {100 * d['true_rate_ref']:.1f}% -> ")


# -- the policy ---------------------------------------------------------------------------
def test_new_monitoring_options_hash_as_before_at_their_defaults():
    plain = parse_spec(SPEC)
    explicit = spec(max_oov_rate_increase=0.1, max_top_term_shift=0.1, date_margin=0.1,
                    max_future_days=1.0)
    assert explicit.spec_hash() == plain.spec_hash()
    assert spec(date_margin=0.5).spec_hash() != plain.spec_hash()
    assert "date_margin" not in plain.canonical_json()


# -- the HTML report ----------------------------------------------------------------------
def test_the_html_report_shows_the_new_types_figures():
    from mlops_kit.core.monitoring.report_html import render_report

    rng = np.random.default_rng(4)
    profile = text_profile(texts(800, 1))
    profile["features"].update(date_profile()["features"])
    profile["features"]["flag"] = numeric_profile((rng.random(500) < 0.3).astype(float))
    start = parse_days("2020-01-06")
    columns = {"note": [t + " zzz" for t in texts(300, 2)],
               "since": list(start + 7 * rng.integers(0, 200, 300)),
               "flag": (rng.random(300) < 0.9).astype(float)}
    drift = feature_drift(profile, columns, spec(), now_days=parse_days("2024-06-01"))
    html = render_report({"model": "m", "version": 1, "status": "ok", "drift": drift})
    assert "out of vocabulary 0.0% → " in html and "top-term shift" in html
    assert 'data-part="terms"' in html and ">zzz<" not in html  # OOV words are no bars
    flag = drift["features"]["flag"]
    assert (f"true {100 * flag['true_rate_ref']:.1f}% → {100 * flag['true_rate_cur']:.1f}%"
            in html)  # the boolean's true rate, reference → now
    for part in ("month", "weekday", "hour"):
        assert f'data-part="{part}"' in html
    assert ">Mon<" in html and ">Dec<" in html and "range 2019-08" in html
    assert html.count('<figure class="feature drifted"') >= 3  # text, weekday, boolean


def test_text_tokens_equal_normalise_text_words_on_any_text():
    from hypothesis import given
    from hypothesis import strategies as st

    @given(st.text(max_size=60))
    def check(s):
        assert text_tokens(s) == normalise_text(s).split()

    check()
