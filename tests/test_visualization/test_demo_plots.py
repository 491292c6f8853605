"""mmperc.visualization.plot_predictions: one column per run that has a checkpoint anywhere."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mmperc.testing import make_cityscapes
from mmperc.visualization import plot_predictions


def test_a_run_missing_in_one_dataset_keeps_its_column_in_the_others(tmp_path, monkeypatch):
    import mmseg.apis
    data_root = make_cityscapes(str(tmp_path / 'data'), 1, 2, size=(32, 64))
    palette = [[i, i, i] for i in range(19)]
    monkeypatch.setattr(mmseg.apis, 'init_model',
                        lambda config, checkpoint, device: SimpleNamespace(dataset_meta=dict(palette=palette)))
    monkeypatch.setattr(mmseg.apis, 'inference_model', lambda model, img: SimpleNamespace(
        pred_sem_seg=SimpleNamespace(data=torch.zeros(1, 32, 64, dtype=torch.long))))
    panels = [('a', data_root, [('ce', 'cfg.py', 'ce.pth'), ('perc_gt', 'cfg.py', None)]),
              ('b', data_root, [('ce', 'cfg.py', None), ('perc_gt', 'cfg.py', 'gt.pth')])]
    out = str(tmp_path / 'predictions.png')
    plot_predictions(panels, out, num_images=1)
    width = np.asarray(Image.open(out)).shape[1]
    assert width == 300 * (2 + 2)  # image, ground truth, CE, CE+perc (GT): 3 inches at 100 dpi each
    with pytest.raises(ValueError, match='no run has a checkpoint'):
        plot_predictions([('a', data_root, [('ce', 'cfg.py', None)])], out, num_images=1)
