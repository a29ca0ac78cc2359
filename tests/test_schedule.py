"""The learning-rate schedules (liverlib.schedule): the paper's piecewise steps and warm-up + cosine decay."""

import pytest

from liverlib.config import load_config
from liverlib.schedule import learning_rate_at, piecewise_lr


def test_the_papers_piecewise_schedule_divides_by_ten_every_twenty_epochs():
    schedule = piecewise_lr(load_config("paper"))
    assert [schedule(e) for e in (0, 19, 20, 39, 40, 79)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-7])


def test_warmup_cosine_in_figures_matches_what_the_optimiser_is_given():
    """learning_rate_at draws the schedule; keras_learning_rate is what training steps with: the same curve."""
    from liverlib.schedule import keras_learning_rate

    config = load_config("laptop").replace(lr_schedule="warmup-cosine", learning_rate=5e-4, epochs=8)
    steps = 10
    keras_schedule = keras_learning_rate(config, steps)
    for step in (0, 5, 10, 25, 40, 79):
        assert float(keras_schedule(step)) == pytest.approx(learning_rate_at(config, step / steps), rel=1e-4, abs=1e-9)
    assert learning_rate_at(config, 1.0) == pytest.approx(5e-4) and learning_rate_at(config, 8.0) == pytest.approx(0.0)
    assert keras_learning_rate(config.replace(lr_schedule="piecewise"), steps) == pytest.approx(5e-4)
