"""Host side of the daily seals (docs/seals.md): the public-key registry, the export file a
third party verifies, and the checks shared by the collector, `smeter seal` and `smeter verify`."""
import json
import os


def read_json(path, error):
    """The parsed JSON document in path; `error(message)` is raised for bytes that are not
    UTF-8 JSON (OSError, e.g. a missing file, passes through)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise error("%s: not JSON: %s" % (path, e))


def write_json(path, doc, private=False):
    """Write a JSON document atomically (temp file in the same directory, then rename), so a
    failure never leaves a half-written file looking current. private: mode 0600."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
