"""Loading a source model (what the load imports and leaves for the backends); quieting libraries."""

import json
import subprocess
import sys

from pocketfit.converter.models import _hidden, _not_needed_to_load


def test_loading_imports_neither_torchao_nor_scipy_and_both_still_import_after(tiny_bert_dir):
    # A fresh interpreter: the test process has imported whatever earlier tests needed.
    script = f"""
import sys
from pocketfit.converter import load
load({str(tiny_bert_dir)!r})
assert "torchao" not in sys.modules and "scipy" not in sys.modules, sorted(m for m in sys.modules if m.startswith(("torchao", "scipy")))
import scipy.optimize, torchao.quantization  # the .tflite and .pte backends import them themselves
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_quantized_checkpoint_keeps_torchao_visible_to_transformers(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "quantization_config": {"quant_method": "torchao"}}))
    assert "torchao" not in _not_needed_to_load(tmp_path)
    assert "scipy" in _not_needed_to_load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert set(_not_needed_to_load(tmp_path)) == {"torchao", "scipy"}


def test_hidden_packages_cannot_be_found_inside_and_are_restored_after():
    import importlib.util

    name = "pocketfit_test_absent_for_now"
    sys.modules.pop(name, None)
    with _hidden((name, "json")):  # json is imported already: left alone
        assert sys.modules[name] is None
        assert importlib.util.find_spec(name) is None
        assert sys.modules["json"] is json
    assert name not in sys.modules
    assert sys.modules["json"] is json


def test_quiet_drops_library_warnings_on_any_stream_and_restores_logging():
    import io
    import logging

    from pocketfit.converter.backends._util import quiet

    stream = io.StringIO()  # not fd 2: only the logging switch can keep this one quiet
    logger = logging.getLogger("torch.onnx._test_quiet")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        with quiet():
            logger.warning("advice for torch's developers")
            logger.error("a failure")
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["a failure", "after"]
    assert logging.root.manager.disable == logging.NOTSET
