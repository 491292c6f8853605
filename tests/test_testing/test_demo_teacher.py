"""mmperc.testing.demo_teacher: the checkpoint of the demo's cached teacher."""
import json

from mmperc.testing import TEACHER_KEY, demo_teacher


def test_demo_teacher_is_the_finished_schedule(tmp_path):
    teacher = tmp_path / 'teacher'
    teacher.mkdir()
    assert demo_teacher(tmp_path) is None
    for it in (50, 300):
        (teacher / f'iter_{it}.pth').write_bytes(b'')
    assert demo_teacher(tmp_path).endswith('iter_300.pth')  # by number: iter_50 sorts last as text
    (teacher / TEACHER_KEY).write_text(json.dumps({'max_iters': 50, 'seed': 0, 'data': 'x'}))
    assert demo_teacher(str(tmp_path)).endswith('iter_50.pth')  # the one the demo's key names
    (teacher / TEACHER_KEY).write_text(json.dumps({'max_iters': 200, 'seed': 0, 'data': 'x'}))
    assert demo_teacher(tmp_path).endswith('iter_300.pth')  # the named schedule never finished
