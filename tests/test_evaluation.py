import numpy as np

import mindgap
from mindgap.evaluation import cam_mass_on_class


def test_cam_mass_on_class_by_hand():
    cams = np.zeros((3, 2, 2, 3), np.float32)
    cams[0, :, :, 0] = 3.0    # class 0 mass 12
    cams[0, 0, 0, 1] = 4.0    # class 1 mass 4
    cams[0, 1, 1, 2] = -5.0   # negative evidence counts as none
    cams[1, 0, 0, 2] = 2.0    # all mass on class 2
    # image 2: no positive mass at all
    np.testing.assert_allclose(cam_mass_on_class(cams, [0, 2, 1]), [12 / 16, 1.0, 0.0])


def test_upsample_map_matches_upsample_cams():
    maps = np.random.default_rng(0).uniform(size=(2, 3, 4)).astype("float32")
    np.testing.assert_array_equal(mindgap.upsample_map(maps, (6, 8)), mindgap.upsample_cams(maps[..., None], (6, 8))[..., 0])
    np.testing.assert_array_equal(mindgap.upsample_map(maps[0], (6, 8)), mindgap.upsample_map(maps, (6, 8))[0])
