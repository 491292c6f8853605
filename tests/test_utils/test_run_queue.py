import io
import subprocess
import sys

import pytest

from mmperc.utils.run_queue import Job, run_jobs, threads_per_job


def _py(code: str):
    return [sys.executable, '-c', code]


def test_dependencies_order_and_prefixed_output(tmp_path):
    """A job waits for its ``after`` jobs; two run at once; every line carries its job's name."""
    log = tmp_path / 'order.txt'
    stamp = (f'import time,sys; f = open({str(log)!r}, "a"); f.write(sys.argv[1] + "+ "); f.flush(); '
             'time.sleep(%s); f.write(sys.argv[1] + "- "); print("hi", sys.argv[1])')
    jobs = [
        Job('slow', _py(stamp % 1.5) + ['slow']),
        Job('child', _py(stamp % 0) + ['child'], after=['slow']),
        Job('fast', _py(stamp % 0) + ['fast'], env={'MMPERC_TEST': '1'}),
    ]
    out = io.StringIO()
    seconds = run_jobs(jobs, parallel=2, stream=out)
    assert set(seconds) == {'slow', 'child', 'fast'} and seconds['slow'] >= 1.4
    events = log.read_text().split()
    assert events.index('fast-') < events.index('slow-')  # fast ran beside slow, not after it
    assert events.index('child+') > events.index('slow-')  # child waited for slow
    lines = out.getvalue().splitlines()
    assert '[slow] hi slow' in lines and '[child] hi child' in lines and '[fast] hi fast' in lines


def test_failure_raises_and_stops_later_jobs(tmp_path):
    jobs = [Job('bad', _py('import sys; sys.exit(3)')),
            Job('later', _py(f'open({str(tmp_path / "ran")!r}, "w")'), after=['bad'])]
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_jobs(jobs, parallel=2, stream=io.StringIO())
    assert err.value.returncode == 3 and not (tmp_path / 'ran').exists()


def test_job_that_cannot_start_fails_the_run_instead_of_hanging(tmp_path):
    """A missing command (or a failure while streaming) used to end only its worker thread: the
    job counted as neither done nor failed, and the job waiting for it hung the run forever."""
    jobs = [Job('missing', [str(tmp_path / 'no-such-command')]),
            Job('later', _py(f'open({str(tmp_path / "ran")!r}, "w")'), after=['missing'])]
    with pytest.raises(OSError):
        run_jobs(jobs, parallel=2, stream=io.StringIO())
    assert not (tmp_path / 'ran').exists()


def test_output_that_is_not_text_keeps_the_exit_status():
    """Bytes that are not UTF-8 are shown replaced; the job's own status still decides."""
    out = io.StringIO()
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_jobs([Job('bytes', _py('import sys; sys.stdout.buffer.write(bytes([255, 10])); sys.exit(3)'))],
                 stream=out)
    assert err.value.returncode == 3 and '[bytes] \ufffd' in out.getvalue()


@pytest.mark.parametrize('jobs, error', [
    ([Job('a', ['true']), Job('a', ['true'])], 'unique'),
    ([Job('a', ['true'], after=['b'])], 'unknown'),
    ([Job('a', ['true'], after=['b']), Job('b', ['true'], after=['a'])], 'circular'),
])
def test_bad_job_lists_raise(jobs, error):
    with pytest.raises(ValueError, match=error):
        run_jobs(jobs, parallel=2, stream=io.StringIO())


def test_threads_per_job():
    assert threads_per_job(2, cpus=2) == 1 and threads_per_job(2, cpus=16) == 8 and threads_per_job(4, cpus=2) == 1
