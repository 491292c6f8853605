"""mmperc.testing.make_coco: COCO instances whose masks are what the image shows."""
import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmperc.testing import make_coco


def test_instances_do_not_overlap(tmp_path):
    data_root = make_coco(str(tmp_path), num_train=6, num_val=2, size=(64, 64))
    with open(os.path.join(data_root, 'annotations', 'instances_train2017.json')) as f:
        coco = json.load(f)
    for image in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        assert anns
        masks = [mask_utils.decode(mask_utils.frPyObjects(a['segmentation'], 64, 64)).any(-1) for a in anns]
        assert np.sum(masks, axis=0).max() == 1  # no pixel claimed by two instances


def test_existing_root_is_reused_or_protected(tmp_path):
    data_root = make_coco(str(tmp_path), 1, 1, size=(32, 32))
    assert make_coco(str(tmp_path), 1, 1, size=(32, 32)) == data_root  # same arguments: reused
    with pytest.raises(FileExistsError):
        make_coco(str(tmp_path), 2, 1, size=(32, 32))  # other arguments: never overwritten
    os.makedirs(tmp_path / 'real' / 'coco' / 'annotations')  # e.g. the real COCO
    with pytest.raises(FileExistsError):
        make_coco(str(tmp_path / 'real'))
    with pytest.raises(ValueError):
        make_coco(str(tmp_path / 'bad'), num_train=-1)
