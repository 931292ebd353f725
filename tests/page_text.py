"""What a built page must not show: TensorFlow's log lines, Python warnings, object reprs, paths.

A notebook cell that logs through TensorFlow or ``absl``, or prints a path of
the machine that built the book, puts that text into the page; a reader sees
noise, or the builder's file system. :func:`noise` finds it in a page's text
and returns each hit with a little context, for a test to name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from os import PathLike

# (what it is, pattern); the patterns are specific enough not to match prose about them
NOISE = (
    (
        "TensorFlow log",
        r"WARNING:(?:tensorflow|absl)|\babsl\b|cpu_feature_guard|\bretracing\b"
        r"|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|This TensorFlow binary is optimized"
        r"|\btensorflow/(?:core|compiler|tsl|python)/"
        # glog's prefix, as TensorFlow's C++ code writes it: W0000 00:00:1712345678.1 42 a.cc:1]
        # or I1129 21:58:49.123456 42 a.cc:1]
        r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\]",
    ),
    ("Python warning", r"\b[A-Z]\w*Warning: "),
    # the repr of an object a cell returned by accident: <module.Class at 0x7f...>
    ("object repr", r"<[\w.]+(?: object)? at 0x[0-9a-f]+>"),
    (
        "build-machine path",
        # a path segment starting one of these folders; not the tail of a URL (github.com/home/)
        r"(?<![\w.~-])/(?:work|tmp|home|root|Users)/|\b(?:site|dist)-packages\b",
    ),
)


def noise(text: str, paths: Iterable[str | PathLike] = (), context: int = 50) -> list[str]:
    """Each place in ``text`` that shows log noise or a build-machine path, with its context.

    ``paths`` are absolute folders of this machine that must not show either
    (the repository, the build folder, the home folder); ``/`` is ignored.
    """
    patterns = [(kind, re.compile(pattern)) for kind, pattern in NOISE]
    own = sorted({str(p).rstrip("/") for p in paths} - {""}, key=len, reverse=True)
    if own:
        pattern = "|".join(re.escape(p) + r"(?![\w-])" for p in own)
        patterns.append(("build-machine path", re.compile(pattern)))
    hits: dict[int, str] = {}
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            if match.start() in hits:
                continue
            start, end = max(0, match.start() - context), match.end() + context
            snippet = " ".join(text[start:end].split())
            hits[match.start()] = f"{kind} {match.group(0)!r} in: …{snippet}…"
    return [hits[start] for start in sorted(hits)]
