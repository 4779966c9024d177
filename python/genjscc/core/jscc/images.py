"""Image files <-> tensors, and the quality metrics of JSCC evaluation (PSNR, MS-SSIM).

Images are float tensors ``[3, H, W]`` (or batches ``[B, 3, H, W]``) with values in [0, 1]:
8-bit RGB divided by 255. PSNR is ``10 log10(1 / MSE)`` in dB over all three channels of the
8-bit-rounded reconstruction, so that every scheme is measured on the image a user would save.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genjscc.errors import GenjsccError

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "load_image",
    "ms_ssim",
    "psnr_db",
    "quantize_image",
    "sample_image_path",
    "sample_images",
    "save_image",
    "to_uint8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def sample_images() -> list[Path]:
    """The shipped sample photographs (BSDS500 test split, see data/images/SOURCES.md)."""
    from importlib import resources

    return list_images(Path(str(resources.files("genjscc").joinpath("data", "images"))))


def sample_image_path(name: str = "100007.jpg") -> str:
    """Path of one shipped sample photograph by file name."""
    for path in sample_images():
        if path.name == name:
            return str(path)
    names = ", ".join(p.name for p in sample_images())
    raise GenjsccError(f"no sample image {name!r}; shipped: {names}")


def list_images(folder: str | Path) -> list[Path]:
    """The image files (by suffix) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenjsccError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenjsccError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as float ``[3, H, W]`` in [0, 1] (converted to RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise GenjsccError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float in [0, 1] -> ``[H, W, 3]`` uint8 (rounded, clipped)."""
    arr = (image.detach().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """Write ``[3, H, W]`` float in [0, 1] as an 8-bit image file (format from the suffix)."""
    from PIL import Image

    Image.fromarray(to_uint8(image)).save(path)


def quantize_image(image: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid (what a saved reconstruction holds)."""
    return (image.clamp(0, 1) * 255.0).round() / 255.0


def psnr_db(reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of ``image`` against ``reference`` (peak 1), per image of a batch.

    Both ``[B, 3, H, W]`` (or ``[3, H, W]``) in [0, 1]; ``image`` is rounded to 8 bits first.
    Identical images give +inf.
    """
    ref = reference if reference.dim() == 4 else reference[None]
    img = image if image.dim() == 4 else image[None]
    if ref.shape != img.shape:
        raise ValueError(f"shapes differ: {tuple(ref.shape)} vs {tuple(img.shape)}")
    mse = ((quantize_image(img) - ref) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)


def ms_ssim(reference: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """MS-SSIM (pytorch-msssim: 5 scales, Gaussian window 11, data range 1) per image.

    ``image`` is rounded to 8 bits first. pytorch-msssim needs more than 160 pixels on the
    shorter side for its window of 11 over 5 scales; smaller images use the largest odd window
    that fits (``(win - 1) * 16 < side``), and images under 49 pixels single-scale SSIM.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim
    from pytorch_msssim import ssim as _ssim

    ref = reference if reference.dim() == 4 else reference[None]
    img = quantize_image(image if image.dim() == 4 else image[None])
    side = min(ref.shape[-2:])
    win = 11
    while win > 3 and (win - 1) * 16 >= side:
        win -= 2
    if (win - 1) * 16 < side:
        return _ms_ssim(ref, img, data_range=1.0, size_average=False, win_size=win)
    win = max(3, min(11, side - (1 - side % 2)))
    return _ssim(ref, img, data_range=1.0, size_average=False, win_size=win)


def read_image_file(name: str) -> np.ndarray:
    """Bytes (uint8) of an image file; a bare name that is not a file is looked up among the
    shipped sample photographs.

    Raises:
        OSError: the file cannot be read.
    """
    import os

    path = name
    if not os.path.isfile(path) and os.sep not in name:
        matches = [p for p in sample_images() if p.name == name]
        path = str(matches[0]) if matches else name
    return np.fromfile(path, dtype=np.uint8)


def decode_image_file(data: bytes, max_pixels: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB pixels of the bytes of an image file (PNG, JPEG, ...).

    Raises:
        ValueError: not a readable image, more than ``max_pixels`` pixels, or fewer than 8
            pixels per side.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise ValueError(f"image {img.width}x{img.height} is too large")
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"not a readable image file: {err}") from None
    if min(arr.shape[:2]) < 8:
        raise ValueError("images need at least 8 pixels per side")
    return arr
