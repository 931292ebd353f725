"""Progress bars (tqdm) for training: over trials and chunks, and over a round's epochs.

The epoch bar names its round and shows the latest loss and accuracy, with
tqdm's elapsed time and ETA; each finished round gets a line
(:func:`round_line`). Quiet runs show none of it. Lines written through
:func:`write` appear above the bars instead of breaking them.
"""

from __future__ import annotations

import keras


def bar(iterable, quiet: bool, description: str, unit: str):
    """``iterable`` behind a bar that disappears when done; ``iterable`` itself when quiet."""
    if quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, unit=unit, leave=False)


def write(message: str) -> None:
    """A line above the bars."""
    from tqdm.auto import tqdm

    tqdm.write(message)


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar over a round's epochs that shows the latest loss and accuracy.

    A resumed round's bar starts at the epochs already done. Close it when the round ends.
    """

    def __init__(self, epochs: int, done: int = 0, description: str = "epochs"):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, initial=done, desc=description, unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        shown = {
            k: f"{v:.3g}" for k, v in (logs or {}).items() if k in ("loss", "ensemble_accuracy")
        }
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def round_line(trial: int, rounds: int, row: dict) -> str:
    """One line for a finished round: its labels, accuracy, NLL and time."""
    return (
        f"trial {trial} round {row['round'] + 1}/{rounds}: {row['n_labeled']} labels, "
        f"ensemble accuracy {row['ensemble_accuracy']:.4f}, NLL {row['nll']:.4f}, "
        f"trained in {row['train_seconds']:.1f} s"
    )
