import numpy as np

from mindgap import plots


def test_a_snapshot_grid_puts_each_panel_under_its_caption_at_the_panel_side():
    side = plots.SNAPSHOT_PANEL_SIDE
    red, green = np.zeros((8, 8, 3), np.uint8), np.zeros((300, 300, 3), np.uint8)
    red[..., 0], green[..., 1] = 255, 255
    grid = plots.snapshot_grid([[(red, "a caption far too long to fit the width of one panel at this size"),
                                 (green, "green")]], title="epoch 1")
    title, caption = 2 * plots._CAPTION_HEIGHT, plots._CAPTION_HEIGHT
    assert grid.shape == (title + caption + side + 4, 2 * (side + 4), 3)
    first = grid[title + caption:title + caption + side, 2:2 + side]
    second = grid[title + caption:title + caption + side, side + 6:2 * side + 6]
    assert (first == [255, 0, 0]).all() and (second == [0, 255, 0]).all()  # enlarged by nearest pixels, shrunk by area
    captions = grid[title:title + caption]
    assert (captions < 128).any(axis=-1).any() and (captions[:, :2] == 255).all()  # ink inside, the margin left white
    assert (grid[:title] < 128).any()  # the title is drawn


def test_plot_snapshot_rows_writes_the_grid_as_a_png(tmp_path):
    panel = np.full((16, 16, 3), 90, np.uint8)
    path = plots.plot_snapshot_rows([[(panel, "a"), (panel, "b"), (panel, "c")]] * 2, str(tmp_path / "epoch_001.png"))
    written = plots.cv2.imread(path)[..., ::-1]
    np.testing.assert_array_equal(written, plots.snapshot_grid([[(panel, "a"), (panel, "b"), (panel, "c")]] * 2))
