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
