"""Nadam as the Keras of 2017 defined it, which the paper used (§3.3).

Keras 1/2's Nadam had ``schedule_decay=0.004``: the momentum schedule is ``mu_t = beta_1 * (1 - 0.5 * 0.96 ** (0.004 *
t))``, which stays near ``beta_1 / 2`` for thousands of steps.  Keras 3's Nadam uses ``0.96 ** t``, reaching
``beta_1`` within a few hundred steps.  Everything else (bias corrections, the Nesterov step) is the same in both.

**Steps are counted per variable.**  Keras' optimizers count one global step
``t`` for the bias corrections ``1 - beta_2 ** t`` and ``1 - prod(mu)``.  A
variable that starts training late (a backbone unfrozen at epoch 11) then has
zero moments but a large ``t``: for a steady gradient its first update is
13.9 × lr per weight at t = 1,250 (4.4 × lr at t = 57) instead of a fresh
optimizer's 1.06 × lr, a sign-like jump of every backbone weight at once that
killed every map of the head in our runs (NOTES.md).  Here each variable has its own ``t`` (and its own product
of momentum factors), advanced only when it is updated, so a variable's first
update has a fresh optimizer's size whenever it comes.  For variables updated
at every step from the start (the 2017 optimizer's only case) this is exactly
the 2017 rule.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mindgap")
class Nadam2017(keras.optimizers.Nadam):
    """Keras 3 Nadam with Keras 1/2's momentum schedule and defaults, steps counted per variable.

    Args:
        learning_rate: 0.002 (Keras 1/2 default; Keras 3's is 0.001).
        beta_1, beta_2: 0.9, 0.999.
        epsilon: 1e-8 (Keras 3's default is 1e-7).
        schedule_decay: 0.004; 1.0 gives Keras 3's Nadam.

    Example:
        >>> optimizer = Nadam2017()
        >>> optimizer.build(model.trainable_variables)   # doctest: +SKIP
        >>> optimizer.reset_state()                       # doctest: +SKIP  (a fresh optimizer, as a 2017 recompile)

    Reference: Dozat 2016; Keras 2.0 ``keras/optimizers.py``; Moreaux et al. 2018 §3.3.
    """

    def __init__(self, learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8, schedule_decay=0.004, name="nadam_2017", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name, **kwargs)
        self.schedule_decay = float(schedule_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        dtype = var_list[0].dtype if var_list else keras.backend.floatx()
        # Per variable: its own step count and product of momentum factors.
        self._steps = [self.add_variable((), initializer="zeros", dtype=dtype, name=f"step_{index}")
                       for index in range(len(var_list))]
        self._u_products = [self.add_variable((), initializer="ones", dtype=dtype, name=f"u_product_{index}")
                            for index in range(len(var_list))]

    def _momentum_cache(self, step, dtype):
        """mu_t of step t (1-based)."""
        return ops.cast(self.beta_1, dtype) * (1.0 - 0.5 * ops.power(ops.cast(0.96, dtype), step * self.schedule_decay))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Nadam's own override advances a global product with Keras 3's schedule: skip to the generic step.
        super(keras.optimizers.Nadam, self)._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self._steps[index], dtype) + 1.0
        mu_t = self._momentum_cache(step, dtype)
        mu_next = self._momentum_cache(step + 1.0, dtype)
        product = ops.cast(self._u_products[index], dtype) * mu_t
        self.assign(self._steps[index], step)
        self.assign(self._u_products[index], product)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, (gradient - m) * (1.0 - beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1.0 - beta_2))
        m_hat = mu_next * m / (1.0 - product * mu_next) + (1.0 - mu_t) * gradient / (1.0 - product)
        v_hat = v / (1.0 - ops.power(beta_2, step))
        self.assign_sub(variable, learning_rate * m_hat / (ops.sqrt(v_hat) + self.epsilon))

    def variable_steps(self, variables):
        """The step count of each of ``variables`` (how many updates it has had)."""
        return [int(keras.ops.convert_to_numpy(self._steps[self._get_variable_index(variable)])) for variable in variables]

    def reset_state(self):
        """Forget everything: moments, step counts and the global iteration count.

        What Keras 2017 did when a model was compiled again with a new
        ``Nadam()`` after changing which layers train (the fine-tuning recipe).
        """
        for moments in (self._momentums, self._velocities, self._steps):
            for variable in moments:
                variable.assign(ops.zeros_like(variable))
        for variable in self._u_products:
            variable.assign(ops.ones_like(variable))
        self.iterations.assign(0)

    def get_config(self):
        config = super().get_config()
        config.update(schedule_decay=self.schedule_decay)
        return config
