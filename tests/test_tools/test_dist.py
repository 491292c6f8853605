"""tools/dist_train.sh and tools/dist_test.sh: 2 gloo processes on the CPU; resume equivalence."""
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, SHRUNK_TEACHER, TEACHER_CFG, miou, quick_cfg, run_tool, scalars
from mmperc.testing import make_dataset

PERC = str(ROOT / 'configs/perc/pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769.py')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_script(*args, timeout=600) -> str:
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    result = subprocess.run(['bash', *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU/gloo path')
def test_two_process_gloo_train_then_test(tmp_path, teacher_ckpt):
    data_root = make_dataset('cityscapes', str(tmp_path / 'data'), num_train=4, num_val=2)
    cfg = quick_cfg(PERC, 'cityscapes', data_root, max_iters=2, batch_size=2)
    cfg.model.teacher = dict(config=TEACHER_CFG, checkpoint=teacher_ckpt, cfg_options=dict(SHRUNK_TEACHER))
    assert not cfg.get('find_unused_parameters', False)  # DDP must not need it for the teacher
    cfg.dump(str(tmp_path / 'perc.py'))
    out = run_script('tools/dist_train.sh', tmp_path / 'perc.py', 2, '--work-dir', tmp_path / 'work')
    assert 'distributed run on gloo over 2 CPU processes' in out
    assert re.search(r'teacher digest \w+ identical on 2 ranks', out), out[-3000:]
    assert re.search(r'loss network digest \w+ identical on 2 ranks', out)
    logged = [s for s in scalars(tmp_path / 'work') if 'decode.loss_perc' in s]
    assert [s['iter'] for s in logged] == [1, 2]
    validated = [s['mIoU'] for s in scalars(tmp_path / 'work') if 'mIoU' in s]
    ckpt = tmp_path / 'work' / 'iter_2.pth'
    assert not [k for k in torch.load(ckpt, weights_only=True)['state_dict'] if k.startswith('module.')]
    out = run_script('tools/dist_test.sh', tmp_path / 'perc.py', ckpt, 2, '--work-dir', tmp_path / 'test')
    # the checkpoint's score is the one logged in training: BN (for SyncBN) keeps the same running
    # statistics on both ranks (each rank used its own, and the checkpoint held rank 0's: 3.22 vs 3.39)
    assert 0 <= miou(out) <= 100 and validated and miou(out) == pytest.approx(validated[-1], abs=1e-6)


def test_resume_equivalence(tmp_path):
    """4 iterations straight == 2, stop, --resume, 2 more (final student weights).

    mmengine restores the iteration, optimizer, scheduler and data position,
    but not the global RNG states, so random augmentations and dropout would
    diverge after a resume: the run uses a fixed-size pipeline and no dropout.
    With that, both runs do the same arithmetic in the same order on the CPU,
    and the weights agree to 1e-6 (relative), a bound for reduction-order
    differences of multi-threaded kernels.
    """
    data_root = make_dataset('cityscapes', str(tmp_path / 'data'), num_train=4, num_val=1)
    cfg = quick_cfg(PERC, 'cityscapes', data_root, max_iters=4, val_interval=100, checkpoint_interval=2)
    cfg.model.teacher = None
    cfg.model.decode_head.dropout_ratio = 0.0
    cfg.model.auxiliary_head.dropout_ratio = 0.0
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='Resize', scale=(64, 32), keep_ratio=False), dict(type='PackSegInputs')]
    cfg.model.data_preprocessor.size = (32, 64)
    cfg.dump(str(tmp_path / 'cfg.py'))
    run_tool('tools/train.py', tmp_path / 'cfg.py', '--work-dir', tmp_path / 'straight')
    run_tool('tools/train.py', tmp_path / 'cfg.py', '--work-dir', tmp_path / 'resumed', '--cfg-options',
             'train_cfg.max_iters=2')
    run_tool('tools/train.py', tmp_path / 'cfg.py', '--work-dir', tmp_path / 'resumed', '--resume',
             tmp_path / 'resumed' / 'iter_2.pth')
    straight = torch.load(tmp_path / 'straight' / 'iter_4.pth', weights_only=True)
    resumed = torch.load(tmp_path / 'resumed' / 'iter_4.pth', weights_only=True)
    assert resumed['meta']['iter'] == 4
    for key, value in straight['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=1e-6, atol=1e-7, msg=key)
    lr = [g['lr'] for g in straight['optimizer']['param_groups']]
    assert lr == [g['lr'] for g in resumed['optimizer']['param_groups']]


@pytest.mark.parametrize('script,tool,args', [
    ('slurm_train.sh', 'train', ['cfg.py', '--work-dir', 'a dir']),
    ('slurm_test.sh', 'test', ['cfg.py', 'ckpt.pth', '--out', 'preds']),
])
def test_slurm_scripts_srun_the_tool(tmp_path, script, tool, args):
    """srun gets the partition, the GPU layout and the tool with its arguments (spaces kept) and
    ``--launcher slurm``; too few arguments are a usage error. A fake srun prints what it got."""
    srun = tmp_path / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "[%s]" "$@"\n')
    srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}', GPUS='16', GPUS_PER_NODE='8',
               SRUN_ARGS='--exclusive --time=1', PYTHON='py')
    result = subprocess.run(['bash', f'tools/{script}', 'part', 'job', *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        '[-p][part][--job-name=job][--gres=gpu:8][--ntasks=16][--ntasks-per-node=8][--cpus-per-task=5]'
        '[--kill-on-bad-exit=1][--exclusive][--time=1][py][-u]'
        f'[{ROOT}/tools/{tool}.py]' + ''.join(f'[{a}]' for a in args) + '[--launcher][slurm]')
    short = subprocess.run(['bash', f'tools/{script}', 'part', 'job', *args[:len(args) - 3]], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert short.returncode == 2 and 'usage' in short.stderr
