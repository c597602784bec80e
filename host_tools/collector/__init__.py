"""The head-end collector (ヘッドエンド): verifies device frames and stores 30-minute values.

wire.py parses and verifies frames, keys.py loads device keys, replay_guard.py keeps the
per-device sequence window, ingest.py runs one batch through verify -> store -> ack,
store.py is the SQLite store, server.py the asyncio UDP server, timeliness.py the
preliminary-value (速報値) delivery report. docs/collector.md describes the whole.
"""
