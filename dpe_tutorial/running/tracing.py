"""Keep TensorFlow's noise out: its "frequent retracing" warning, and its import notices.

The active-learning loop trains a *fresh* ensemble every round, by design
(see chapter 2), and each fresh Keras model traces its own ``tf.function`` for
training and prediction, once per input shape (the pool shrinks every round).
TensorFlow's frequent-tracing detector counts traces per Python code object,
and every Keras model shares the code of ``TensorFlowTrainer.make_predict_function``,
so after a few rounds it logs ``WARNING:tensorflow:5 out of the last 64 calls
to <function TensorFlowTrainer.make_predict_function.<locals>...> triggered
tf.function retracing``. No function is retraced needlessly: each model's is
traced once per shape, as it must be. The warning therefore says nothing
about the code, and :func:`silence_retracing_warning` drops exactly that
record from the ``tensorflow`` logger; every other TensorFlow message still
shows. On the JAX and PyTorch backends nothing logs it and the filter is idle.

:func:`import_keras` imports Keras with TensorFlow's import-time notices (the
oneDNN notice, printed twice) shown once each, or not at all.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

RETRACING = "triggered tf.function retracing"


class _DropRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


def silence_retracing_warning() -> logging.Filter:
    """Drop TensorFlow's retracing warning (see the module's docstring); idempotent.

    Returns the filter installed on the ``tensorflow`` logger.
    """
    logger = logging.getLogger("tensorflow")
    for existing in logger.filters:
        if isinstance(existing, _DropRetracing):
            return existing
    dropper = _DropRetracing()
    logger.addFilter(dropper)
    return dropper


# --------------------------------------------------------------------------- import-time notices

# TensorFlow prints these from C++ while it is imported, before absl's logging is set up, so
# TF_CPP_MIN_LOG_LEVEL does not reach them, and two of its libraries print the oneDNN notice
# each: ``I0000 00:00:17.. 3237 port.cc:153] oneDNN custom operations are on...``.
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written"
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$")
_keep_notices: bool | None = None


def keep_backend_notices(keep: bool | None) -> None:
    """Whether :func:`import_keras` keeps TensorFlow's informational notices (once each).

    None (the default) follows ``TF_CPP_MIN_LOG_LEVEL``: kept where it is unset or 0.
    """
    global _keep_notices
    _keep_notices = keep


def import_keras():
    """``import keras``, with TensorFlow's import-time notices kept once each, or dropped.

    The backend's C++ code writes to file descriptor 2, below Python, so the
    descriptor is pointed at a temporary file during the import and what was
    written is passed on, filtered by :func:`filter_notices`. Warnings and
    errors always pass; informational lines pass only when kept (see
    :func:`keep_backend_notices`). A no-op when Keras is already imported.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    keep = _keep_notices
    if keep is None:
        keep = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: import as it is
        import keras

        return keras
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = filter_notices(captured.read().decode("utf-8", "replace"), keep)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
    return keras


def filter_notices(text: str, keep_info: bool) -> str:
    """``text`` without repeated absl log lines, and without informational ones unless kept."""
    seen, kept = set(), []
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        match = _ABSL_LINE.match(stripped)
        if stripped.startswith(ABSL_PREAMBLE):
            informational, message = True, stripped
        elif match:
            informational, message = match.group(1) == "I", match.group(2)
        else:
            kept.append(line)
            continue
        if (informational and not keep_info) or message in seen:
            continue
        seen.add(message)
        kept.append(line)
    return "".join(kept)
