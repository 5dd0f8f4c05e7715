"""Input images: the bytes sent are the bytes planned, whatever upload limit they were fitted under."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

from generator.images import digest_bytes, load_bytes, read_input_image


def test_a_photo_fitted_under_a_smaller_limit_is_sent_as_planned(tmp_path: Path) -> None:
    # Gemini campaigns fit photos under 7 MB, Imagen under 10 MB: reading the file again to send it must fit it
    # under the same limit, or the digest differs and the run fails with "changed after the campaign was planned".
    noise = random.Random(7).randbytes(200 * 200 * 3)
    path = tmp_path / "photo.png"
    Image.frombytes("RGB", (200, 200), noise).save(path)
    limit = path.stat().st_size // 2
    image = read_input_image(path, "photo.png", limit)
    assert image.fitted is not None
    assert image.upload_limit == limit
    sent = load_bytes(image)
    assert digest_bytes(sent) == image.digest
    assert len(sent) <= limit
