import io

from experiments import workers


def test_core_shares_split_the_cores_evenly():
    assert workers.core_shares(2, cores={0, 1}) == [{0}, {1}]
    assert workers.core_shares(2, cores={0, 1, 2, 3, 4}) == [{0, 2, 4}, {1, 3}]
    assert workers.core_shares(3, cores={5}) == [{5}]  # never more workers than cores
    assert workers.core_shares(0, cores={0, 1}) == [{0, 1}]


def test_prefixed_stream_marks_every_line_once():
    sink = io.StringIO()
    stream = workers._Prefixed(sink, "[m] ")
    stream.write("epoch 1")
    stream.write(" | loss 0.5\nepoch 2\n")
    stream.write("")
    assert sink.getvalue() == "[m] epoch 1 | loss 0.5\n[m] epoch 2\n"
    assert not stream.isatty()


def test_usable_cores_are_the_affinity_and_every_caller_reads_them(monkeypatch):
    import argparse
    import os

    from mindgap import cores, metrics

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 7}, raising=False)  # pinned to two of eight cores
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert cores.usable_cores() == 2
    assert workers.worker_count(argparse.Namespace(workers=None)) == 2
    assert workers.worker_count(argparse.Namespace(workers=None, extra_small=True)) == 1
    assert workers.worker_count(argparse.Namespace(workers=5)) == 5
    assert metrics._resolve_workers(None, 10) == 2 and metrics._resolve_workers(None, 1) == 1


def test_worker_count_starts_no_tensorflow():
    import subprocess
    import sys

    code = ("import argparse, sys; from experiments import workers; "
            "count = workers.worker_count(argparse.Namespace(workers=None)); print(count >= 1, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False"]
