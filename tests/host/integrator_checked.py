"""A checked build of edge/integrator.py: every arithmetic result is asserted to stay
inside the 31-bit small-int range of 32-bit boards (-2**30 .. 2**30 - 1).

CPython's ints never overflow and the 64-bit unix port's small ints are 63-bit, so a
bignum that a board would allocate is invisible there. This rewrites the module's AST so
each BinOp, UnaryOp and augmented assignment passes through _chk(); the constructor and
restore() (configuration-time code) are left unchecked.
"""
import ast
import copy
import os
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LO = -(1 << 30)
HI = (1 << 30) - 1
SEEN = {"max": 0, "checks": 0}


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
    def visit_FunctionDef(self, node):
        if node.name in ("__init__", "restore", "save"):
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


def load():
    path = os.path.join(ROOT, "edge", "integrator.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    tree = ast.fix_missing_locations(_Wrap().visit(tree))
    mod = types.ModuleType("integrator_checked")
    mod.__file__ = path
    mod._chk = _chk
    exec(compile(tree, path, "exec"), mod.__dict__)
    return mod


checked = load()
