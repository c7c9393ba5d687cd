import keras
import numpy as np
import pytest

from mindgap.optimizers import Nadam2017


def keras1_nadam(parameters, gradients, lr=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8, schedule_decay=0.004):
    """Keras 1/2's Nadam, transcribed from its update rule, for a list of successive gradients."""
    p = np.array(parameters, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    m_schedule = 1.0
    for t, g in enumerate(gradients, start=1):
        g = np.asarray(g, np.float64)
        momentum_cache_t = beta_1 * (1.0 - 0.5 * 0.96 ** (t * schedule_decay))
        momentum_cache_t_1 = beta_1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * schedule_decay))
        m_schedule_new = m_schedule * momentum_cache_t
        m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
        m_schedule = m_schedule_new
        g_prime = g / (1.0 - m_schedule_new)
        m = beta_1 * m + (1.0 - beta_1) * g
        m_t_prime = m / (1.0 - m_schedule_next)
        v = beta_2 * v + (1.0 - beta_2) * g**2
        v_t_prime = v / (1.0 - beta_2**t)
        m_t_bar = (1.0 - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
        p = p - lr * m_t_bar / (np.sqrt(v_t_prime) + epsilon)
    return p


def _run(optimizer, gradients):
    variable = keras.Variable(np.array([1.0, -2.0, 0.5], "float32"))
    for gradient in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(np.asarray(gradient, "float32"))], [variable])
    return variable.numpy()


GRADIENTS = [[0.1, -0.3, 0.05], [0.2, 0.1, -0.4], [-0.05, 0.3, 0.2], [0.4, -0.2, 0.1]]


def test_defaults_are_keras_2017s():
    optimizer = Nadam2017()
    assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon, optimizer.schedule_decay) == \
        pytest.approx((0.002, 0.9, 0.999, 1e-8, 0.004))


def test_matches_keras1_update_rule():
    np.testing.assert_allclose(_run(Nadam2017(), GRADIENTS), keras1_nadam([1.0, -2.0, 0.5], GRADIENTS), rtol=1e-5)


def test_schedule_decay_one_is_keras3_nadam():
    ours = _run(Nadam2017(schedule_decay=1.0, epsilon=1e-7, learning_rate=0.001), GRADIENTS)
    theirs = _run(keras.optimizers.Nadam(), GRADIENTS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert not np.allclose(_run(Nadam2017(), GRADIENTS), _run(keras.optimizers.Nadam(learning_rate=0.002, epsilon=1e-8), GRADIENTS))


def test_serializes():
    config = Nadam2017(schedule_decay=0.01).get_config()
    assert Nadam2017.from_config(config).schedule_decay == 0.01


def _first_update_after(steps_before, optimizer):
    """Size of a late variable's first update after ``steps_before`` updates of another variable."""
    early = keras.Variable(np.zeros(3, "float32"))
    late = keras.Variable(np.zeros(3, "float32"))
    optimizer.build([early, late])
    gradient = keras.ops.convert_to_tensor(np.full(3, 0.5, "float32"))
    for _ in range(steps_before):
        optimizer.apply([gradient], [early])
    optimizer.apply([gradient, gradient], [early, late])
    return float(np.abs(late.numpy()).mean())


@pytest.mark.parametrize("steps_before", [0, 57, 1250])
def test_a_late_variable_takes_a_fresh_first_step(steps_before):
    """A backbone unfrozen at global step t moves like a fresh optimizer's first step (1.06 × lr for a
    steady gradient), not the 4.4 × lr (t = 57) or 13.9 × lr (t = 1,250) of a global step count."""
    lr = 0.002
    first = _first_update_after(steps_before, Nadam2017(learning_rate=lr))
    fresh = abs(keras1_nadam([0.0], [[0.5]], lr=lr)[0])
    assert fresh == pytest.approx(1.056 * lr, rel=1e-3)
    assert first == pytest.approx(fresh, rel=1e-4)


def test_per_variable_steps_and_reset():
    optimizer = Nadam2017()
    early = keras.Variable(np.ones(2, "float32"))
    late = keras.Variable(np.ones(2, "float32"))
    optimizer.build([early, late])
    for _ in range(3):
        optimizer.apply([keras.ops.ones(2)], [early])
    assert optimizer.variable_steps([early, late]) == [3, 0]
    optimizer.reset_state()
    assert optimizer.variable_steps([early, late]) == [0, 0] and int(optimizer.iterations.numpy()) == 0
    # After a reset the next update equals a brand-new optimizer's first update.
    before = early.numpy().copy()
    optimizer.apply([keras.ops.full((2,), 0.3)], [early])
    reference = _run_from(before, Nadam2017(), [[0.3, 0.3]])
    np.testing.assert_allclose(early.numpy(), reference, rtol=1e-6)


def _run_from(start, optimizer, gradients):
    variable = keras.Variable(np.asarray(start, "float32"))
    for gradient in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(np.asarray(gradient, "float32"))], [variable])
    return variable.numpy()
