"""Install mmperc: ``pip install -e .`` (use tools/setup_env.sh on a CPU machine)."""
import os.path as osp

from setuptools import find_packages, setup


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmperc', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmperc',
    version=get_version(),
    description='Random perceptual loss (Liu et al., CVPR 2021) for OpenMMLab',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools', 'benchmarks')),
    python_requires='>=3.8',
    # Verified together on CPU (Python 3.11): torch 2.13.0 + mmcv 2.1.0 built from source.
    # GPU users install their CUDA torch and mmcv first (see README).
    install_requires=[
        # 2.6: serialization.get_unsafe_globals_in_checkpoint, add_safe_globals((obj, name)), the
        # weights_only default that mmperc's safe checkpoints answer
        'torch>=2.6',
        'mmcv==2.1.0',
        'mmengine==0.10.7',
        'mmsegmentation==1.2.2',
        'mmdet==3.3.0',
        'ftfy',
        'regex',
    ],
    # `pip install -e .[cpu]` pins the verified CPU torch; tools/setup_env.sh does the whole CPU set-up.
    extras_require={'cpu': ['torch==2.13.0'], 'tests': ['pytest'], 'demo': ['matplotlib']},
    zip_safe=False,
)
