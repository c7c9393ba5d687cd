"""A flat view of a Keras functional graph, nested models expanded, to run it layer by layer.

A mindgap model holds its backbone as a nested ``keras.Model`` named ``"backbone"``; Grad-CAM at a backbone layer and
Excitation Backprop need the tensors inside it.  :func:`flat_graph` lists every layer call of the model in topological
order, with the nested model's inputs and outputs joined to the outer graph by ``alias`` steps, and :func:`run`
executes that list in inference mode, keeping every intermediate tensor.
"""

import dataclasses

import keras

from mindgap.engine.cache import per_model
from mindgap.layers import ClassProbabilities
from mindgap.regularizers import MapActivityPenalty

# Layers that return their input unchanged at inference.
IDENTITY_LAYERS = (MapActivityPenalty, keras.layers.Dropout, keras.layers.SpatialDropout2D,
                   keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.ActivityRegularization)


@dataclasses.dataclass
class Step:
    """One layer call: ``layer`` (None for an alias), input and output tensor keys, its node."""

    layer: object
    inputs: list
    outputs: list
    node: object = None
    name: str = ""


@dataclasses.dataclass
class FlatGraph:
    input_key: int
    output_key: int
    steps: list
    producer: dict  # tensor key -> index of the step that produces it
    consumers: dict  # tensor key -> indices of the steps that read it
    names: dict  # layer name -> output tensor key (nested models: their output)

    def key_of(self, name):
        """The output tensor key of the layer called ``name`` (any nesting level), or a ValueError."""
        if name not in self.names:
            raise ValueError(f"The model has no layer {name!r}; layers: {', '.join(self.names)}.")
        return self.names[name]

    def step_of(self, key):
        return self.steps[self.producer[key]]


def _is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")


def _expand(model, input_keys, steps, names):
    for inner, key in zip(model.inputs, input_keys):
        steps.append(Step(None, [key], [id(inner)], name=f"{model.name}:input"))
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            layer = node.operation
            inputs = [id(tensor) for tensor in node.input_tensors]
            outputs = [id(tensor) for tensor in node.outputs]
            if _is_functional(layer):
                inner_outputs = _expand(layer, inputs, steps, names)
                for inner, key in zip(inner_outputs, outputs):
                    steps.append(Step(None, [inner], [key], name=f"{layer.name}:output"))
                names.setdefault(layer.name, outputs[0])
            else:
                steps.append(Step(layer, inputs, outputs, node, layer.name))
                names.setdefault(layer.name, outputs[0])
    return [id(tensor) for tensor in model.outputs]


def flat_graph(model):
    """The :class:`FlatGraph` of a functional model (cached per model)."""
    if not _is_functional(model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"Model {getattr(model, 'name', model)!r} is not a functional keras.Model with one input and "
                         "one output; build it with mindgap.build_model or the Keras functional API.")
    return per_model(model, "flat graph", lambda: _flatten(model))


def _flatten(model):
    steps, names = [], {}
    (output_key,) = _expand(model, [id(model.inputs[0])], steps, names)
    producer, consumers = {}, {}
    for index, step in enumerate(steps):
        for key in step.outputs:
            producer[key] = index
        for key in step.inputs:
            consumers.setdefault(key, []).append(index)
    return FlatGraph(id(model.inputs[0]), output_key, steps, producer, consumers, names)


def logits_key(graph, model):
    """The tensor key of the class logits (the input of the ``ClassProbabilities`` layer), or a ValueError."""
    probabilities = next((step for step in graph.steps if isinstance(step.layer, ClassProbabilities)), None)
    if probabilities is None:
        raise ValueError(f"Model {getattr(model, 'name', model)!r} has no ClassProbabilities layer, so its class logits "
                         "cannot be found; build it with mindgap.build_model or mindgap.dropout.")
    return probabilities.inputs[0]


def call_step(step, values):
    """Outputs of one step given ``values`` (tensor key -> tensor), in inference mode."""
    if step.layer is None or isinstance(step.layer, IDENTITY_LAYERS):
        return [values[step.inputs[0]]]
    args, kwargs = step.node.arguments.fill_in(values)
    if getattr(step.layer, "_call_has_training_arg", False):
        kwargs["training"] = False
    outputs = step.layer(*args, **kwargs)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def run(graph, images, until=None, on_output=None):
    """Run the graph on ``images``; returns the dict tensor key -> value.

    ``until``: stop once this tensor key is computed.  ``on_output(key, value)`` is called on every new tensor (a
    ``GradientTape.watch`` hook) and may return a replacement value.
    """
    values = {graph.input_key: images}
    for step in graph.steps:
        for key, value in zip(step.outputs, call_step(step, values)):
            if on_output is not None:
                replacement = on_output(key, value)
                value = value if replacement is None else replacement
            values[key] = value
        if until is not None and until in values:
            break
    return values


def run_from(graph, key, value, until):
    """Run the steps after the producer of tensor ``key``, given its ``value``, until tensor ``until``.

    ``key`` must be a cut of the graph (no step after it reads a tensor from
    before it); returns the dict tensor key -> value, as :func:`run`.
    """
    values = {key: value}
    for step in graph.steps[graph.producer[key] + 1:]:
        missing = [item for item in step.inputs if item not in values]
        if missing:
            raise ValueError(f"Layer {step.name!r} reads a tensor from below the starting layer; start from a layer "
                             "that every path to the output goes through.")
        for output_key, output in zip(step.outputs, call_step(step, values)):
            values[output_key] = output
        if until in values:
            break
    return values


def cut_keys(graph):
    """Tensor keys every path from the input to the output goes through (in order, input first).

    At such a tensor, Excitation Backprop's marginal winning probabilities
    sum to 1; inside parallel branches they sum to the branch's share.
    """
    last_use = {}
    for index, step in enumerate(graph.steps):
        for key in step.inputs:
            last_use[key] = index
    live = {graph.input_key}
    cuts = []
    for index, step in enumerate(graph.steps):
        live |= set(step.outputs)
        live = {key for key in live if last_use.get(key, -1) > index or key == graph.output_key}
        if len(live) == 1:
            cuts.append(next(iter(live)))
    return list(dict.fromkeys(cuts))
