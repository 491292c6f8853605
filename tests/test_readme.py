"""The README's config snippets are real configs: each one that inherits only packaged configs
loads and builds its model (nothing downloaded: building never loads weights)."""
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmperc  # noqa: F401
from conftest import ROOT
from mmperc.utils import sync_bn_to_bn

SNIPPETS = re.findall(r'```python\n(.*?)```', (ROOT / 'README.md').read_text(), flags=re.S)
CONFIGS = [s for s in SNIPPETS if s.startswith('_base_') and "'./" not in s]  # not the user's own files


def test_the_readme_has_its_config_snippets():
    assert len(CONFIGS) >= 3  # the loss in a decode head, distillation, CondInst


@pytest.mark.parametrize('snippet', CONFIGS, ids=lambda s: re.search(r"::(\w+)/", s).group(1))
def test_readme_config_snippet_builds(tmp_path, snippet):
    path = tmp_path / 'snippet.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmperc'], allow_failed_imports=False)
    assert dict(type='SafeCheckpointHook') in cfg.custom_hooks
    model = cfg.model
    sync_bn_to_bn(model)
    scope = 'mmdet' if 'mmdet::' in snippet else 'mmseg'
    import mmdet.registry
    import mmseg.registry
    registry = mmdet.registry.MODELS if scope == 'mmdet' else mmseg.registry.MODELS
    with DefaultScope.overwrite_default_scope(scope):
        built = registry.build(model)
    assert 'RandomPerceptualLoss' in {type(m).__name__ for m in built.modules()}
