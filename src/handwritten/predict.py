"""``handwritten predict``: recognise characters in people's own images, one per image or a line.

:class:`Recognizer` loads a model once (Keras ``.h5``/``.keras``, or ``.onnx`` run by
onnxruntime, the fast path on CPU) and frames every image the way the model's training data
was framed (``images.preprocess``). The web server uses the same class.

    >>> from handwritten.predict import predict
    >>> predict("model_2.keras", ["a.png", "b.jpg"], top=3)
    [{'image': 'a.png', 'character': 'A', 'probability': 0.97, 'top': [['A', 0.97], ...], 'unsure': False, ...}, ...]
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from handwritten import calibration, rejection
from handwritten import charset as charsets
from handwritten import images as imgs
from handwritten import joining
from handwritten import paths, splitting
from handwritten.errors import HandwrittenError

ONNX_META_KEY = "handwritten"  # the metadata_props entry holding the model's metadata as JSON


def read_onnx_meta(path: str | os.PathLike) -> dict:
    """The metadata an exported ``.onnx`` file carries (see ``handwritten.export``), checked."""
    import onnx

    from handwritten.modelio import parse_meta
    from handwritten.paths import check_file

    check_file(path, "model file", HandwrittenError)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError ... for a bad file
        raise HandwrittenError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_META_KEY not in props:
        raise HandwrittenError(f"{path}: an ONNX model without handwritten metadata (export it with 'handwritten export')")
    return parse_meta(props[ONNX_META_KEY], path)


def check_onnx_shapes(path, session, classes: int) -> None:
    """Refuse an ONNX model that does not take (N, 28, 28, 1) images and give (N, classes) scores."""
    from handwritten.modelio import INPUT_SHAPE, show_shape

    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = [tuple(i.shape) for i in inputs]
    # A named (symbolic) dimension is the batch's; every other one must be the image's.
    if len(found) != 1 or len(found[0]) != 4 or tuple(found[0][1:]) != INPUT_SHAPE:
        raise HandwrittenError(f"{path}: the model takes input of shape {show_shape(found)}; expected "
                               f"{show_shape((None, *INPUT_SHAPE))}, 28x28 grey images")
    if inputs[0].type != "tensor(float)":
        raise HandwrittenError(f"{path}: the model takes input of type {inputs[0].type}; expected tensor(float), "
                               "pixels scaled to 0..1")
    shape = tuple(outputs[0].shape) if outputs else ()
    if len(shape) != 2 or shape[1] != classes:
        raise HandwrittenError(f"{path}: the model gives output of shape {show_shape(shape)}; expected "
                               f"(N, {classes}), one score per class of its metadata")


class Recognizer:
    """A model loaded once, ready to recognise images.

    Args:
        model_path: a ``.h5``, ``.keras`` or ``.onnx`` model written by this package (or a
            ``.h5`` of the original script).
        max_pixels: images with more pixels are refused before they are decoded.
        min_confidence: answers whose calibrated probability is below this are marked
            ``unsure`` (default: the model's ``meta["min_confidence"]``, else
            ``calibration.MIN_CONFIDENCE``, 0.5).

    Probabilities are calibrated with the temperature stored in the model
    (``meta["temperature"]``, fitted on the validation split after training; 1 when absent).
    """

    def __init__(self, model_path: str | os.PathLike, max_pixels: int = imgs.MAX_PIXELS,
                 min_confidence: float | None = None):
        paths.check_given(model_path, "a model file (.keras, .h5 or .onnx)", HandwrittenError)
        self.path = Path(model_path)
        self.max_pixels = max_pixels
        self._lock = threading.Lock()  # one inference at a time on a Keras model shared by server threads
        if self.path.suffix.lower() == ".onnx":
            import onnxruntime

            self.meta = read_onnx_meta(self.path)
            try:
                self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise HandwrittenError(f"{self.path}: onnxruntime cannot run this model ({exc})") from None
            check_onnx_shapes(self.path, self._session, len(self.meta["mapping"]))
            self._input = self._session.get_inputs()[0].name
            self._model = None
        else:
            from handwritten.modelio import check_model_path, load_model

            check_model_path(self.path)
            self._model, self.meta = load_model(self.path, compile=False)
            self._session = None
        self.mapping: str = self.meta["mapping"]
        self.framing: dict = imgs.framing_from_meta(self.meta)
        self.orientation: str = self.meta.get("orientation", "upright")
        self.temperature = float(self.meta.get("temperature") or 1.0)
        if min_confidence is None:
            min_confidence = self.meta.get("min_confidence", calibration.MIN_CONFIDENCE)
        if not 0.0 <= min_confidence <= 1.0:  # NaN fails too
            raise HandwrittenError(f"min_confidence {min_confidence}: must be a probability between 0 and 1")
        self.min_confidence = float(min_confidence)

    def info(self) -> dict:
        """What the model is: name, classes, mapping, parameter count, test accuracy, and how it frames input."""
        params = self.meta.get("params")
        if params is None and self._model is not None:
            params = int(self._model.count_params())
        return {
            "name": self.meta.get("model_name", self.path.stem),
            "classes": len(self.mapping),
            "mapping": self.mapping,
            "params": params,
            "test_accuracy": self.meta.get("test_accuracy"),
            "split": self.meta.get("split"),
            "synthetic": self.meta.get("synthetic"),
            "framing": self.framing,
            "orientation": self.orientation,
            "temperature": self.temperature,
            "min_confidence": self.min_confidence,
            "format": self.path.suffix.lstrip("."),
            "runtime": "onnxruntime" if self.runs_onnx else "keras",
        }

    @property
    def runs_onnx(self) -> bool:
        """Whether the model runs in onnxruntime (an ``.onnx`` file, or a Keras one converted for a server)."""
        return self._session is not None

    def use_onnx(self, session) -> None:
        """Run the model in ``session`` (onnxruntime) from now on; the Keras model stays loaded, unused.

        The session gives the network's own softmax, as Keras does; the temperature is applied
        after it in :meth:`predict_arrays` either way.

        Raises:
            HandwrittenError: the session's model does not take 28x28 images or give one score per class.
        """
        check_onnx_shapes(self.path, session, len(self.mapping))
        self._session, self._input = session, session.get_inputs()[0].name

    def predict_arrays(self, x_uint8: np.ndarray, batch_size: int = 256, calibrated: bool = True) -> np.ndarray:
        """Class probabilities ``(N, classes)`` for upright uint8 ``(N, 28, 28)`` images already framed.

        ``calibrated=False`` gives the network's own softmax, before temperature scaling.
        """
        x = np.asarray(x_uint8)
        out = np.zeros((len(x), len(self.mapping)), np.float32)
        for start in range(0, len(x), batch_size):
            batch = imgs.model_input(x[start:start + batch_size], self.orientation)
            if self._session is not None:
                out[start:start + len(batch)] = self._session.run(None, {self._input: batch})[0]
            else:
                with self._lock:
                    out[start:start + len(batch)] = np.asarray(self._model(batch, training=False))
        return calibration.apply_temperature(out, self.temperature) if calibrated else out

    def classes(self, charset: str | None) -> np.ndarray | None:
        """The class indices a charset allows (see :func:`handwritten.charset.classes`); None for all.

        Raises:
            HandwrittenError: an empty or unknown charset, or characters this model does not have.
        """
        return charsets.classes(charset, self.mapping)

    def answer(self, probs: np.ndarray | None, top: int, cues: dict | None = None, judge: bool = True,
               allowed: np.ndarray | None = None) -> dict:
        """What calibrated ``probs`` say about one image: ``character``, ``probability``, ``top``, ``unsure``.

        ``allowed`` (from :meth:`classes`) first restricts ``probs`` to a charset's classes, so
        the confidence judged and the ``top`` listed are among those only. With ``judge``, the
        image's ``cues`` (``rejection.measure``; None for an image without ink) and the
        confidence decide whether it holds a character at all; if not, ``character`` and
        ``probability`` are None and ``reason`` says why.
        """
        if probs is None:
            order, best = [], None
        else:
            probs = charsets.restrict(probs, allowed)
            count = len(self.mapping) if allowed is None else len(allowed)
            order = np.argsort(-probs, kind="stable")[: max(1, min(top, count))]
            best = float(probs[order[0]])
        why = rejection.judge(cues, best) if judge else None
        out = {
            "character": None if why else self.mapping[order[0]],
            "probability": None if why else best,
            "top": [[self.mapping[k], float(probs[k])] for k in order],
            "unsure": bool(why) or best < self.min_confidence,
        }
        if why:
            out["reason"] = rejection.REASONS[why]
        return out

    def predict(self, images, top: int = 5, names: list[str] | None = None, charset: str | None = None) -> list[dict]:
        """Recognise one character in each image.

        Args:
            images: one image or a list; each a path, bytes, a file object, a PIL image or an
                array (any size, colour or grey, dark on light or light on dark).
            top: how many alternatives to list.
            names: how to name each image in results and errors (default: its path, else "image N").
            charset: only these classes are considered, probabilities renormalised over them:
                ``digits``, ``upper``, ``lower``, ``letters``, ``alnum`` or the characters
                themselves (see :mod:`handwritten.charset`); None for every class.

        Returns:
            Per image, in order: ``image``, ``character``, ``probability`` (calibrated), ``top``
            ([[character, probability], ...]), ``unsure`` (below ``min_confidence``, or not a
            character) and ``input`` (the uint8 28x28 upright image the model saw, absent for a
            blank image). An image that holds no character (blank, a speck, a scribble, a shape,
            a texture, several characters) has ``character`` and ``probability`` None and a
            ``reason``. An image that could not be read has ``image`` and ``error`` only.

        Raises:
            HandwrittenError: a bad charset (before any image is read).
        """
        allowed = self.classes(charset)
        if not isinstance(images, (list, tuple)):
            images = [images]
        results, framed = [], []
        for i, source in enumerate(images):
            name = names[i] if names else (str(source) if isinstance(source, (str, os.PathLike)) else f"image {i + 1}")
            try:
                x, cues = rejection.examine(source, self.framing, name, self.max_pixels)
                results.append({"image": name, "input": x, "cues": cues})
                if x is not None:
                    framed.append(x)
            except HandwrittenError as exc:
                results.append({"image": name, "error": str(exc)})
        probs = iter(self.predict_arrays(np.stack(framed)) if framed else [])
        for r in results:
            if "error" not in r:
                x, cues = r.pop("input"), r.pop("cues")
                r.update(self.answer(None if x is None else next(probs), top, cues, allowed=allowed))
                if x is not None:
                    r["input"] = x
        return results

    def read_line(self, image, top: int = 3, name: str | None = None, charset: str | None = None,
                  context: bool = True) -> dict:
        """Read a line of separately written characters, left to right.

        Args:
            charset: only these classes are considered (see :meth:`predict`).
            context: let the line decide what each character's shape leaves open: case from its
                height against the line's, digits or letters from its word (see
                :mod:`handwritten.context`); probabilities are then the model's weighed by it.

        Returns:
            ``image``, ``text`` (spaces where a gap is much wider than the typical one, a line
            break between rows of writing: an image of several lines is read row by row) and
            ``characters``: per character ``character``, ``probability``, ``top``, ``unsure``
            (calibrated probability below ``min_confidence``), ``box`` [x0, y0, x1, y1] in the
            image's pixels, ``space_before``, ``row`` (0 for the top one) and ``input``;
            ``ignored``: the marks that are not characters (a blot, a full stop, a speck of dust,
            a scribble, a dash, a joined-up word), left out of the text, each with ``box``,
            ``row`` and ``reason``; and, when no character is left, ``reason``: why the image
            holds no writing.

        Raises:
            HandwrittenError: a bad charset, or the image cannot be read, holds no ink, or holds
                more separate marks than a line has.
        """
        allowed = self.classes(charset)
        name = name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")
        ink, groups, parts = imgs.find_line(image, name=name, max_pixels=self.max_pixels)
        # One character's mask at a time: a line of hundreds of marks needs no mask per mark at once.
        framed = np.stack([imgs.frame(ink, groups == k, self.framing) for k in range(1, len(parts) + 1)])

        def read(x: np.ndarray) -> np.ndarray:
            return charsets.restrict(self.predict_arrays(x), allowed)

        probs = read(framed)
        # Marks that are not characters (blots, full stops, scribbles, a joined-up word, an
        # underline) are found first: none is joined to a character beside it.
        why = rejection.line_marks(ink, groups, np.array([p.get("row", 0) for p in parts]))
        groups, parts, framed, probs, why = splitting.split_touching(
            ink, groups, parts, framed, probs, why, read, lambda window, mask: imgs.frame(window, mask, self.framing))
        groups, parts, framed, probs, why = self._join_split(ink, groups, parts, framed, probs, read, why)
        rows = np.array([p.get("row", 0) for p in parts])
        kept = np.flatnonzero([w is None for w in why])
        if context:
            from handwritten import context as line_context

            probs = probs.copy()
            for row in np.unique(rows[kept]):  # each row of writing is its own context
                at = kept[rows[kept] == row]
                probs[at] = line_context.apply(probs[at], [parts[i]["box"] for i in at],
                                               [parts[i]["space_before"] for i in at], self.mapping)
        answers = [None if why[i] else self.answer(probs[i], top, judge=False, allowed=allowed)
                   for i in range(len(parts))]
        return {"image": name, **_compose(parts, rows, framed, answers, why)}

    def _join_split(self, ink, groups, parts, framed, probs, read, why):
        """The line with characters split in two joined again where the model reads them better whole.

        See :mod:`handwritten.joining`; the joined character's input and probabilities (``read``:
        framed images to probabilities over the allowed classes) are the pair's. A mark with a
        reason in ``why`` (one per character) is not a character and joins none.
        """
        candidate = joining.candidates([p["box"] for p in parts], [p.get("row", 0) for p in parts])
        candidate = candidate[[why[i] is None and why[i + 1] is None for i in candidate]]
        if not len(candidate):
            return groups, parts, framed, probs, why
        pairs = np.stack([imgs.frame(ink, (groups == i + 1) | (groups == i + 2), self.framing) for i in candidate])
        whole = read(pairs)
        chosen = joining.choose(candidate, probs.max(axis=1), whole.max(axis=1))
        if not chosen:
            return groups, parts, framed, probs, why
        keep = np.ones(len(parts), bool)
        keep[np.asarray(chosen) + 1] = False
        framed, probs = framed.copy(), probs.copy()
        at = np.searchsorted(candidate, chosen)  # each chosen pair's place among the candidates (sorted)
        framed[chosen], probs[chosen] = pairs[at], whole[at]
        groups, parts = joining.join(groups, parts, chosen)
        return groups, parts, framed[keep], probs[keep], [w for w, k in zip(why, keep) if k]


def _compose(parts: list[dict], rows: np.ndarray, framed: np.ndarray, answers: list, why: list) -> dict:
    """A line's ``text``, ``characters``, ``ignored`` and, when nothing was read, ``reason``.

    ``answers`` holds each mark's answer, None for the marks ``why`` names as no character.
    """
    characters, ignored, text, space = [], [], "", False
    for i, (p, x, r) in enumerate(zip(parts, framed, answers)):
        space = space or p["space_before"]  # a gap before a mark left out still parts the words
        if why[i]:
            ignored.append({"box": p["box"], "row": int(rows[i]), "reason": rejection.REASONS[why[i]]})
            continue
        r.update(box=p["box"], space_before=space and bool(characters), row=int(rows[i]), input=x)
        if characters and characters[-1]["row"] != r["row"]:
            text, r["space_before"] = text + "\n", False
        text += " " * r["space_before"] + r["character"]
        characters.append(r)
        space = False
    out = {"text": text, "characters": characters, "ignored": ignored}
    if not characters:  # every mark was a blot, a speck or a scribble: say why, by the largest
        out["reason"] = max(ignored, key=lambda m: (m["box"][2] - m["box"][0]) * (m["box"][3] - m["box"][1]))["reason"]
    return out


def predict(model, images, top: int = 5, charset: str | None = None) -> list[dict]:
    """Recognise one character per image with ``model`` (a path or a :class:`Recognizer`).

    See :meth:`Recognizer.predict` for what ``images`` may be and what comes back.
    """
    recognizer = model if isinstance(model, Recognizer) else Recognizer(model)
    return recognizer.predict(images, top=top, charset=charset)
