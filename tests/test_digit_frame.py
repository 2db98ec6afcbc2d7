"""USPS in MNIST's frame: scale the digit's box to 20x20, centre of mass at the centre of 28x28."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tfxfer.adaptation.digits import build_usps, mnist_frame


def _box(image: np.ndarray, threshold: int = 128) -> tuple[int, int]:
    ink = image >= threshold
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    w = image.astype(np.float64)
    return ((w.sum(1) * np.arange(w.shape[0])).sum() / w.sum(),
            (w.sum(0) * np.arange(w.shape[1])).sum() / w.sum())


@pytest.mark.parametrize("rows, cols, expected_box", [
    ((0, 16), (4, 12), (20, 10)),   # a tall digit filling the 16x16 frame, as USPS does
    ((5, 11), (2, 14), (10, 20)),   # a wide one: the longer side becomes 20, aspect kept
    ((3, 7), (6, 8), (20, 10)),     # a small one is scaled up, not only down
])
def test_digit_box_is_scaled_to_20_pixels_preserving_aspect(rows, cols, expected_box):
    digit = np.zeros((16, 16), np.uint8)
    digit[rows[0]:rows[1], cols[0]:cols[1]] = 255
    framed = mnist_frame(digit)
    assert framed.shape == (28, 28) and framed.dtype == np.uint8
    height, width = _box(framed)
    assert abs(height - expected_box[0]) <= 1 and abs(width - expected_box[1]) <= 1
    assert max(height, width) in (20, 21)  # bilinear edges may add a half-intensity pixel


def test_centre_of_mass_not_the_box_centre_lands_on_the_centre_pixel():
    # An "L": heavy at the bottom-left, so its centre of mass is off its box centre.
    digit = np.zeros((16, 16), np.uint8)
    digit[:, 3:7] = 255
    digit[12:, 3:13] = 255
    framed = mnist_frame(digit)
    cy, cx = _centre_of_mass(framed)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    ink_rows = np.flatnonzero((framed >= 128).any(1))
    ink_cols = np.flatnonzero((framed >= 128).any(0))
    box_centre = ((ink_rows[0] + ink_rows[-1]) / 2, (ink_cols[0] + ink_cols[-1]) / 2)
    assert box_centre[0] < 12.5 and box_centre[1] > 15  # the box is shifted, not centred


def test_a_lopsided_digit_keeps_its_whole_box_inside_the_field():
    digit = np.zeros((16, 16), np.uint8)
    digit[:, :4] = 255
    digit[12:, :] = 255  # centring this by mass alone would push the bar out on the right
    framed = mnist_frame(digit)
    # Clipped at the field's edge, the box would be narrower than 20.
    assert _box(framed) in {(20, 20), (20, 21), (21, 20), (21, 21)}


def test_faint_fringe_does_not_count_as_the_digit_box():
    digit = np.full((16, 16), 40, np.uint8)  # blur below half intensity everywhere
    digit[4:12, 4:12] = 255
    height, width = _box(mnist_frame(digit))
    assert height in (20, 21) and width in (20, 21)


def test_an_mnist_digit_already_in_its_frame_is_unchanged():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 9:19] = 200  # 20 tall, centre of mass at (13.5, 13.5) -> shifted by 0
    digit[4:24, 9:11] = 255
    digit[4:24, 17:19] = 255
    np.testing.assert_array_equal(mnist_frame(digit), digit)


def test_empty_and_wrongly_shaped_images():
    assert not mnist_frame(np.zeros((16, 16), np.uint8)).any()
    with pytest.raises(ValueError, match=r"\(2, 16, 16\)"):
        mnist_frame(np.zeros((2, 16, 16), np.uint8))


def test_build_usps_frames_digits_or_keeps_the_plain_16x16(tmp_path):
    x = np.zeros((8, 16, 16), np.uint8)
    x[:, :, 5:11] = 255  # fills the frame's height, as USPS digits do
    np.savez(tmp_path / "usps.npz", x=x, y=np.arange(8) % 2)
    framed = build_usps(tmp_path / "usps.npz", tmp_path / "framed")
    plain = build_usps(tmp_path / "usps.npz", tmp_path / "plain", frame="resize")
    for folders, shape in ((framed, (28, 28)), (plain, (16, 16))):
        paths = sorted(folders["target_train"].rglob("*.png"))
        paths += sorted(folders["target_test"].rglob("*.png"))
        assert len(paths) == 8
        assert {np.asarray(Image.open(p)).shape for p in paths} == {shape}
    one = np.asarray(Image.open(next(framed["target_test"].rglob("*.png"))))
    np.testing.assert_array_equal(one, mnist_frame(x[0]))
    with pytest.raises(ValueError, match="frame='square'"):
        build_usps(tmp_path / "usps.npz", tmp_path / "bad", frame="square")
