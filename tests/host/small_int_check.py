"""A checked build of an edge module: its AST rewritten so each BinOp, UnaryOp and augmented
assignment passes through _chk(), which fails on any result outside -2**30..2**30-1 (the
small-int range of 32-bit boards; CPython and the 64-bit unix port would hide the bignum a
board allocates). Functions named in `skip` (configuration time) are left unchecked.
Used by tests/host/test_integrator_props.py (integrator and int31) and test_clock_sync_props.py."""
import ast
import copy
import os
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LO = -(1 << 30)
HI = (1 << 30) - 1
SEEN = {"max": 0, "checks": 0}  # largest magnitude and number of checked results, all modules


def _chk(v):
    if isinstance(v, int) and not isinstance(v, bool):
        SEEN["checks"] += 1
        a = -v if v < 0 else v
        if a > SEEN["max"]:
            SEEN["max"] = a
        if not LO <= v <= HI:
            raise AssertionError("31-bit overflow: %d" % v)
    return v


class _Wrap(ast.NodeTransformer):
    def __init__(self, skip):
        self.skip = skip

    def visit_FunctionDef(self, node):
        if node.name in self.skip:
            return node
        self.generic_visit(node)
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return ast.copy_location(
            ast.Call(func=ast.Name("_chk", ast.Load()), args=[node], keywords=[]), node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return node
        return ast.copy_location(
            ast.Call(func=ast.Name("_chk", ast.Load()), args=[node], keywords=[]), node)

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = copy.deepcopy(node.target)
        for n in ast.walk(load):
            if hasattr(n, "ctx"):
                n.ctx = ast.Load()
        value = ast.Call(func=ast.Name("_chk", ast.Load()),
                         args=[ast.BinOp(load, node.op, node.value)], keywords=[])
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)


def load_checked(relpath, skip=("__init__",)):
    """The module at ROOT/relpath, every arithmetic result checked (see module doc)."""
    path = os.path.join(ROOT, relpath)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    tree = ast.fix_missing_locations(_Wrap(skip).visit(tree))
    mod = types.ModuleType(os.path.basename(relpath)[:-3] + "_checked")
    mod.__file__ = path
    mod._chk = _chk
    exec(compile(tree, path, "exec"), mod.__dict__)
    return mod
