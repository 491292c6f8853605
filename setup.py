"""Install mmperc: ``pip install --no-build-isolation -e .`` (use tools/setup_env.sh on a CPU machine)."""
import os
import os.path as osp
import sysconfig
import warnings

from setuptools import find_packages, setup

try:  # the loss network's C++ Winograd transforms need torch at build time (--no-build-isolation)
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except Exception:  # not installed, or broken: mmperc installs without the extension
    BuildExtension = CppExtension = None

CSRC = osp.join('mmperc', 'models', 'losses', 'csrc')


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmperc', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def get_ext_modules() -> list:
    """The loss network's C++ kernels (CPU, OpenMP), when torch is importable:
    mmperc.models.losses._winograd_f4 and mmperc.models.losses._max_pool_relu."""
    if CppExtension is None:
        warnings.warn('torch is not importable while building mmperc: its C++ kernels are skipped (the '
                      'loss falls back to its slower PyTorch path). Install torch first, then '
                      '`pip install --no-build-isolation -e .`')
        return []
    return [
        CppExtension(
            f'mmperc.models.losses._{name}', [osp.join(CSRC, f'{name}.cpp')],
            depends=[osp.join(CSRC, header) for header in headers],
            include_dirs=[osp.abspath(CSRC)],
            optional=True,  # a failed build is skipped, not copied (see OptionalBuildExt)
            extra_compile_args=['-O3', '-fopenmp'],
            extra_link_args=['-fopenmp'])
        for name, headers in (('winograd_f4', ['winograd_f4_tiles.h', 'max_pool_window.h', 'simd_levels.h']),
                              ('max_pool_relu', ['max_pool_window.h', 'simd_levels.h']))
    ]


class OptionalBuildExt(BuildExtension if BuildExtension is not None else object):
    """Build the extension, or warn and go on: mmperc works without it, only slower on the CPU
    (``optional=True`` alone misses torch's ninja build, which raises ``RuntimeError``)."""

    def run(self) -> None:
        try:  # torch checks the compiler for all extensions first (no compiler: raises here)
            super().run()
        except Exception as e:
            for ext in self.extensions:
                self._skipped(ext, e)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # a compiler error, no OpenMP, ...: the pure PyTorch path stays
            self._skipped(ext, e)

    def _skipped(self, ext, error: Exception) -> None:
        """Warn, and remove an earlier build of ``ext`` (in build/ and in place), so that no binary
        of other sources is copied or imported: mmperc then runs without it."""
        in_place = osp.join(osp.dirname(osp.abspath(__file__)),
                            *ext.name.split('.')) + sysconfig.get_config_var('EXT_SUFFIX')
        for path in {self.get_ext_fullpath(ext.name), in_place}:
            if osp.exists(path):
                os.remove(path)
        warnings.warn(f'building {ext.name} failed ({error}); mmperc runs without this C++ kernel '
                      '(the loss is slower on the CPU)')


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
    ext_modules=get_ext_modules(),
    cmdclass={'build_ext': OptionalBuildExt} if BuildExtension is not None else {},
    zip_safe=False,
)
