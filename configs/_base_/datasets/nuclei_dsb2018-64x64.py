# Real fluorescence-microscopy nuclei (2018 Data Science Bowl image shipped by the stardist
# wheel), cut into 128x128 tiles by mmperc.testing.make_nuclei (tools/demo.py): 12 training
# tiles, 4 validation tiles from a held-out column. mmseg's generic img_dir/ann_dir layout,
# read by the stock BaseSegDataset. Labels: 0 background, 1 nucleus (touching nuclei split
# by background seams).
dataset_type = 'BaseSegDataset'
data_root = 'data/demo/nuclei'
crop_size = (64, 64)
metainfo = dict(classes=('background', 'nucleus'), palette=[[0, 0, 0], [255, 200, 0]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs')
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
dataset = dict(type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix='.png', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# mIoU plus a boundary F-score (2 px tolerance): the paper's claim is about structure.
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), dict(type='BoundaryFScore', tolerance=2)]
test_evaluator = val_evaluator
