"""Peak memory and time of normalising one big view, each case in a fresh process.

    .venv/bin/python -m benchmarks.image_memory [--size 512] [--code DIR]

For each case a child process imports the code, notes its resident-set high-water mark, then decodes
the image the way image-service's /imagine/from-paths does and normalises it to ``--size``² (the high
tier's 512 by default) with the flood-fill matte; it reports how far the resident-set high-water mark
(Linux VmHWM, reset after the imports) rose above the RSS before the work (peak RSS increase) and the
seconds taken. ``--code DIR`` runs the children against another checkout (e.g. a
``git worktree`` of an older commit): code without ``meshforge.images`` is measured the old way,
``Image.open`` + ``load`` at full size. Prints a Markdown table.

The pixel limit is raised for the 49-megapixel case so that its normalisation can be measured at all;
with the default limit (16 MP) such an image is refused from its header, which the last row measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BACKGROUND = (235, 235, 230)
OBJECT = (200, 40, 40)

# Runs in the child. Imports first, then the baseline, so only the image's own work is measured.
_CHILD = r"""
import json, sys, time
from pathlib import Path
from PIL import Image
import meshforge
from meshforge.geometry.normalise import normalise_views

path, size, max_pixels = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
try:
    from meshforge.geometry.normalise import working_side
    from meshforge.images import ImageLimits, ImageRejected, decode_image
    limits = ImageLimits(max_pixels=max_pixels)
    def load():
        return decode_image(path, path.name, limits, fit_side=working_side(size))
    rejected = ImageRejected
except ImportError:  # code from before meshforge.images: the old image-service _open
    def load():
        image = Image.open(path)
        image.load()
        return image
    rejected = ()

def status_mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)

# ru_maxrss survives exec on Linux (it would report the parent's peak), so use the process's own
# high-water mark VmHWM, reset to the current RSS once the imports are done.
Path("/proc/self/clear_refs").write_text("5")
baseline = status_mib("VmRSS")
def peak_mib():
    return status_mib("VmHWM")
started = time.perf_counter()
try:
    (view,) = normalise_views([load()], size)
    outcome = f"normalised to {view.shape[1]}x{view.shape[0]}"
except rejected as exc:
    outcome = "refused: " + exc.reason
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_increase_mib": peak_mib() - baseline,
    "outcome": outcome,
    "code": str(Path(meshforge.__file__).parent.parent),
}))
"""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_increase_mib: float
    outcome: str
    code: str


def measure(path: Path, size: int, max_pixels: int, code: Path = REPO) -> Measurement:
    """Decode + normalise ``path`` in a fresh interpreter running the checkout at ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    env = {k: v for k, v in env.items() if not k.startswith("MESHFORGE_")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(size), str(max_pixels)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-2000:]}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def object_photo(side: int) -> Image.Image:
    """A studio shot: plain background, a solid object over the middle half (compresses very well)."""
    image = Image.new("RGB", (side, side), BACKGROUND)
    image.paste(OBJECT, (side // 4, side // 3, 3 * side // 4, 3 * side // 4))
    return image


def noisy_photo(side: int, seed: int = 0) -> Image.Image:
    """Like ``object_photo`` with sensor-like noise, so a JPEG of it is a realistic size."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(object_photo(side)).astype(np.int16)
    pixels += rng.integers(-6, 7, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_cases(folder: Path) -> list[tuple[str, Path, int]]:
    """(label, file, pixel limit) of each case."""
    png, jpeg = folder / "7000x7000.png", folder / "4000x4000.jpg"
    object_photo(7000).save(png, optimize=True)
    noisy_photo(4000).save(jpeg, quality=90)
    return [
        (f"7000×7000 PNG ({png.stat().st_size // 1024} KB), limit raised to 64 MP", png, 64_000_000),
        (f"4000×4000 JPEG ({jpeg.stat().st_size // 1024} KB)", jpeg, 16_000_000),
        ("7000×7000 PNG, default 16 MP limit", png, 16_000_000),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="output side of the normalised view")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose code is measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases = write_cases(Path(folder))
        print(f"code: {args.code.resolve()}  output: {args.size}²\n")
        print("| case | peak RSS increase | time | outcome |")
        print("|---|---:|---:|---|")
        for label, path, max_pixels in cases:
            result = measure(path, args.size, max_pixels, args.code.resolve())
            print(
                f"| {label} | {result.peak_increase_mib:,.0f} MiB | {result.seconds:.2f} s "
                f"| {result.outcome} |"
            )


if __name__ == "__main__":
    main()
