"""mmperc.utils.last_checkpoint / iter_checkpoints: a run's checkpoints under its work dir."""
from mmperc.utils import iter_checkpoints, last_checkpoint


def test_checkpoints_by_iteration_number_and_the_pointer_first(tmp_path):
    assert iter_checkpoints(tmp_path) == [] and last_checkpoint(tmp_path) is None
    for name in ('iter_50.pth', 'iter_300.pth', 'iter_1000.pth', 'iter_best.pth', 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'')
    assert [p.split('/')[-1] for p in iter_checkpoints(tmp_path)] == ['iter_50.pth', 'iter_300.pth', 'iter_1000.pth']
    assert last_checkpoint(str(tmp_path)).endswith('iter_1000.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_300.pth'))  # mmengine's pointer wins
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_300.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))  # a stale pointer does not
    assert last_checkpoint(tmp_path).endswith('iter_1000.pth')
