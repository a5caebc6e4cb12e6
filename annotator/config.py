"""Every default and every choice of the annotator, spelled once: the CLI's flags, the settings dialog, the
predictor and the project read them from here (QSettings only stores them)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class StrEnum(str, Enum):
    """An enum whose members are their own string values (stored as such in JSON, QSettings and flags)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class State(StrEnum):
    """The review state of one (image, class)."""

    UNLABELLED = "unlabelled"
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Theme(StrEnum):
    """The app's colours: as the system's colour scheme says (light when it says nothing), or one chosen."""

    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


class Model(StrEnum):
    """The few-shot networks (see annotator.build)."""

    PANET = "panet"
    SGONE = "sgone"


class Precision(StrEnum):
    """Backbone arithmetic: auto = bf16 (else fp16) on CUDA, int8 on an x86 CPU (the shipped VGG-16), else fp32;
    int8-openvino = the same int8 backbone run by OpenVINO (faster on CPUs without VNNI, masks a little further
    from fp32's)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    INT8_OPENVINO = "int8-openvino"


DEVICES = ("auto", "cpu", "cuda", "mps")  # the choices offered; the CLI also takes cuda:N
INPUT_SIZE = 417  # side every image is resized to for the network (a square; see InputSize)
MIN_INSTANCE_AREA = 16  # an instance export leaves out parts of fewer pixels (the dense CRF's specks)
MAX_PIXELS = 80_000_000  # larger images are skipped, by name (--max-pixels raises it)
PIXEL_LIMIT_ENV = "ANNOTATOR_MAX_PIXELS"  # where --max-pixels is put; worker processes inherit it
DEFAULT_BACKBONE = "vgg16_imagenet"  # weights/NAME.safetensors
PROJECT_INDEX = "project.json"
PROJECT_BACKUP = "project.json.bak"


InputSize = int | tuple[int, int]  # the network's input: a side (square), or (height, width) such as a video's aspect


def network_shape(size: InputSize) -> tuple[int, int]:
    """(height, width) of the network input of `size`."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def input_size_name(size: InputSize) -> str:
    """How tags and reports spell a size: "417" (square) or "417x737" (height x width)."""
    return str(size) if isinstance(size, int) else "x".join(map(str, network_shape(size)))


def parse_input_size(text: str) -> InputSize:
    """ "417" -> 417, "417x737" -> (417, 737) (height x width); ValueError otherwise (argparse's type)."""
    parts = text.lower().split("x")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r}: a side or HEIGHTxWIDTH, in pixels")
    sides = tuple(int(p) for p in parts)
    return sides[0] if len(sides) == 1 else sides


def out_of_range(ranges: dict[str, tuple[float, float]], value_of: Callable[[str], float | None]) -> str | None:
    """ "input-size 0: must be between 33 and 2048" for the first named value outside its range (None: not set),
    else None: the one range check of the CLI's options, the CRF's parameters and the stored settings."""
    for name, (lo, hi) in ranges.items():
        value = value_of(name)
        if value is not None and not lo <= value <= hi:
            return f"{name.replace('_', '-')} {value}: must be between {lo} and {hi}"
    return None
