"""What a query reads and says before it trains: the pool's summary, unreadable and 16-bit
images, labels and held-out files, merging labels, fast errors and backend notices."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpe_tutorial.cli import main
from dpe_tutorial.labelling import contact_sheet, query_labels, query_pool
from dpe_tutorial.labelling.merge_labels import merge_labels
from dpe_tutorial.running import tracing
from dpe_tutorial.running.data import imagefolders


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPE_CACHE", str(tmp_path / "cache"))


def image(path: Path, value: int = 128, fmt: str | None = None, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (6, 5), value if mode != "RGB" else (value, 0, 0)).save(path, fmt)
    return path


def broken(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return path


@pytest.fixture
def messy(tmp_path):
    """A pool with every kind of file a real folder holds."""
    root = tmp_path / "pool"
    for name in ("a.png", "b.jpg", "sub/c.png"):
        image(root / name)
    for name, fmt in (("d.bmp", "BMP"), ("e.gif", "GIF"), ("f.tif", "TIFF"), ("g.webp", "WEBP")):
        image(root / name, fmt=fmt)
    Image.fromarray(np.full((5, 6), 40000, np.uint16)).save(root / "h16.png")  # 16-bit grey
    image(root / ".hidden.png")
    image(root / ".cache" / "x.png")  # a hidden folder: skipped with all it holds
    (root / "notes.txt").write_text("labels go elsewhere")
    (root / "photo.heic").write_bytes(b"not read")
    os.symlink(root / "a.png", root / "link-to-a.png")  # the same file twice
    outside = tmp_path / "elsewhere"
    image(outside / "o.png")
    os.symlink(outside, root / "linked")  # a linked folder is followed
    os.symlink(root / "sub", root / "sub-again")  # ... but its files are not counted twice
    os.symlink(root, root / "sub" / "loop")  # nor is a loop walked forever
    return root


def test_the_summary_says_what_was_read_and_what_was_skipped(messy):
    listing = query_pool.list_pool(messy)
    assert listing.paths == (
        "a.png", "b.jpg", "d.bmp", "e.gif", "f.tif", "g.webp", "h16.png", "linked/o.png",
        "sub/c.png",
    )  # fmt: skip
    pool = listing.read(8)
    assert pool.images.shape == (9, 8, 8, 3) and not pool.unreadable
    assert (pool.images[pool.index()["h16.png"]] == round(40000 / 257)).all()  # scaled, not clipped
    line = query_pool.summary_line(listing, pool, n_labelled=2)
    assert line == (
        f"pool {str(messy)!r}: 9 images found, 2 labelled, 7 unlabelled; skipped 2 hidden, "
        "2 non-image files (.txt 1, .heic 1), 3 duplicate paths"
    )
    # a label for a skipped file says why it is not in the pool
    assert "hidden files are skipped" in listing.why_left_out(".hidden.png")
    assert ".heic" in listing.why_left_out("photo.heic")
    assert listing.why_left_out("link-to-a.png") == "it is a second path to 'a.png'; name that one"


def test_unreadable_images_are_named_at_once_or_skipped_and_listed(messy):
    for name in ("bad1.png", "bad2.png", "sub/bad3.jpg", "z/bad4.png"):
        broken(messy / name)
    os.symlink(messy / "gone.png", messy / "dangling.png")
    with pytest.raises(ValueError) as error:
        query_pool.read_pool(messy, image_size=8)
    message = str(error.value)
    assert message.startswith(f"5 image(s) in pool {messy} cannot be read: cannot decode image")
    assert "bad1.png" in message and "bad2.png" in message and "dangling.png" in message
    assert message.count("cannot ") == 3 + 1 and "; and 2 more;" in message
    assert "--skip-unreadable" in message and "\n" not in message
    listing = query_pool.list_pool(messy)  # a label for a dangling link says so
    assert listing.why_left_out("dangling.png").startswith("cannot read image")
    pool = query_pool.read_pool(messy, image_size=8, skip_unreadable=True)
    assert [path for path, _ in pool.unreadable] == [
        "bad1.png", "bad2.png", "dangling.png", "sub/bad3.jpg", "z/bad4.png",
    ]  # fmt: skip
    assert len(pool.paths) == 9 and not set(pool.paths) & {p for p, _ in pool.unreadable}
    # from the cache, the same answer
    again = query_pool.read_pool(messy, image_size=8, skip_unreadable=True)
    assert again.unreadable == pool.unreadable and again.paths == pool.paths


def test_sixteen_bit_grey_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 257 * 100, 65535], [257, 32896, 65280]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == "I;16"
    pixels = imagefolders.decode_image(buffer.getvalue(), "grey16.png")
    np.testing.assert_array_equal(pixels, [[0, 100, 255], [1, 128, 254]])
    # an unsupported mode (32-bit float) is named with the supported ones
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.float32)).save(buffer, "TIFF")
    with pytest.raises(ValueError, match=r"mode 'F'; supported are 8-bit grey .* 16-bit grey"):
        imagefolders.decode_image(buffer.getvalue(), "float.tif")


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# --------------------------------------------------------------------------- merging labels


@pytest.fixture
def labelled(messy, tmp_path):
    labels = write(tmp_path / "labels.csv", "path,label\na.png,cat\nb.jpg,dog\n")
    return messy, labels


def test_merge_adds_filled_rows_and_counts_blank_and_known_ones(labelled, tmp_path, capsys):
    pool, labels = labelled
    suggestions = write(
        tmp_path / "suggestions.csv",
        """
        rank,path,score,predicted,probability,label
        1,sub/c.png,0.9,cat,0.5,cat
        2,d.bmp,0.8,cat,0.5,
        3,a.png,0.7,cat,0.5,cat
        4,linked/o.png,0.6,dog,0.5, dog
        """,
    )
    args = ["merge-labels", str(suggestions), str(labels), "--pool", str(pool)]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == (
        f"merged 2 label(s) from {suggestions} into {labels} (4 rows now); 1 row(s) left blank "
        "were skipped; 1 were there already"
    )
    assert (
        labels.read_text() == "path,label\na.png,cat\nb.jpg,dog\nsub/c.png,cat\nlinked/o.png,dog\n"
    )
    assert merge_labels(suggestions, labels, pool).added == 0  # merging twice adds nothing


def test_merge_keeps_the_files_line_endings_and_columns(labelled, tmp_path):
    pool, labels = labelled
    labels.write_bytes(b"\xef\xbb\xbfpath,label,notes\r\na.png,cat,fluffy")  # BOM, CRLF, no end
    suggestions = write(tmp_path / "s.csv", "path,label\nsub/c.png,cat\n")
    assert merge_labels(suggestions, labels, pool).total == 2
    assert (
        labels.read_bytes()
        == b"\xef\xbb\xbfpath,label,notes\r\na.png,cat,fluffy\r\nsub/c.png,cat,\r\n"
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "a.png,dog",
            "line 2: 'a.png' is labelled 'dog' here but 'cat' in labels file {labels} line 2",
        ),
        (
            "d.bmp,cat\nd.bmp,dog",
            "line 3: 'd.bmp' is labelled 'dog' here but 'cat' in this file line 2",
        ),
        (
            "missing.png,cat",
            "line 2: 'missing.png' is not an image in the pool (paths are relative",
        ),
        ("notes.txt,cat", "line 2: 'notes.txt' is not an image in the pool (its type (.txt)"),
        ("../outside.png,cat", "line 2: '../outside.png' is not an image in the pool"),
    ],
)
def test_merge_refuses_conflicts_and_unknown_paths_and_changes_nothing(
    rows, message, labelled, tmp_path, capsys
):
    pool, labels = labelled
    before = labels.read_bytes()
    suggestions = write(tmp_path / "suggestions.csv", f"path,label\n{rows}\n")
    assert main(["merge-labels", str(suggestions), str(labels), "--pool", str(pool)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dpe-tutorial: error: suggestions file {suggestions} ")
    assert message.format(labels=labels) in err and len(err.splitlines()) == 1
    assert labels.read_bytes() == before


def test_merge_finds_the_pool_in_the_query_folder_or_asks_for_it(labelled, tmp_path):
    pool, labels = labelled
    out = tmp_path / "next"
    out.mkdir()
    suggestions = write(out / "suggestions.csv", "path,label\nsub/c.png,cat\n")
    with pytest.raises(ValueError, match=r"not in a query's output folder .* with --pool"):
        merge_labels(suggestions, labels)
    (out / "config.json").write_text(f'{{"kind": "dpe-tutorial query", "pool": "{pool}"}}')
    assert merge_labels(suggestions, labels).added == 1


# --------------------------------------------------------------------------- held-out files


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("held/x.png,cat", "line 2: no image at"),
        ("held/h.png,bird", "line 2: label 'bird' of 'held/h.png' is not one of the classes"),
        ("pool/a.png,cat", "line 2: 'pool/a.png' lies inside the pool"),
        ("", "has no rows"),
        ("held/h.png,cat\nheld/h.png,cat", "labelled twice (lines 2 and 3)"),
    ],
)
def test_a_bad_held_out_file_is_named(rows, message, messy, tmp_path):
    image(tmp_path / "held" / "h.png")
    eval_csv = write(tmp_path / "eval.csv", f"path,label\n{rows}\n")
    with pytest.raises(ValueError, match="eval file") as error:
        query_labels.check_held_out(eval_csv, ("cat", "dog"), messy)
    assert message in str(error.value)


def test_held_out_images_are_read_as_the_pool_is(messy, tmp_path):
    image(tmp_path / "held" / "h.png", value=200)
    broken(tmp_path / "held" / "bad.png")
    eval_csv = write(tmp_path / "eval.csv", "path,label\nheld/h.png,dog\nheld/bad.png,cat\n")
    rows = query_labels.check_held_out(eval_csv, ("cat", "dog"), messy)
    with pytest.raises(ValueError, match=r"1 image\(s\) in eval file .* cannot be read"):
        query_labels.read_held_out(eval_csv, rows, ("cat", "dog"), 8, skip_unreadable=False)
    held = query_labels.read_held_out(eval_csv, rows, ("cat", "dog"), 8, skip_unreadable=True)
    assert held.paths == ("held/h.png",) and held.labels.tolist() == [1]
    assert held.images.shape == (1, 8, 8, 3) and held.images[0, 0, 0].tolist() == [200, 0, 0]


# --------------------------------------------------------------------------- before the backend


def test_input_errors_are_answered_before_a_backend_is_imported(messy, tmp_path):
    labels = write(tmp_path / "labels.csv", "path,label\na.png,cat\nb.jpg,dog\n")
    header = write(tmp_path / "header.csv", "file,class\na.png,cat\n")
    eval_csv = write(tmp_path / "eval.csv", "path,label\npool/a.png,cat\n")
    base = ["query", "--pool", str(messy), "--k", "2", "--out", str(tmp_path / "out")]
    cases = [
        (["--labels", str(header)], "must have the columns path,label"),
        (["--labels", str(labels), "--pool", str(tmp_path / "none")], "does not exist"),
        (["--labels", str(labels), "--preset", "nope"], "unknown preset 'nope'; choose one of"),
        (["--labels", str(tmp_path / "header.csv"), "--set", "colour=red"], "unknown config"),
        (["--labels", str(labels), "--eval", str(eval_csv)], "lies inside the pool"),
        (["--labels", str(labels), "--k", "99"], "k (99) is larger than the unlabelled pool"),
    ]
    code = f"""
import contextlib, io, sys
from dpe_tutorial.cli import main
for extra, message in {cases!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main({base!r} + extra) == 2, extra
    assert message in err.getvalue(), (message, err.getvalue())
    assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
loaded = [name for name in ("keras", "tensorflow", "jax", "torch") if name in sys.modules]
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_repeated_and_informational_backend_notices_are_filtered():
    notice = "port.cc:153] oneDNN custom operations are on."
    text = (
        f"{tracing.ABSL_PREAMBLE} to STDERR\n"
        f"I0000 00:00:1796593885.640631    3237 {notice}\n"
        "W0000 00:00:1796593885.7    3237 gpu.cc:9] no GPU found\n"
        "a line of our own\n"
        f"{tracing.ABSL_PREAMBLE} to STDERR\n"
        f"I0000 00:00:1796593888.612061    3237 {notice}\n"
    )
    kept = tracing.filter_notices(text, keep_info=True)
    assert kept.count("oneDNN") == 1 and kept.count(tracing.ABSL_PREAMBLE) == 1
    dropped = tracing.filter_notices(text, keep_info=False)
    assert dropped == "W0000 00:00:1796593885.7    3237 gpu.cc:9] no GPU found\na line of our own\n"


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="TensorFlow's notice"
)
@pytest.mark.parametrize(("keep", "most"), [(True, 1), (False, 0)])
def test_the_onednn_notice_shows_at_most_once_and_not_when_quiet(keep, most):
    code = (
        "from dpe_tutorial.running import tracing\n"
        f"tracing.keep_backend_notices({keep})\n"
        "tracing.import_keras()"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("oneDNN custom operations") <= most, done.stderr


# --------------------------------------------------------------------------- the contact sheet


def test_names_in_any_script_are_drawn_or_escaped_and_said_so(tmp_path):
    import pandas as pd

    assert contact_sheet.drawable("кот-γάτα.png") == ("кот-γάτα.png", False)  # DejaVu Sans has them
    covered = contact_sheet.installed_fonts()[1]
    cat = "猫.png"
    expected = (cat, False) if ord("猫") in covered else ("\\u732b.png", True)
    assert contact_sheet.drawable(cat) == expected
    table = pd.DataFrame(
        {
            "rank": [1, 2],
            "path": ["кот.png", "nested/" + cat],
            "score": [0.5, 0.4],
            "predicted": ["猫", "dog"],
            "probability": [0.6, 0.7],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of each glyph it cannot draw
        contact_sheet.save_contact_sheet(
            np.zeros((2, 8, 8, 3), np.uint8), table, tmp_path / "s.png", 2
        )
    assert (tmp_path / "s.png").stat().st_size > 0
