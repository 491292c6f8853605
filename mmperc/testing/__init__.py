"""Testing and demo helpers: tiny segmentation datasets (generated, or one real image) in mmseg's on-disk formats."""
from .config import (BASE_CONFIGS, DATASET_TYPES, base_config_path, dataset_cfg_overrides,
                     point_cfg_to, set_pipeline_sizes)
from .coco import make_coco
from .demo_teacher import TEACHER_KEY, demo_teacher
from .datasets import (KINDS, MARKER_FILE, make_ade20k, make_cityscapes, make_dataset, make_voc,
                       voc_palette)
from .nuclei import NUCLEI_CLASSES, make_nuclei, nuclei_source
from .nyu import make_nyu
from .runs import shrink_for_quick_run
from .scenes import TEXTURES, add_ignore_boundaries, class_appearance, make_scene

__all__ = [
    'BASE_CONFIGS', 'DATASET_TYPES', 'base_config_path', 'dataset_cfg_overrides', 'point_cfg_to',
    'set_pipeline_sizes', 'KINDS', 'MARKER_FILE', 'make_ade20k', 'make_cityscapes',
    'make_dataset', 'make_voc', 'voc_palette', 'TEXTURES', 'add_ignore_boundaries',
    'class_appearance', 'make_scene', 'shrink_for_quick_run', 'make_coco', 'make_nyu', 'NUCLEI_CLASSES',
    'make_nuclei', 'nuclei_source', 'TEACHER_KEY', 'demo_teacher'
]
