"""`smeter demo`: orchestration, verification, chart and fault spec of the end-to-end demo."""
