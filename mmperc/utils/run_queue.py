"""Run command lines a few at a time, in dependency order, their output prefixed and streamed."""
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence


@dataclass
class Job:
    """One command line of :func:`run_jobs`.

    Args:
        name (str): Unique name, printed before every output line.
        cmd (list[str]): The command.
        after (list[str]): Names of jobs that must finish first.
        env (dict, optional): Environment variables added to this process's.
    """
    name: str
    cmd: List[str]
    after: List[str] = field(default_factory=list)
    env: Optional[Dict[str, str]] = None


def threads_per_job(jobs: int, cpus: Optional[int] = None) -> int:
    """Intra-op threads for each of ``jobs`` concurrent jobs on ``cpus`` cores."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))


def run_jobs(jobs: Sequence[Job], parallel: int = 1, stream=None) -> Dict[str, float]:
    """Run ``jobs``, at most ``parallel`` at once, each once its ``after`` jobs have finished.

    Jobs start in the given order as soon as a slot is free and they are ready. Every output
    line is written to ``stream`` (stdout by default) as ``[name] line``.

    Returns:
        dict[str, float]: Seconds each job took.

    Raises:
        ValueError: Duplicate names or an unknown / circular dependency.
        subprocess.CalledProcessError: A job failed (the running ones are waited for, none
            is started after it).
        OSError: A job could not be started (e.g. its command does not exist); likewise.
    """
    stream = stream or sys.stdout
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f'job names must be unique, got {names}')
    for job in jobs:
        unknown = set(job.after) - set(names)
        if unknown:
            raise ValueError(f'job {job.name!r} waits for unknown jobs {sorted(unknown)}')
    lock = threading.Condition(threading.RLock())
    pending, running, done = list(jobs), set(), {}
    failed: List[Exception] = []

    def echo(line: str) -> None:
        with lock:
            stream.write(line)
            stream.flush()

    def work() -> None:
        while True:
            with lock:
                while True:
                    if failed or not pending:
                        return
                    ready = [j for j in pending if all(a in done for a in j.after)]
                    if ready:
                        job = ready[0]
                        pending.remove(job)
                        running.add(job.name)
                        break
                    if not running:  # nothing can ever become ready
                        failed.append(ValueError(f'circular dependencies among {[j.name for j in pending]}'))
                        lock.notify_all()
                        return
                    lock.wait()
            start = time.time()
            try:  # whatever fails here fails the run: a job never started must not count as done
                code = run_one(job)
                error = subprocess.CalledProcessError(code, job.cmd) if code else None
            except Exception as err:  # noqa: BLE001 - re-raised by run_jobs
                error = err
            with lock:
                running.discard(job.name)
                if error is not None:
                    failed.append(error)
                else:
                    done[job.name] = time.time() - start
                    echo(f'[{job.name}] finished in {done[job.name]:.0f} s\n')  # the lock is reentrant
                lock.notify_all()

    def run_one(job: Job) -> int:
        """Run ``job`` with its output streamed; its exit status."""
        echo(f'[{job.name}] $ {" ".join(job.cmd)}\n')
        env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(job.env or {})}  # lines as they come
        proc = subprocess.Popen(job.cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors='replace', bufsize=1)
        for line in proc.stdout:
            echo(f'[{job.name}] {line}')
        return proc.wait()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, parallel))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failed:
        raise failed[0]
    return done
