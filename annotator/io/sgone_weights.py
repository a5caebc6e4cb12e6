"""SG-One's trained head on disk: safetensors with its width in the metadata; the shipped one lives in weights/."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from annotator.io.atomic import atomic_write_bytes
from annotator.io.weights import WEIGHTS_DIR, WeightsError
from annotator.modeling.sgone import SGOneHead

SHIPPED = "sgone_head.safetensors"


def default_checkpoint() -> Path:
    """The head this project trained and ships (see weights/sgone_head.txt for how)."""
    return WEIGHTS_DIR / SHIPPED


def save_head(head: SGOneHead, path: Path | str, extra: dict[str, str] | None = None) -> None:
    """Write the head's weights (atomically) with its width and any `extra` text metadata."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    atomic_write_bytes(path, save(state, {"hidden": str(head.hidden), **(extra or {})}))


def load_head(path: Path | str) -> SGOneHead:
    """An SGOneHead with the weights of a checkpoint written by `save_head` (or by `annotator train`)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no SG-One checkpoint there (train one with `annotator train`)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
        head = SGOneHead(int(meta["hidden"]))
        head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if not k.startswith("opt.")})
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as exc:
        raise WeightsError(f"{path}: not an SG-One checkpoint ({exc})") from None
    return head
