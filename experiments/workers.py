"""Train an experiment's independent models in parallel processes, each on its own share of the cores.

One TensorFlow process on a small model keeps about 1.5 of 2 cores busy (its steps are short,
and the per-epoch callbacks run on one thread).  Two processes, each pinned to one core with a
one-thread budget (TensorFlow, tf.data and OpenCV read the process's CPU affinity), keep both
busy and waste nothing on synchronising threads.  The models are independent, so the results
are the same as one after the other: each run folder is written by its own process, and the
model cache in ``<runs>/models`` is keyed by settings as before.

No TensorFlow at import: a worker pins itself before TensorFlow starts its thread pools.

A worker dies with its parent, ``kill -9`` included (:func:`die_with_parent`): on Linux the kernel
sends it SIGKILL when the parent ends (``prctl(PR_SET_PDEATHSIG)``); everywhere a thread polls the
parent's pid once a second as well.  So no orphan keeps training queued runs, and with its last
user gone multiprocessing's resource tracker ends too.
"""

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 1.0


def usable_cores():
    """``mindgap.cores.usable_cores`` (its rule, restated): importing any ``mindgap`` module starts TensorFlow, which
    must wait until a worker has pinned itself to its cores.  ``tests/test_workers.py`` checks that both agree."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def add_workers_argument(parser, what="models trained at once"):
    """``--workers``: default one process per core, one in ``--extra-small`` mode (its models train in less time
    than a worker takes to import TensorFlow).  Read it back with :func:`worker_count`."""
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{what}, each in its own process on its share of the cores "
                             "(default: one per core; --extra-small: 1)")
    return parser


def worker_count(args):
    """The ``--workers`` of :func:`add_workers_argument` with its default resolved."""
    if args.workers is not None:
        return args.workers
    if getattr(args, "extra_small", False):
        return 1
    return usable_cores()


class _Prefixed:
    """A text stream that starts every line with ``prefix`` (two models' epoch lines stay readable)."""

    def __init__(self, stream, prefix):
        self.stream, self.prefix, self._line_start = stream, prefix, True

    def write(self, text):
        for piece in text.splitlines(keepends=True):
            if self._line_start:
                self.stream.write(self.prefix)
            self.stream.write(piece)
            self._line_start = piece.endswith("\n")
        return len(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return False  # one summary line per epoch, never a live bar


def core_shares(workers, cores=None):
    """``workers`` disjoint sets of the usable cores, as even as possible (at least one core each)."""
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    workers = max(1, min(workers, len(cores)))
    return [set(cores[index::workers]) for index in range(workers)]


def die_with_parent(parent_pid, poll_seconds=PARENT_POLL_SECONDS):
    """End this process as soon as ``parent_pid`` is gone: the kernel's parent-death signal where there is one
    (Linux), and a daemon thread that polls the parent's pid in any case (the portable fallback, and the cover
    for a parent that died before the signal was armed)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)  # reparented: the parent is gone (os._exit: nothing of its state is worth saving)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(shares, parent_pid=None):
    """Initializer: die with the parent, take one share of the cores, leave Ctrl-C to the parent, quiet TensorFlow."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    share = shares.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, share)
    threads = str(len(share))
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = threads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _train_and_evaluate(mode, model_name, seed, split):
    """In a worker (through ``_call_pinned``): train (or reuse) one model and write its evaluation report;
    returns its run folder."""
    from experiments import common

    label = model_name if seed is None else f"{model_name} seed {seed}"
    sys.stdout = _Prefixed(sys.__stdout__, f"[{label}] ")
    try:
        _, run_dir, _ = common.evaluated(mode, model_name, common.prepare_data(mode), split=split, seed=seed)
    finally:
        sys.stdout.flush()
        sys.stdout = sys.__stdout__
    return run_dir


def train_in_parallel(mode, jobs, workers, split="test", print_fn=print):
    """Train and evaluate ``jobs`` (``[(model name, seed or None)]``) in ``workers`` processes.

    Already trained and evaluated models are skipped by each run's own cache.  Jobs are handed
    out in the given order (put the slowest first).  With one worker (or one job) nothing is
    started: the caller trains in its own process.  Ctrl-C stops every worker; their run folders
    resume with the same command.
    """
    if workers <= 1 or len(jobs) <= 1:
        return
    map_in_parallel(_train_and_evaluate, [(mode, name, seed, split) for name, seed in jobs], workers, print_fn,
                    describe=lambda processes: f"training {len(jobs)} models in {processes} processes")


def _call_pinned(function, arguments):
    """In a worker: the TensorFlow thread budget of its share of the cores, then ``function(*arguments)``."""
    import tensorflow as tf

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1  # its share; unpinned: 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already started in this worker (its second job): same budget
        pass
    return function(*arguments)


def map_in_parallel(function, jobs, workers, print_fn=print, describe=None):
    """``[function(*job) for job in jobs]`` in ``workers`` processes, each pinned to its share of the cores.

    ``function`` must be importable (a module-level function).  With one worker
    (or one job) everything runs in this process.  Results come back in job order;
    a worker's error ends the whole map with its message as soon as it happens; Ctrl-C
    stops every worker.  ``describe(processes)`` words the first line (default: "running N jobs ...").
    """
    import concurrent.futures
    import multiprocessing

    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [function(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    shares_list = core_shares(min(workers, len(jobs)))
    shares = context.Queue()
    for share in shares_list:
        shares.put(share)
    what = describe(len(shares_list)) if describe else f"running {len(jobs)} jobs in {len(shares_list)} processes"
    print_fn(f"{what}, cores "
             + ", ".join("+".join(map(str, sorted(share))) for share in shares_list), flush=True)
    executor = concurrent.futures.ProcessPoolExecutor(len(shares_list), mp_context=context,
                                                      initializer=_start_worker, initargs=(shares, os.getpid()))
    try:
        futures = [executor.submit(_call_pinned, function, job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            future.result()  # a worker's error (bad data, a full disk) ends the map at once, with its message
        results = [future.result() for future in futures]
    except BaseException:
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return results
