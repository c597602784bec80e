"""CPython host tools: emulators, collector, replay, verification and TSO-side logic."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HW_DIR = os.path.join(ROOT, "hw")
