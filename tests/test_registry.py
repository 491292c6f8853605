"""custom_imports=['mmperc'] makes mmperc's modules buildable from mmseg's and mmdet's scopes."""
import subprocess
import sys
import textwrap


def test_build_from_mmseg_and_mmdet_scopes_via_custom_imports(tmp_path):
    """A fresh interpreter, so registration comes from the config's custom_imports alone."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)\n"
                   "loss = dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1), channels=(4, 4))\n")
    code = textwrap.dedent(f"""
        import sys
        assert 'mmperc' not in sys.modules
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        cfg = Config.fromfile({str(cfg)!r})
        import mmseg.registry, mmdet.registry
        out = []
        for scope, registry in (('mmseg', mmseg.registry.MODELS), ('mmdet', mmdet.registry.MODELS)):
            with DefaultScope.overwrite_default_scope(scope):
                out.append(type(registry.build(cfg.loss)).__name__)
                out.append(registry.get('PerceptualDistillSegmentor').__name__)
                # the configs' custom_hooks: safe checkpoints under mmseg's / mmdet's train script
                out.append(type(getattr(mmseg.registry if scope == 'mmseg' else mmdet.registry,
                                        'HOOKS').build(dict(type='SafeCheckpointHook'))).__name__)
        print(','.join(out))
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == ','.join(
        ['RandomPerceptualLoss', 'PerceptualDistillSegmentor', 'SafeCheckpointHook'] * 2)
