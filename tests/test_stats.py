"""95% intervals: Wilson for proportions, percentile bootstrap otherwise."""

import numpy as np
import pytest

from tfxfer.evaluation import Evaluation, macro_f1
from tfxfer.utils.stats import bootstrap_interval, format_interval, wilson_interval


def test_wilson_matches_its_closed_form_and_stays_in_the_unit_interval():
    low, high = wilson_interval(151, 180)  # the flowers app's 0.839 on 180 photos
    assert (round(low, 3), round(high, 3)) == (0.778, 0.885)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert 0 < wilson_interval(0, 10)[1] < 0.35  # not the degenerate [0, 0]
    wide, narrow = wilson_interval(90, 100), wilson_interval(900, 1000)
    assert wide[1] - wide[0] > 2.5 * (narrow[1] - narrow[0])  # shrinks like 1/sqrt(n)


def test_wilson_covers_the_true_proportion_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = [lo <= 0.8 <= hi for lo, hi in
            (wilson_interval(int(k), 150) for k in rng.binomial(150, 0.8, 2000))]
    assert 0.93 <= np.mean(hits) <= 0.97


@pytest.mark.parametrize("successes, trials", [(3, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(successes, trials):
    with pytest.raises(ValueError, match=f"successes={successes}, trials={trials}"):
        wilson_interval(successes, trials)


def test_bootstrap_is_repeatable_brackets_the_value_and_agrees_with_wilson():
    rng = np.random.default_rng(1)
    correct = (rng.random(400) < 0.85).astype(float)
    low, high = bootstrap_interval(np.mean, correct, seed=3)
    assert (low, high) == bootstrap_interval(np.mean, correct, seed=3)
    assert low < correct.mean() < high
    w_low, w_high = wilson_interval(int(correct.sum()), 400)
    assert abs(low - w_low) < 0.01 and abs(high - w_high) < 0.01
    with pytest.raises(ValueError, match=r"lengths: \[3, 2\]"):
        bootstrap_interval(lambda a, b: 0.0, np.ones(3), np.ones(2))


def test_evaluation_reports_intervals_in_its_table_and_dict():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 1, 0, 2] * 6)
    y_prob = np.eye(3)[np.where(np.arange(60) % 5 == 0, (y_true + 1) % 3, y_true)]
    evaluation = Evaluation(["a", "b", "c"], y_true, y_prob)
    metrics = evaluation.to_dict()
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["accuracy_interval"] == pytest.approx(list(wilson_interval(48, 60)))
    low, high = metrics["macro_f1_interval"]
    assert low < metrics["macro_f1"] < high
    assert metrics["macro_f1"] == pytest.approx(macro_f1(y_true, y_prob.argmax(1), 3))
    assert format_interval(0.8, wilson_interval(48, 60), 4) in evaluation.table()
