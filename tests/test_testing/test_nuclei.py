"""The demo's real image: stardist's nuclei tiles in mmseg's generic layout, read by BaseSegDataset."""
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from conftest import ROOT
from mmperc.testing import NUCLEI_CLASSES, make_nuclei, nuclei_source
from mmperc.testing.nuclei import semantic_labels


def test_source_is_the_real_image_with_its_instances():
    image, instances, digest = nuclei_source()
    assert image.shape == instances.shape == (512, 512)
    assert len(np.unique(instances)) - 1 == 125  # nuclei in stardist's mask2d.tif
    assert len(digest) == 64


def test_touching_instances_are_split_by_background_seams():
    instances = np.zeros((6, 8), dtype=np.uint16)
    instances[1:5, 1:4], instances[1:5, 4:7] = 1, 2  # two nuclei sharing a vertical edge
    labels = semantic_labels(instances)
    assert labels[2, 3] == labels[2, 4] == 0  # both sides of the shared edge
    assert labels[2, 2] == labels[2, 5] == 1 and labels[0, 0] == 0
    single = np.zeros((5, 5), dtype=np.uint16)
    single[1:4, 1:4] = 7
    assert semantic_labels(single).sum() == 9  # a lone nucleus keeps its border


def test_tiles_split_without_overlap_and_load_in_base_seg_dataset(tmp_path):
    root = make_nuclei(str(tmp_path))
    assert make_nuclei(str(tmp_path)) == root  # cached: same parameters, nothing rewritten
    train = sorted(p.name for p in (tmp_path / 'nuclei' / 'img_dir' / 'train').iterdir())
    val = sorted(p.name for p in (tmp_path / 'nuclei' / 'img_dir' / 'val').iterdir())
    assert len(train) == 12 and len(val) == 4 and not set(train) & set(val)
    assert all(name.endswith('_c3.png') for name in val)  # the held-out right-most column
    image, instances, _ = nuclei_source()
    label = np.array(Image.open(tmp_path / 'nuclei' / 'ann_dir' / 'val' / 'dsb2018_r0_c3.png'))
    np.testing.assert_array_equal(label, semantic_labels(instances)[:128, 384:])
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'datasets' / 'nuclei_dsb2018-64x64.py'))
    for loader, count in ((cfg.train_dataloader, 12), (cfg.val_dataloader, 4)):
        loader.dataset.data_root = root
        dataset = DATASETS.build(loader.dataset)
        assert len(dataset) == count and dataset.metainfo['classes'] == NUCLEI_CLASSES
        sample = dataset[0]
        seg = sample['data_samples'].gt_sem_seg.data
        assert set(seg.unique().tolist()) <= {0, 1}
    assert tuple(sample['inputs'].shape) == (3, 128, 128)


def test_bad_tile_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match='must divide'):
        make_nuclei(str(tmp_path), tile=100)
