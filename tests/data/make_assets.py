"""Redraw the test images: `python tests/data/make_assets.py` (they are committed; small on purpose)."""

import io
from pathlib import Path

from PIL import Image

from generator import samples

HERE = Path(__file__).parent / "assets"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    shoe = samples.shoe(96)
    shoe.save(HERE / "shoe.png")
    samples.mask_of(shoe).save(HERE / "shoe-mask.png")
    samples.mask_of(samples.shoe(64)).save(HERE / "mask-64.png")  # the wrong size for shoe.png
    samples.on_backdrop(samples.bottle(96)).save(HERE / "bottle.jpg", quality=90)
    samples.mug(96).save(HERE / "mug.png")
    samples.watercolor_swatch(64).save(HERE / "style.png")
    (HERE / "not-an-image.png").write_bytes(b"this is text, not a PNG\n")
    buf = io.BytesIO()
    shoe.save(buf, format="PNG")
    (HERE / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    # 20000 x 20000 pixels (400 MP) in a few kilobytes: a decompression bomb.
    Image.new("1", (20000, 20000)).save(HERE / "bomb.png", optimize=True)
    Image.new("CMYK", (32, 32), (0, 128, 255, 0)).save(HERE / "cmyk.jpg")
    Image.new("I;16", (32, 32), 40000).save(HERE / "sixteen-bit.png")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(HERE / "green.gif")


if __name__ == "__main__":
    main()
