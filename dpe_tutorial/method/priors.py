"""The weights the DPE penalty regularises, read across the members, with their priors.

Which weight gets which prior is decided here and nowhere else:
:func:`regularised_weights` walks the members once and returns one
:class:`RegularisedWeight` per weight tensor: every conv and dense kernel,
against the He-by-fan-out prior N(0, 2 / fan_out), and (optionally) every
batch-norm scale and offset, against N(1, 0.01) and N(0, 0.01). Biases are
not regularised. Each item knows how to read its tensor as
``(members, *member_shape)`` in either layout of the ensemble:

- ``branches``: E member networks; the i-th weight of every member is
  stacked;
- ``grouped``: one network whose grouped kernels hold member e in the e-th
  block of output channels, whose batch-norm vectors are member-major, and
  whose :class:`~dpe_tutorial.method.models.MemberDense` kernels already lead with
  the member axis.

:func:`kl_penalty` sums the KL between the members' spread and the prior over
those weights: the penalty of the DPE objective, before beta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, ops

from . import kl, models


@dataclass(frozen=True)
class RegularisedWeight:
    """One weight tensor read across the members, with its prior."""

    name: str  # the variable's path (member 0's in the branches layout): the book lists them
    variables: tuple  # the Keras variables it is read from: one per member, or one grouped
    member_values: Callable[[], object]  # returns the (members, *shape) tensor, read now
    prior_var: float
    prior_mean: float


def regularised_weights(
    members: keras.Model | list[keras.Model], n_members: int, regularize_batchnorm: bool
) -> list[RegularisedWeight]:
    """The regularised weights of a list of member networks, or of one grouped network."""
    if isinstance(members, (list, tuple)):
        return _branch_weights(members, regularize_batchnorm)
    return _grouped_weights(members, n_members, regularize_batchnorm)


def kl_penalty(weights: list[RegularisedWeight], form: str):
    """The KL penalty of ``weights`` in ``form``, summed over every weight tensor (float32)."""
    total = ops.zeros((), dtype="float32")
    for weight in weights:
        total = total + kl.gaussian_kl(
            # float32 always: the spread of near-equal members is lost in bfloat16
            ops.cast(weight.member_values(), "float32"),
            weight.prior_var,
            weight.prior_mean,
            form=form,
            validate=False,  # runs every step; traced values cannot be checked anyway
        )
    return total


def _layer_priors(layer, regularize_batchnorm: bool):
    """(variable, prior mean) of each weight of ``layer`` that the penalty regularises."""
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.Dense)):
        yield layer.kernel, 0.0
    elif isinstance(layer, models.MemberDense):
        yield layer.kernel, 0.0
    elif isinstance(layer, layers.BatchNormalization) and regularize_batchnorm:
        if layer.gamma is not None:
            yield layer.gamma, 1.0
        if layer.beta is not None:
            yield layer.beta, 0.0


def _branch_weights(members: list, regularize_batchnorm: bool) -> list[RegularisedWeight]:
    per_member = [
        [
            item
            for layer in models.leaf_layers(member)
            for item in _layer_priors(layer, regularize_batchnorm)
        ]
        for member in members
    ]
    if len({len(items) for items in per_member}) != 1:
        raise ValueError("ensemble members must have the same architecture")
    weights = []
    for corresponding in zip(*per_member, strict=True):
        variables = tuple(variable for variable, _ in corresponding)
        shapes = {tuple(v.shape) for v in variables}
        if len(shapes) != 1:
            raise ValueError(f"members' corresponding weights differ in shape: {shapes}")
        variable, prior_mean = corresponding[0]
        weights.append(
            RegularisedWeight(
                name=variable.path,
                variables=variables,
                member_values=lambda vs=variables: ops.stack([v.value for v in vs], axis=0),
                prior_var=_prior_variance(tuple(variable.shape)),
                prior_mean=prior_mean,
            )
        )
    return weights


def _grouped_weights(body, n_members: int, regularize_batchnorm: bool) -> list[RegularisedWeight]:
    weights = []
    for layer in models.leaf_layers(body):
        for variable, prior_mean in _layer_priors(layer, regularize_batchnorm):
            shape = tuple(variable.shape)
            if isinstance(layer, models.MemberDense):  # (E, d, units): the member axis leads
                member_shape, to_members = shape[1:], None
            elif variable is getattr(layer, "kernel", None):
                # grouped kernel (..., in_per_member, E * out): member e owns the e-th block of out
                member_shape = (*shape[:-1], shape[-1] // n_members)
                to_members = _split_last_axis(n_members)
            else:  # batch-norm vector of E * channels, member-major
                member_shape = (shape[0] // n_members,)
                to_members = _split_last_axis(n_members)
            weights.append(
                RegularisedWeight(
                    name=variable.path,
                    variables=(variable,),
                    member_values=(
                        (lambda v=variable: v.value)
                        if to_members is None
                        else (lambda v=variable, f=to_members: f(v.value))
                    ),
                    prior_var=_prior_variance(member_shape),
                    prior_mean=prior_mean,
                )
            )
    return weights


def _split_last_axis(n_members: int):
    def split(values):
        shape = tuple(values.shape)
        blocks = ops.reshape(values, (*shape[:-1], n_members, shape[-1] // n_members))
        return ops.moveaxis(blocks, -2, 0)

    return split


def _prior_variance(member_shape: tuple) -> float:
    if len(member_shape) == 1:  # batch-norm scale or offset
        return models.BATCHNORM_PRIOR_VARIANCE
    return kl.he_prior_variance(member_shape)
