"""Training photos: a folder of images, random square crops, a data order fixed by the seed.

The sample at global position ``p`` (step * world * batch + rank * batch + slot) is a
pure function of (seed, p): the epoch's permutation comes from (seed, epoch) and the
crop from (seed, p). A resumed run, or one on another machine, therefore sees exactly
the batches it would have seen without the interruption, with no sampler state to save.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nst.errors import NSTError
from nst.images import load_image, to_tensor

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted so every rank sees one list."""
    root = Path(folder)
    if not root.exists():
        raise NSTError(f"The data folder '{root}' does not exist. Pass --data FOLDER of photos.")
    if not root.is_dir():
        raise NSTError(f"--data '{root}' is a file, not a folder of photos.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise NSTError(f"The data folder '{root}' cannot be read (permission denied).")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise NSTError(
            f"The data folder '{root}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}). "
            "Point --data at a folder of photos, e.g. COCO 2014 train."
        )
    return files


def resize_short_side(img: Image.Image, side: int) -> Image.Image:
    """Scale so the shorter side is ``side`` px: every crop position is then valid."""
    w, h = img.size
    scale = side / min(w, h)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.BILINEAR)


def crop(
    img: Image.Image, side: int, rng: np.random.Generator | None, photo_size: int | None = None
) -> Image.Image:
    """A ``side`` x ``side`` crop: random with ``rng``, centred without.

    The photo is first scaled so its short side is ``photo_size`` (None: ``side``, the
    whole photo squashed into the crop, as in Johnson et al.). A ``photo_size`` near the
    short side of the pictures the net will stylise shows it content at that scale."""
    img = resize_short_side(img, photo_size or side)
    w, h = img.size
    if rng is None:
        left, top = (w - side) // 2, (h - side) // 2
    else:
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    return img.crop((left, top, left + side, top + side))


class CropDataset(torch.utils.data.Dataset):
    """Indexed by global sample position; returns a (3, S, S) float tensor in [0, 1]."""

    def __init__(
        self, files: Sequence[Path], image_size: int, seed: int, photo_size: int | None = None
    ):
        self.files = list(files)
        self.image_size = image_size
        self.photo_size = photo_size
        self.seed = seed
        self._perm_epoch = -1
        self._perm = np.arange(0)
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def file_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.files))
        if epoch != self._perm_epoch:  # one permutation per epoch, cached
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.files))
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def __getitem__(self, position: int) -> torch.Tensor:
        index = self.file_index(position)
        rng = np.random.default_rng([self.seed, 1, position])
        # A bad file is skipped with a warning: the next file in name order stands in, so
        # the batch keeps its size and the data order stays a function of the position.
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            if i in self._bad:
                continue
            try:
                img = load_image(self.files[i])
            except NSTError as exc:
                self._bad.add(i)
                warnings.warn(f"skipping a training image: {exc}", stacklevel=2)
                continue
            return to_tensor(crop(img, self.image_size, rng, self.photo_size))[0]
        raise NSTError(f"None of the {len(self.files)} images in the data folder can be read.")


class StepBatches(torch.utils.data.Sampler):
    """Batches of global positions for steps ``start`` .. ``stop - 1`` of one rank."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int, world: int):
        self.start, self.stop = start, stop
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))


def make_loader(
    dataset: CropDataset,
    start: int,
    stop: int,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A loader yielding the (B, 3, S, S) batch of every step from ``start`` on."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatches(start, stop, batch_size, rank, world),
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def split_validation(files: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """(training files, validation files): hold ``count`` photos out when there are plenty."""
    if len(files) >= 4 * count:
        return files[count:], files[:count]
    return files, files[:count]


def load_validation(
    files: Sequence[Path], image_size: int, photo_size: int | None = None
) -> torch.Tensor:
    """Centre crops of the validation photos, (N, 3, S, S), at the training crops' scale;
    bad files skipped with a warning."""
    crops = []
    for path in files:
        try:
            crops.append(to_tensor(crop(load_image(path), image_size, None, photo_size))[0])
        except NSTError as exc:
            warnings.warn(f"skipping a validation image: {exc}", stacklevel=2)
    if not crops:
        raise NSTError("None of the validation photos can be read; pass --val-dir FOLDER.")
    return torch.stack(crops)
