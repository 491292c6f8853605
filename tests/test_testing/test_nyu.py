"""mmperc.testing.make_nyu: NYU-format depth that mmseg's NYUDataset reads, room class included."""
import os

import pytest
from mmseg.datasets import NYUDataset

from mmperc.testing import make_nyu


def test_dataset_reads_the_room_class(tmp_path):
    data_root = make_nyu(str(tmp_path), num_train=2, num_val=1, size=(48, 64))
    for split, count in (('train', 2), ('test', 1)):
        dataset = NYUDataset(data_root=data_root, pipeline=[],
                             data_prefix=dict(img_path=f'images/{split}', depth_map_path=f'annotations/{split}'))
        assert len(dataset) == count
        assert {dataset.metainfo['classes'][dataset[i]['category_id']] for i in range(count)} == {'bedroom'}


def test_existing_root_is_reused_or_protected(tmp_path):
    data_root = make_nyu(str(tmp_path), 2, 1, size=(48, 64))
    assert make_nyu(str(tmp_path), 2, 1, size=(48, 64)) == data_root
    with pytest.raises(FileExistsError):  # fewer images into the same root: never mixed with the old ones
        make_nyu(str(tmp_path), 1, 1, size=(48, 64))
    os.makedirs(tmp_path / 'real' / 'nyu' / 'images' / 'train')  # e.g. the real NYU
    with pytest.raises(FileExistsError):
        make_nyu(str(tmp_path / 'real'))
