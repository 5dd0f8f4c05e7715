"""Hostile and broken input: every case exits 2 with its precise message, never a traceback, never a hang (each
command runs in a subprocess with a timeout), within bounded memory (RLIMIT_AS), and a template never reveals
anything from the environment.

The committed corpus (tests/data/invalid, messages snapshot-checked by tests/test_validate.py) runs here in one
bounded process, and file by file behind ``slow``; the cases that cannot be committed (links, pipes, devices,
big files, crafted images) are built at run time.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from reliability_support import Done, run_campaign

from tests.conftest import DATA

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots" / "test_validate"
CORPUS = sorted(p.name for p in (DATA / "invalid").glob("*.toml"))
#: Memory a validation may use: far above what the largest case needs (about 300 MB), far below a bomb's.
MEMORY = 1_500_000_000
TIMEOUT = 20.0
SECRET = "s3cr3t-do-not-print-7f1e"


def expected_stderr(name: str) -> str:
    transcript = (SNAPSHOTS / "test_invalid_campaign_reports_every_problem" / name / f"{name}.txt").read_text()
    return transcript.split("--- stderr\n", 1)[1].split("--- stdout\n", 1)[0]


def bounded(*args: str, cwd: Path, timeout: float = TIMEOUT) -> Done:
    done = run_campaign(*args, cwd=cwd, env={"CAMPAIGN_TEST_SECRET": SECRET}, timeout=timeout, memory=MEMORY)
    assert "Traceback" not in done.err, done.transcript()
    assert SECRET not in done.out + done.err
    return done


def test_the_whole_corpus_in_one_bounded_process(data_repo: Path) -> None:
    done = bounded("validate", *(f"invalid/{name}" for name in CORPUS), cwd=data_repo, timeout=60)
    assert done.code == 2
    assert done.err == "".join(expected_stderr(name) for name in CORPUS)
    assert done.out == ""


@pytest.mark.slow
@pytest.mark.parametrize("name", CORPUS)
def test_each_corpus_file_in_its_own_bounded_process(data_repo: Path, name: str) -> None:
    done = bounded("validate", f"invalid/{name}", cwd=data_repo)
    assert (done.code, done.err) == (2, expected_stderr(name))


@pytest.mark.parametrize("command", ["plan", "generate"])
def test_template_escapes_fail_cleanly_in_every_command(data_repo: Path, command: str) -> None:
    extra = ("--backend", "preview", "--no-report") if command == "generate" else ()
    done = bounded(command, "invalid/sandbox-escapes.toml", *extra, cwd=data_repo)
    assert done.code == 2
    assert done.err == expected_stderr("sandbox-escapes.toml")
    assert not (data_repo / "output").exists()


# -- built at run time --------------------------------------------------------------------------------------------


def campaign(folder: Path, body: str, name: str = "runtime.toml") -> str:
    (folder / name).write_text(f'[campaign]\nid = "runtime"\n{body}', encoding="utf-8")
    return name


def product(image: str, mask: str | None = None) -> str:
    return f'\n[[products]]\nid = "p"\nimages = ["{image}"]\n' + (f'mask = "{mask}"\n' if mask else "")


def test_a_campaign_file_over_5_mb(data_repo: Path) -> None:
    name = campaign(data_repo, '\n[[scenes]]\nid = "s"\nprompt = "' + "word " * 1_300_000 + '"\n')
    assert (data_repo / name).stat().st_size > 6 * 2**20
    done = bounded("validate", name, cwd=data_repo)
    assert (done.code, done.err) == (2, "runtime.toml: file is 6.2 MB; campaign files over 5 MB are refused\n")


def test_a_matrix_over_the_default_limit_is_refused_before_expansion(data_repo: Path) -> None:
    a = ", ".join(f'"a{i}"' for i in range(1_100))
    b = ", ".join(f'"b{i}"' for i in range(1_000))
    name = campaign(
        data_repo,
        f'\n[[jobs]]\nid = "all"\noperation = "generate"\nprompt = "{{{{ a }}}} {{{{ b }}}}"\n[jobs.matrix]\n'
        f"a = [{a}]\nb = [{b}]\n",
    )
    done = bounded("validate", name, cwd=data_repo)  # under the subprocess's memory limit: nothing is expanded
    assert (done.code, done.err) == (
        2,
        "runtime.toml:8: jobs[0].matrix: this matrix expands to 1,100,000 variants, over the limit of 1,000,000 "
        "([limits].max_variants); split the job or narrow its axes\n",
    )


def test_a_prompt_of_a_megabyte(data_repo: Path) -> None:
    name = campaign(data_repo, '\n[[scenes]]\nid = "s"\nprompt = "' + "word " * 200_000 + '"\n')
    done = bounded("validate", name, cwd=data_repo)
    assert (done.code, done.err) == (
        2,
        "runtime.toml:6: scenes[0].prompt: must be at most 20,000 characters, got 1,000,000\n",
    )


@pytest.mark.slow
def test_a_campaign_file_just_under_5_mb_validates_in_bounds(data_repo: Path) -> None:
    entries = "".join(
        f'\n[[products]]\nid = "p{i}"\ndescription = "product number {i}"\nimages = ["assets/shoe.png"]\n'
        for i in range(56_000)
    )
    name = campaign(data_repo, entries)
    assert 4.5 * 2**20 < (data_repo / name).stat().st_size < 5 * 2**20
    done = bounded("validate", name, cwd=data_repo, timeout=60)
    assert done.code == 0, done.transcript()


def test_a_symlink_loop(data_repo: Path) -> None:
    os.symlink("loop-b.png", data_repo / "assets" / "loop-a.png")
    os.symlink("loop-a.png", data_repo / "assets" / "loop-b.png")
    os.symlink("self.toml", data_repo / "self.toml")
    name = campaign(data_repo, 'include = ["self.toml"]\n' + product("assets/loop-a.png"))
    done = bounded("validate", name, cwd=data_repo)
    assert (done.code, done.err) == (
        2,
        "runtime.toml:3: campaign.include[0]: 'self.toml': cannot resolve the path (symlink loop?)\n"
        "runtime.toml:7: products[0].images[0]: 'assets/loop-a.png': cannot resolve the path (symlink loop?)\n",
    )


def test_an_include_through_a_symlink_out_of_the_repository(data_repo: Path, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path_factory.mktemp("outside") / "catalog.toml"
    outside.write_text('[[scenes]]\nid = "s"\nprompt = "stolen"\n')
    os.symlink(outside, data_repo / "catalog.toml")
    name = campaign(data_repo, 'include = ["catalog.toml"]\n')
    done = bounded("validate", name, cwd=data_repo)
    assert (done.code, done.err) == (
        2,
        "runtime.toml:3: campaign.include[0]: 'catalog.toml' resolves through a symlink outside the repository "
        "holding the campaign; keep campaign files and assets inside it\n",
    )


def test_a_named_pipe_as_campaign_and_as_include_does_not_block(data_repo: Path) -> None:
    os.mkfifo(data_repo / "pipe.toml")
    os.mkfifo(data_repo / "catalog.toml")
    name = campaign(data_repo, 'include = ["catalog.toml"]\n')
    done = bounded("validate", "pipe.toml", name, cwd=data_repo)
    assert (done.code, done.err) == (
        2,
        "pipe.toml: is not a regular file (device, pipe or socket); expected a TOML file\n"
        "runtime.toml:3: campaign.include[0]: 'catalog.toml': is not a regular file (device, pipe or socket); "
        "expected a TOML file\n",
    )


def test_a_device_on_the_command_line(data_repo: Path) -> None:
    done = bounded("validate", "/dev/zero", cwd=data_repo)
    assert (done.code, done.err) == (
        2,
        "/dev/zero: is not a regular file (device, pipe or socket); expected a TOML file\n",
    )


def crafted_images(folder: Path) -> None:
    """Images that are broken in ways a committed file would hide: built with Pillow, then damaged."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "A" * 50_000_000, zip=True)  # 48 KB on disk, 50 MB once inflated
    Image.new("RGB", (8, 8)).save(folder / "text-bomb.png", pnginfo=text)
    jpeg = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 0, 0)).save(jpeg, "JPEG")
    data = bytearray(jpeg.getvalue())
    at = data.find(b"\xff\xc0")  # start of frame: claim 60000 x 60000 pixels
    data[at + 5 : at + 9] = (60000).to_bytes(2, "big") * 2
    (folder / "claims-huge.jpg").write_bytes(bytes(data))
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[:200])
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(folder / "animated.png", save_all=True, append_images=frames[1:])
    Image.new("I;16", (96, 96)).save(folder / "mask-16-bit.png")
    Image.new("F", (8, 8)).save(folder / "float.tiff")


def test_crafted_broken_images(data_repo: Path) -> None:
    crafted_images(data_repo / "assets")
    body = "".join(
        f'\n[[products]]\nid = "p{i}"\nimages = ["{image}"]\n' + (f'mask = "{mask}"\n' if mask else "")
        for i, (image, mask) in enumerate(
            [
                ("assets/text-bomb.png", None),
                ("assets/claims-huge.jpg", None),
                ("assets/cut.jpg", None),
                ("assets/animated.png", None),
                ("assets/shoe.png", "assets/mask-16-bit.png"),
                ("assets/float.tiff", None),
            ]
        )
    )
    done = bounded("validate", campaign(data_repo, body), cwd=data_repo)
    assert done.code == 2
    assert done.err.splitlines() == [
        "runtime.toml:6: products[0].images[0]: assets/text-bomb.png: is a decompression bomb (its metadata expands "
        "far beyond its file size)",
        "runtime.toml:10: products[1].images[0]: assets/claims-huge.jpg: is a decompression bomb (far more pixels "
        "than its file size suggests)",
        "runtime.toml:14: products[2].images[0]: assets/cut.jpg: is truncated (the file ends before the image data "
        "does)",
        "runtime.toml:18: products[3].images[0]: assets/animated.png: is animated; use a still PNG, JPEG or WebP image",
        "runtime.toml:23: products[4].mask: assets/mask-16-bit.png: has pixel mode 'I;16' (16-bit or 32-bit integer "
        "pixels); save it as 8-bit RGB or RGBA (PNG) or RGB JPEG",
        "runtime.toml:27: products[5].images[0]: assets/float.tiff: is a TIFF image; use PNG, JPEG or WebP",
    ]


def test_axis_values_shaped_like_paths_stay_inside_the_output_folder(data_repo: Path) -> None:
    body = (
        '\n[[jobs]]\nid = "ads"\noperation = "generate"\nprompt = "a cube, {{ place }}"\n[jobs.matrix]\n'
        'place = ["../../../../escaped", "/tmp/absolute", "a/b/c", "..", ".hidden", "CON", "ok"]\n'
    )
    done = bounded("generate", campaign(data_repo, body), "--backend", "preview", "--no-report", "-q", cwd=data_repo)
    assert done.code == 0, done.transcript()
    root = data_repo.parent  # the repository (data_repo is a folder in it)
    made = sorted(p.relative_to(root).as_posix() for p in (root / "output").rglob("*.png"))
    assert not (root.parent / "escaped").exists()
    assert made == [
        f"output/runtime/images/ads/_/_/{name}-1.png"
        for name in ("a-b-c", "con", "escaped", "hidden", "ok", "tmp-absolute", "x")
    ]
