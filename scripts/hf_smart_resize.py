"""transformers' own Qwen2-VL `smart_resize`, loaded from the installed source without
importing its module (which imports torch; the function itself is pure Python). Used by the
oracle scripts so their references are transformers' code, not a re-implementation."""
import ast
import importlib.util
import math
import os


def load():
    spec = importlib.util.find_spec("transformers")
    src_path = os.path.join(os.path.dirname(spec.origin), "models", "qwen2_vl", "image_processing_qwen2_vl.py")
    tree = ast.parse(open(src_path).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "smart_resize")
    ns = {"math": math}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), src_path, "exec"), ns)
    return ns["smart_resize"]
