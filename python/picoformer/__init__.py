"""picoformer: an int8 Transformer runtime for microcontrollers, from Python.

Three steps, each the same code as the `picoformer` CLI:

    import picoformer
    picoformer.export(model, "tokenizer.model", "out/export")    # PyTorch -> export dir (needs torch)
    figures = picoformer.convert("out/export", "out/model.pico",
                                 calib="calib.txt")              # -> int8 blob, vectors, report
    m = picoformer.Model("out/model.pico")                       # the int8 runtime in process
    m.translate("Ein Hund läuft."), m.generate("a dog"), m.classify(window)
    for piece in m.stream("a dog"): print(piece, end="")

Errors are `picoformer.Error` (its `kind` names the runtime's typed error, when one caused it).
Only `export` needs torch, imported when it is called.
"""
from ._native import Error, Stream
from ._native import Model as _Model
from ._native import argmax as _argmax
from ._native import convert as _convert

__all__ = ["Error", "Model", "Stream", "convert", "export"]


def export(model, tokenizer, out_dir, **kw):
    """Write the export directory of docs/export-format.md (config.json, model.safetensors,
    tokenizer.model, reference.safetensors) for a live PyTorch model; see
    `picoformer.export_torch.export` for the models and options it takes."""
    from .export_torch import export as _export

    return _export(model, tokenizer, out_dir, **kw)


def convert(export, out, calib=None, flash_budget=None, **kw):
    """`picoformer convert EXPORT --out OUT`: write the int8 blob `out`, its test vectors
    (`<stem>.vectors.bin`, `.vectors.safetensors`) and its report (`<stem>.report.md`,
    `.sqnr.svg`), and return the report's figures as a dict (sizes in bytes, the f32 check,
    the test set's int8 and float quality).

    calib: a translator's source sentences (its targets: `calib_tgt=`), a language model's or
    token classifier's texts, or a feature classifier's CSV windows; default the file beside
    the export, as the CLI. Other keywords are the CLI's flags: calib_tgt, calib_count, test,
    test_src, test_ref, labels, prompts, vectors, layer_sentences.
    flash_budget: bytes of flash the blob must fit: the weight matrices whose int4 costs least
    become int4 until it does (the CLI's --flash-budget; the plan is in the report). If even
    that does not fit, `Error`.
    """
    if kw.get("calib_src") is not None and calib is not None:
        raise Error("give a translator's calibration sources as calib= or calib_src=, not both")
    figures = _convert(str(export), str(out), calib=_path(calib), flash_budget=flash_budget, **{k: _path(v) for k, v in kw.items()})
    if flash_budget is not None and figures["blob_bytes"] > flash_budget:
        raise Error(f"{out}: the blob is {figures['blob_bytes']} bytes, over the flash budget of "
                    f"{flash_budget} bytes (weights {figures['weight_bytes']}, "
                    f"vocabulary {figures['vocab_bytes']}; see {figures['report']})")
    return figures


def _path(v):
    return str(v) if hasattr(v, "__fspath__") else v


def _flat(window):
    """A feature window (numpy array or nested lists, `(frames, n_features)`) as a flat list."""
    if hasattr(window, "tolist"):
        window = window.tolist()
    out = []
    stack = [window]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            out.append(float(x))
    return out


class Model(_Model):
    """An int8 model from a `.pico` blob, run in process by the same code as the CLI:
    `translate` (encoder-decoder), `generate` (decoder-only), `classify` (encoder-only),
    `stream` (pieces as they come), `arena_bytes`."""

    def _classifier_input(self, x):
        if isinstance(x, str):
            return dict(text=x)
        return dict(window=_flat(x))

    def outputs_raw(self, x=None, *, window=None, text=None):
        """The head's int32 outputs for a feature window `(frames, n_features)` or a text."""
        if x is not None:
            return super().outputs_raw(**self._classifier_input(x))
        return super().outputs_raw(window=None if window is None else _flat(window), text=text)

    def outputs(self, x):
        """The head's outputs in real units (class scores, or a regressor's values), as
        `picoformer classify` prints them."""
        unit = self.output_unit
        return [v * unit for v in self.outputs_raw(x)]

    def classify(self, x):
        """The class of a feature window `(frames, n_features)` (numpy array or lists) or a
        text: the runtime's argmax of the outputs, as the CLI."""
        return _argmax(self.outputs_raw(x))

    def quantize_features(self, window):
        """A feature window quantized to the model's int16 input, frame after frame."""
        return super().quantize_features(_flat(window))
