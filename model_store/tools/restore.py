"""Restore trained weights from a checkpoint into a graph held in a live ``Session``.

Three ways in, all graph mode through ``tf.compat.v1`` and each in its own ``tf.Graph``:

* ``open_meta_graph(ckpt)``: the graph as training saved it (``P.meta``);
* ``open_builder(ckpt, builder)``: a graph built from scratch by user code, typically the
  inference graph (``training=False``, no dropout); only the weights come from the checkpoint;
* ``restore_scoped(ckpt, scopes)``: several models trained side by side under variable scopes of
  one graph, restored into one shared ``Session`` and handled separately.

Opening does not read weights: ``RestoredGraph.restore`` reads only the variables asked for (those
the outputs need when freezing), after checking each is in the checkpoint with the same shape.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

from ..errors import ConversionError
from .checkpoint import Checkpoint, locate_checkpoint
from .endpoints import Endpoint
from .graph_reading import suggest_names
from .tf_failures import converting, quietly

VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
_COLLECTIONS = ("variables", "local_variables", "model_variables", "trainable_variables")


class RestoredGraph:
    """A graph, a ``Session`` over it, and the checkpoint its variables are restored from.

    With a ``scope``, names resolve inside the scope first (``logits`` -> ``model_a/logits``)
    and only variables under the scope may be restored.
    """

    def __init__(self, graph: Any, checkpoint: Checkpoint, *, scope: str | None = None,
                 session: Any = None, outputs: Sequence[Endpoint] = (),
                 inputs: Sequence[Endpoint] = (), origin: str = "meta graph",
                 nodes_before: int | None = None) -> None:
        self.graph = graph
        self.checkpoint = checkpoint
        self.scope = scope.strip("/") if scope else None
        self.default_outputs = tuple(outputs)
        self.default_inputs = tuple(inputs)
        self.origin = origin
        self.nodes_before = len(graph.as_graph_def().node) if nodes_before is None \
            else nodes_before
        self.restored: set[str] = set()
        self._session = session
        self._owns_session = session is None

    @property
    def session(self) -> Any:
        if self._session is None:
            import tensorflow as tf

            self._session = tf.compat.v1.Session(graph=self.graph)
        return self._session

    def __enter__(self) -> RestoredGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this object opened it (a shared one is closed by its owner)."""
        if self._session is not None and self._owns_session:
            self._session.close()
            self._session = None

    def in_scope(self, name: str) -> bool:
        return self.scope is None or name.startswith(self.scope + "/")

    def node_name(self, name: str) -> str:
        """The graph node ``name`` names, looked up in the scope first."""
        node = name.rsplit(":", 1)[0] if ":" in name else name
        candidates = [node] if node.startswith(f"{self.scope}/") or not self.scope \
            else [f"{self.scope}/{node}", node]
        for candidate in candidates:
            try:
                self.graph.get_operation_by_name(candidate)
                return candidate
            except KeyError:
                continue
        names = [op.name for op in self.graph.get_operations() if self.in_scope(op.name)]
        close = suggest_names(candidates[0], names)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        where = f" (scope {self.scope})" if self.scope else ""
        raise ConversionError(f"no node named {node!r} in the {self.origin}{where}{hint}")

    def endpoint(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` with its node resolved in this graph; ``ConversionError`` if absent."""
        node = self.node_name(endpoint.node)
        op = self.graph.get_operation_by_name(node)
        if endpoint.index >= len(op.outputs):
            raise ConversionError(f"node {node!r} ({op.type}) has {len(op.outputs)} output(s), "
                                  f"not an output {endpoint.index}")
        return Endpoint(f"{node}:{endpoint.index}", endpoint.alias)

    def collection(self, name: str) -> tuple[Endpoint, ...]:
        """The tensors of graph collection ``name`` (within the scope, if any)."""
        if name not in self.graph.get_all_collection_keys():
            keys = ", ".join(sorted(self.graph.get_all_collection_keys())) or "none"
            raise ConversionError(f"the {self.origin} has no collection {name!r} "
                                  f"(it has: {keys})")
        found = []
        for item in self.graph.get_collection(name):
            outputs = getattr(item, "outputs", None)  # an Operation stands for its output 0
            tensor = outputs[0] if outputs else item
            tensor_name = getattr(tensor, "name", None)
            if not isinstance(tensor_name, str) or ":" not in tensor_name:
                raise ConversionError(f"collection {name!r} holds {type(item).__name__} "
                                      "items, not tensors")
            if self.in_scope(tensor_name):
                found.append(Endpoint(tensor_name))
        if not found:
            where = f" under scope {self.scope!r}" if self.scope else ""
            raise ConversionError(f"collection {name!r} has no tensors{where}")
        return tuple(found)

    def variables(self) -> dict[str, Any]:
        """Every variable the graph's collections know, by op name (the checkpoint key)."""
        found: dict[str, Any] = {}
        for key in _COLLECTIONS:
            for var in self.graph.get_collection(key):
                found.setdefault(var.op.name, var)
        return found

    def model_variables(self) -> list[str]:
        """Variables under the scope, without optimizer slots (``<var>/Adam`` and the like)."""
        names = sorted(n for n in self.variables() if self.in_scope(n))
        known = set(names)
        return [n for n in names
                if not any("/".join(n.split("/")[:i]) in known for i in range(1, n.count("/") + 1))]

    def restore(self, names: Iterable[str]) -> None:
        """Read the variables ``names`` (op names) from the checkpoint into the session."""
        import tensorflow as tf

        wanted = [n for n in dict.fromkeys(names) if n not in self.restored]
        if not wanted:
            return
        by_name, saved = self.variables(), self.checkpoint.tensors()
        for name in wanted:
            if not self.in_scope(name):
                raise ConversionError(f"the outputs read variable {name!r}, which is outside "
                                      f"scope {self.scope!r}")
            if name not in by_name:
                raise ConversionError(f"{name!r} is not in the variable collections of the "
                                      f"{self.origin}")
            var_shape = by_name[name].shape
            shape = () if var_shape.rank is None else tuple(
                -1 if d is None else d for d in var_shape.as_list())
            if name not in saved:
                hint = " (a TF2 object-based checkpoint: convert the SavedModel or Keras " \
                    "file instead)" if self.checkpoint.looks_object_based() else ""
                raise ConversionError(f"variable {name} {list(shape)} is missing from "
                                      f"checkpoint {self.checkpoint.prefix}{hint}")
            if var_shape.rank is not None and (len(shape) != len(saved[name].shape) or any(
                    d not in (-1, have) for d, have in zip(shape, saved[name].shape))):
                raise ConversionError(
                    f"variable {name} has shape {list(shape)} in the {self.origin} but "
                    f"{list(saved[name].shape)} in checkpoint {self.checkpoint.prefix}")
        with converting(f"cannot restore {self.checkpoint.prefix}"), self.graph.as_default():
            saver = tf.compat.v1.train.Saver(var_list={n: by_name[n] for n in wanted})
            saver.restore(self.session, self.checkpoint.prefix)
        self.restored.update(wanted)

    def restore_model(self) -> list[str]:
        """Restore every model variable under the scope; ``ConversionError`` if there is none."""
        names = self.model_variables()
        if not names:
            where = f"under scope {self.scope!r} " if self.scope else ""
            raise ConversionError(f"the {self.origin} has no variables {where}"
                                  f"({self.checkpoint.prefix})")
        self.restore(names)
        return names

    def run(self, fetches: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        """Run the restored graph: names resolve in the scope; returns numpy values."""
        tensors = [self.endpoint(Endpoint(f if ":" in f else f + ":0")).tensor for f in fetches]
        feed = {self.endpoint(Endpoint(k if ":" in k else k + ":0")).tensor: v
                for k, v in feeds.items()}
        return list(self.session.run(tensors, feed))


class ScopedModels(Mapping[str, RestoredGraph]):
    """Models under several scopes of one graph, restored into one shared ``Session``."""

    def __init__(self, graph: Any, session: Any, models: dict[str, RestoredGraph]) -> None:
        self.graph = graph
        self.session = session
        self._models = models

    def __getitem__(self, scope: str) -> RestoredGraph:
        return self._models[scope]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __enter__(self) -> ScopedModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()


CheckpointLike = Union[Checkpoint, str, "os.PathLike[str]"]


def _located(checkpoint: CheckpointLike) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else locate_checkpoint(checkpoint)


def _import_meta_graph(checkpoint: Checkpoint) -> Any:
    import tensorflow as tf

    meta = checkpoint.require_meta()
    graph = tf.Graph()
    with converting(f"cannot import meta graph {meta}"), graph.as_default():
        tf.compat.v1.train.import_meta_graph(str(meta), clear_devices=True)
    return graph


def open_meta_graph(checkpoint: CheckpointLike, scope: str | None = None) -> RestoredGraph:
    """The training graph of ``checkpoint`` from its ``.meta`` file; nothing restored yet."""
    ckpt = _located(checkpoint)
    return RestoredGraph(_import_meta_graph(ckpt), ckpt, scope=scope)


def open_builder(checkpoint: CheckpointLike, builder: Any, scope: str | None = None
                 ) -> RestoredGraph:
    """A graph built by ``builder`` (see ``builder_outputs`` for the contract); nothing restored.

    ``builder`` is a callable or a ``MODULE:CALLABLE`` string.
    """
    import tensorflow as tf

    from .graph_builder import builder_outputs, call_builder

    graph = tf.Graph()
    with graph.as_default():
        result = call_builder(builder)
        inputs, outputs = builder_outputs(result)
    return RestoredGraph(graph, _located(checkpoint), scope=scope, outputs=outputs,
                         inputs=inputs, origin="builder's graph")


@quietly
def restore_scoped(checkpoint: CheckpointLike, scopes: Sequence[str]) -> ScopedModels:
    """Import the meta graph once and restore each scope's model variables into one session.

    Freeze each with ``freeze.freeze_restored(models[scope], ...)``; close with ``close()``.
    """
    import tensorflow as tf

    if not scopes:
        raise ConversionError("restore_scoped needs at least one scope")
    checkpoint = _located(checkpoint)
    graph = _import_meta_graph(checkpoint)
    session = tf.compat.v1.Session(graph=graph)
    nodes = len(graph.as_graph_def().node)
    models = {}
    try:
        for scope in scopes:
            model = RestoredGraph(graph, checkpoint, scope=scope, session=session,
                                  nodes_before=nodes)
            model.restore_model()
            models[model.scope or scope] = model
    except BaseException:
        session.close()
        raise
    return ScopedModels(graph, session, models)

