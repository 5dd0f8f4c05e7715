"""Redraw the example campaigns' product photos: `python campaigns/assets/make_assets.py`.

The photos are drawn with Pillow (generator.samples) so the examples need no downloads and carry no licence
questions. They are committed; rerun this only to change them (request keys change with their bytes).
"""

from pathlib import Path

from generator import samples

HERE = Path(__file__).parent


def main() -> None:
    shoes = {
        "trail-shoe": samples.shoe(640, upper=(38, 92, 170), accent=(244, 121, 32)),
        "city-sneaker": samples.shoe(640, upper=(236, 236, 232), accent=(30, 30, 34), sole=(60, 60, 64)),
    }
    for name, image in shoes.items():
        image.save(HERE / f"{name}.png", optimize=True)
        samples.mask_of(image).save(HERE / f"{name}-mask.png", optimize=True)
    # A product photographed on a plain backdrop (no transparency): the preview backend estimates its mask.
    samples.on_backdrop(samples.bottle(640)).save(HERE / "alpine-bottle.jpg", quality=90, optimize=True)
    samples.mug(640).save(HERE / "ember-mug.png", optimize=True)
    samples.mug(640, body=(52, 84, 140)).save(HERE / "ember-mug-blue.png", optimize=True)
    candle = samples.candle(640)
    candle.save(HERE / "cedar-candle.png", optimize=True)
    samples.mask_of(candle).save(HERE / "cedar-candle-mask.png", optimize=True)
    samples.watercolor_swatch(512).save(HERE / "style-watercolor.png", optimize=True)
    samples.scribble(512).save(HERE / "scribble-table.png", optimize=True)


if __name__ == "__main__":
    main()
