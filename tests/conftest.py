"""Backend helpers for tests: gradients and compilation differ per Keras backend.

Model code stays backend-neutral; tests need the backend's own autodiff and
compiler to check that the code really is differentiable and traceable.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest


def backend_value_and_grad(fn, x: np.ndarray):
    """fn(x) and its gradient with respect to x, both as numpy, on the current backend."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        tx = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(tx)
        return np.asarray(value), np.asarray(tape.gradient(value, tx))
    if name == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(x)
        return np.asarray(value), np.asarray(grad)
    if name == "torch":
        import torch

        tx = torch.tensor(x, requires_grad=True)
        value = fn(tx)
        value.backward()
        return value.detach().numpy(), tx.grad.numpy()
    pytest.skip(f"backend {name} has no autodiff")


def backend_compiled(fn):
    """fn compiled the way Keras compiles a train step on the current backend."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if name == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"backend {name} has no tracing compiler used by Keras")


def backend_gradients(fn, variables) -> list[np.ndarray]:
    """Gradients of the scalar fn() with respect to Keras variables, on the current backend."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = fn()
        grads = tape.gradient(value, [v.value for v in variables])
        # TensorFlow gives None for a variable the value does not depend on
        return [
            np.zeros(v.shape) if g is None else np.asarray(g)
            for v, g in zip(variables, grads, strict=True)
        ]
    if name == "jax":
        import jax

        def stateless(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return fn()

        return [np.asarray(g) for g in jax.grad(stateless)([v.value for v in variables])]
    if name == "torch":
        for v in variables:
            v.value.grad = None  # torch accumulates gradients across calls
        value = fn()
        value.backward()
        return [
            np.zeros(v.shape) if v.value.grad is None else v.value.grad.numpy() for v in variables
        ]
    pytest.skip(f"backend {name} has no autodiff")
