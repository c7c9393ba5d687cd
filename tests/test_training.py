import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import mindgap
from mindgap import metrics
from mindgap.data import make_dataset, read_stanford40, valid_boxes
from mindgap.data.digits import generate_digits_dataset
from mindgap.training import BackboneFreeze, LocalizationMetrics, TrainConfig, paper_learning_rate
from mindgap.training.loop import compiled_model

TINY_RUN = dict(image_size=32, batch_size=8, freeze_epochs=1, test_per_class=2, localization_images=10,
                snapshot_images=2, verbose=0)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return str(generate_digits_dataset(tmp_path_factory.mktemp("digits") / "d", train_per_class=3, test_per_class=4,
                                       canvas_size=32, digit_size=(12, 24)))


def test_paper_schedule():
    rates = [paper_learning_rate(epoch) for epoch in range(5)]
    np.testing.assert_allclose(rates, [0.002, 0.002, 0.00188, 0.00188, 0.0017672], rtol=1e-9)


def test_config_defaults_are_the_papers():
    config = TrainConfig()
    assert (config.learning_rate, config.beta_1, config.beta_2, config.epsilon) == (0.002, 0.9, 0.999, 1e-8)
    assert config.nadam_schedule_decay == 0.004
    assert (config.lr_decay_factor, config.lr_decay_every, config.freeze_epochs, config.epochs) == (0.94, 2, 10, 125)
    assert (config.image_size, config.alpha, config.reduction) == (299, 1e-7, "sum")
    with pytest.raises(ValueError, match="Unknown config field"):
        config.replace(learning_rte=0.1)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        config.replace(epochs=0)


def test_backbone_frozen_exactly_for_the_configured_epochs():
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    optimizer = mindgap.optimizers.Nadam2017(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    backbone = model.get_layer("backbone")
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append((backbone.get_weights()[0].copy(), model.get_layer("gap_maps").kernel.numpy().copy())))
    images = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype("float32")
    labels = np.eye(3)[np.arange(16) % 3]
    model.fit(images, labels, epochs=4, batch_size=8, verbose=0, callbacks=[BackboneFreeze(2), record])
    initial = snapshots[0][0]
    assert np.array_equal(snapshots[1][0], initial)              # epochs 0, 1 frozen
    assert not np.allclose(snapshots[2][0], initial)            # epoch 2 trains the backbone
    assert not np.allclose(snapshots[3][0], snapshots[2][0])
    assert not np.allclose(snapshots[1][1], snapshots[0][1])     # the head trained all along


def test_train_writes_everything_and_callbacks_agree(digits_dir, tmp_path):
    out = tmp_path / "run"
    result = mindgap.train("Tiny-GAP5-L1", digits_dir, out, epochs=2, **TINY_RUN)
    history = result.history
    for key in ("val_loc_gt", "val_loc_pred", "val_box_iou50"):
        assert len(history[key]) == 2 and all(0.0 <= value <= 1.0 for value in history[key])
    with open(out / "history.csv") as handle:
        header = next(csv.reader(handle))
    assert {"val_loc_gt", "val_loc_pred", "val_box_iou50", "val_loss", "learning_rate"} <= set(header)
    for epoch in (1, 2):
        png = out / "cam_snapshots" / f"epoch_{epoch:03d}.png"
        pixels = keras.utils.img_to_array(keras.utils.load_img(png))
        assert pixels.std() > 1.0
    assert any(name.startswith("events") for name in os.listdir(out / "logs" / "cam_snapshots"))
    assert json.loads((out / "config.json").read_text())["model_name"] == "Tiny-GAP5-L1"
    assert not [name for name in os.listdir(out) if ".tmp" in name]
    assert type(result.model.optimizer).__name__ == "Nadam2017"
    best = keras.saving.load_model(out / "best.keras", compile=False)
    assert mindgap.model_info(best).class_names == mindgap.data.DIGIT_CLASS_NAMES


def test_train_with_excitation_dropout_on_the_gap_zhou_features(digits_dir, tmp_path):
    from mindgap.dropout import GuidedDropoutModel

    out = tmp_path / "run"
    result = mindgap.train("Tiny-GAP-Zhou", digits_dir, out, epochs=2, zhou_units=8, dropout="excitation_prediction",
                           dropout_retain=0.5, **TINY_RUN)
    assert isinstance(result.model, GuidedDropoutModel) and result.model.dropout_layer.method == "excitation_prediction"
    assert all(np.isfinite(result.history["loss"])) and len(result.history["val_loc_gt"]) == 2
    best = mindgap.load_model(out / "best.keras")
    assert isinstance(best, GuidedDropoutModel) and best.dropout_layer.base_retain == 0.5
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    predicted = best.predict(images, verbose=0)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-5)
    if json.loads((out / "best.keras.json").read_text())["epoch"] == 2:  # the last epoch's weights: as in memory
        np.testing.assert_allclose(predicted, result.model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_localization_callback_equals_direct_computation(digits_dir):
    dataset = read_stanford40(digits_dir, test_per_class=2)
    model = mindgap.build_model("Tiny-GAP-Zhou", 10, input_shape=(32, 32, 3))
    boxed = make_dataset(dataset.val, num_classes=10, image_size=32, batch_size=8, with_boxes=True)
    callback = LocalizationMetrics.from_dataset(boxed, 20, threshold=0.3)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)

    probs, cams = mindgap.cam_model(model).predict(callback.images, verbose=0)
    predictions = probs.argmax(-1)
    big = mindgap.upsample_cams(cams, (32, 32))
    gt_hits, pred_hits, box_hits, grid_hits = [], [], [], []
    for index, label in enumerate(callback.labels):
        boxes = valid_boxes(callback.boxes[index])
        gt_hits.append(metrics.center_of_mass_hit(big[index, ..., label], boxes))
        pred_hits.append(metrics.center_of_mass_hit(big[index, ..., predictions[index]], boxes) and predictions[index] == label)
        box_hits.append(metrics.best_iou([metrics.cam_to_box(big[index, ..., label], 0.3)], boxes)[0] > 0.5)
        grid_hits.append([metrics.best_iou([metrics.cam_to_box(big[index, ..., label], threshold)], boxes)[0] > 0.5
                          for threshold in callback.thresholds])
    accuracy_per_threshold = np.mean(grid_hits, axis=0)
    best = int(np.argmax(accuracy_per_threshold))
    assert logs == pytest.approx({"val_loc_gt": np.mean(gt_hits), "val_loc_pred": np.mean(pred_hits), "val_box_iou50": np.mean(box_hits),
                                  "val_max_box_acc": accuracy_per_threshold[best],
                                  "val_max_box_acc_threshold": callback.thresholds[best]})
    assert callback.thresholds[0] == 0.05 and callback.thresholds[-1] == 0.95 and len(callback.thresholds) == 19


def _train_command(digits_dir, out, epochs):
    return [sys.executable, "-m", "mindgap", "train", "Tiny-GAP5", "--data-dir", digits_dir, "--out", str(out),
            "--epochs", str(epochs), "--image-size", "32", "--batch-size", "4", "--freeze-epochs", "1",
            "--test-per-class", "2", "--localization-images", "4", "--snapshot-images", "1", "--verbose", "0",
            "--no-tensorboard"]


def _epochs_logged(path):
    if not os.path.isfile(path):
        return []
    with open(path) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _ctrl_c_as_from_a_terminal():
    # A child inherits an ignored or blocked SIGINT from the test process (the suite's worker may have either);
    # the command under test should see Ctrl-C as a user's shell delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start_and_wait_for_epochs(command, history, epochs, **options):
    """The command started, once ``history`` logs ``epochs`` epochs (or it ended, or 300 s passed)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **options)
    deadline = time.time() + 300
    while len(_epochs_logged(history)) < epochs and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return process


@pytest.fixture(scope="module")
def interrupted_run(digits_dir, tmp_path_factory):
    """One run of 4 epochs, as a user may see it: Ctrl-C in epoch 1, the same command killed with -9 an epoch later, the
    same command again to the end.  The Ctrl-C and the kill -9 tests share it (three starts of TensorFlow, not four)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    history, command = out / "history.csv", _train_command(digits_dir, out, 4)
    process = _start_and_wait_for_epochs(command, history, 1, preexec_fn=_ctrl_c_as_from_a_terminal)
    assert process.poll() is None, "the run ended before it could be interrupted: " + process.stderr.read()[-1500:]
    process.send_signal(signal.SIGINT)
    _, ctrl_c_stderr = process.communicate(timeout=120)
    ctrl_c = dict(returncode=process.returncode, stderr=ctrl_c_stderr, logged=_epochs_logged(history))
    process = _start_and_wait_for_epochs(command, history, len(ctrl_c["logged"]) + 1)
    assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read()[-1500:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _epochs_logged(history)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return dict(out=out, ctrl_c=ctrl_c, killed_at=killed_at, finished=finished, history=_epochs_logged(history))


def test_resume_after_kill_9(interrupted_run):
    before = interrupted_run["ctrl_c"]["logged"]
    killed_at = interrupted_run["killed_at"]
    assert len(before) + 1 <= len(killed_at) < 4  # the resumed run logged an epoch, then died mid-run
    finished = interrupted_run["finished"]
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert interrupted_run["history"] == [0, 1, 2, 3]
    assert (interrupted_run["out"] / "done.json").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_multi_worker_training_on_loopback(digits_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
                           CUDA_VISIBLE_DEVICES="")
        command = _train_command(digits_dir, tmp_path / "run", 2)
        processes.append(subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["num_replicas"] == 2
    assert _epochs_logged(tmp_path / "run" / "history.csv") == [0, 1]
    # Every worker keeps the state of the same last epoch (so that the run can be extended), in its own folder.
    for folder in ("backup", "backup-worker1"):
        assert json.loads((tmp_path / "run" / folder / "training_metadata.json").read_text())["epoch"] == 2


def test_zero_images_turn_the_callbacks_off_and_options_reach_the_model(digits_dir, tmp_path):
    out = tmp_path / "run"
    settings = dict(TINY_RUN, localization_images=0, snapshot_images=0, zhou_units=7, jit_compile=True)
    result = mindgap.train("Tiny-GAP-Zhou", digits_dir, out, epochs=1, **settings)
    assert "val_loc_gt" not in result.history and not (out / "cam_snapshots").exists()
    assert result.model.get_layer("gap_maps").filters == 7
    assert result.model.jit_compile is True
    timing = json.loads((out / "timing.json").read_text())["1"]
    assert "LocalizationMetrics" not in timing and "CamSnapshots" not in timing


def test_mixed_bfloat16_keeps_float32_probabilities(digits_dir, tmp_path):
    result = mindgap.train("Tiny-GAP5-L1", digits_dir, tmp_path / "run", epochs=1, precision="mixed_bfloat16", **TINY_RUN)
    assert result.model.get_layer("gap_maps").compute_dtype == "bfloat16"
    assert result.model.get_layer("probabilities").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert np.isfinite(result.history["loss"]).all()


def test_a_run_that_fails_before_its_first_epoch_does_not_lock_its_settings(digits_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def broken(*args, **kwargs):
        raise ValueError("a setting that cannot run")

    monkeypatch.setattr(mindgap.training.callbacks.LocalizationMetrics, "from_dataset", broken)
    with pytest.raises(ValueError, match="cannot run"):
        mindgap.train("Tiny-GAP5", digits_dir, out, epochs=1, **TINY_RUN)
    assert not (out / "config.json").exists()
    monkeypatch.undo()
    result = mindgap.train("Tiny-GAP5", digits_dir, out, epochs=1, **dict(TINY_RUN, localization_images=0))
    assert result.history["loss"]


def test_phase_times_attribute_each_callback_its_own_time():
    class Sleeper(keras.callbacks.Callback):
        def __init__(self, seconds):
            super().__init__()
            self.seconds = seconds

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(self.seconds)

    timer = mindgap.training.PhaseTimes()
    callbacks = timer.interleave([Sleeper(0.0), Sleeper(0.3)])
    assert len(callbacks) == 5
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), validation_data=(np.zeros((4, 2)), np.zeros((4, 1))), epochs=2,
              verbose=0, callbacks=callbacks)
    for epoch in (1, 2):
        parts = timer.epochs[epoch]
        # Lower bounds and CPU only: a loaded machine can pause any part, but never shortens a sleep.
        assert parts["Sleeper#2"][0] >= 0.3 > parts["Sleeper"][1]
        assert parts["Sleeper#2"][1] < parts["Sleeper#2"][0] - 0.25  # sleeping costs no CPU
        accounted = parts["training_steps"][0] + parts["validation"][0] + parts["Sleeper"][0] + parts["Sleeper#2"][0]
        assert accounted <= parts["epoch"][0] + 1e-6
    totals = mindgap.training.PhaseTimes.totals({str(epoch): parts for epoch, parts in timer.epochs.items()})
    assert totals["Sleeper#2"][0] >= 0.6


def test_ctrl_c_says_one_line_and_the_same_command_resumes(interrupted_run):
    ctrl_c = interrupted_run["ctrl_c"]
    stderr = ctrl_c["stderr"]
    assert ctrl_c["returncode"] == 130, stderr[-2000:]
    assert 1 <= len(ctrl_c["logged"]) < 4
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and "interrupted in epoch" in lines[0] and "run the same command to resume" in lines[0], stderr[-2000:]
    finished = interrupted_run["finished"]
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert interrupted_run["history"] == [0, 1, 2, 3]


def test_a_lost_peer_worker_ends_the_other_with_one_line(digits_dir, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
                           CUDA_VISIBLE_DEVICES="")
        environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user launches it: mindgap's own default applies
        processes.append(subprocess.Popen(_train_command(digits_dir, tmp_path / "run", 50), env=environment,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    history = tmp_path / "run" / "history.csv"
    deadline = time.time() + 300
    while len(_epochs_logged(history)) < 1 and processes[0].poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert processes[0].poll() is None, processes[0].stderr.read()[-2000:]
    processes[1].kill()
    processes[1].wait()
    _, stderr = processes[0].communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("warning:", "WARNING"))]
    assert processes[0].returncode == 3, stderr[-3000:]
    assert len(lines) == 1 and "relaunch every worker with the same command" in lines[0], stderr[-3000:]


def test_fc_units_reach_the_cnn_lstm_and_are_validated():
    config = TrainConfig(image_size=16, fc_units=6, weights=None)
    model = compiled_model("Tiny-LSTM", 3, config)
    assert model.get_layer("fc1").units == 6 and model.get_layer("fc2").units == 6
    assert model.get_layer("fc1").kernel.shape[0] == 2 * 2 * 128  # the flattened 2x2x128 maps of a 16 px frame
    with pytest.raises(ValueError, match="fc_units must be an integer >= 1"):
        TrainConfig(fc_units=0).validate()


def test_a_compiled_model_traces_its_train_step_once_with_its_metrics_at_zero(monkeypatch):
    model = compiled_model("Tiny-GAP5", 3, TrainConfig(image_size=32, weights=None))
    assert [float(value) for metric in model.metrics for value in metric.variables] == [0.0, 0.0, 0.0, 0.0]
    traces, step = [], model.train_step
    monkeypatch.setattr(model, "train_step", lambda data: traces.append(1) or step(data))
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0, 1]]
    predicted = np.asarray(model(images, training=True)).argmax(axis=1)  # as fit sees them (batch statistics)
    model.optimizer.learning_rate.assign(0.0)  # the weights stay: the logged accuracy is the share of these predictions right
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert len(traces) == 1  # Keras alone builds the metrics inside the first trace, and TensorFlow traces again
    assert history.history["accuracy"][0] == pytest.approx(np.mean(predicted == labels.argmax(axis=1)))
