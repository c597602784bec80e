"""Config validation: defaults, and every offending field named in one error."""
# mp-heap: 64K
from edge.config import ConfigError, validate, wisun_driver_config


def good():
    return {
        "device_id": 7, "key": "00112233445566778899aabbccddeeff", "data_dir": "d",
        "device": {"map": "sunspec_inverter_103", "transport": "tcp", "host": "127.0.0.1", "port": 5020},
        "wisun": {"module": "bp35a1", "serial": "/tmp/wisun0", "rbid": "0123456789ABCDEF0123456789ABCDEF",
                  "pwd": "SECRETPWD123", "channel": 33, "pan_id": 34952,
                  "coordinator": "FE80:0000:0000:0000:021D:1290:1234:5678"},
    }


def errors(obj):
    try:
        validate(obj)
    except ConfigError as e:
        return e.fields()
    raise AssertionError("accepted")


def test_defaults_are_filled():
    c = validate(good())
    assert c["key"] == bytes(range(0, 256, 17)) and len(c["key"]) == 16
    assert c["device"]["poll_interval_s"] == 5 and c["device"]["unit"] == 1
    assert c["queue_capacity"] == 336 and c["uplink"]["max_batch"] == 48
    assert c["integrator"]["max_gap_s"] == 600 and c["integrator"]["save_every_s"] == 240
    w = wisun_driver_config(c)
    assert w["dest_port"] == 0x0E1A and w["channel"] == 33


def test_every_bad_field_is_named():
    o = good()
    o["device_id"] = -1
    o["key"] = "abc"
    o["device"]["port"] = 0
    o["device"]["poll_interval_s"] = 0
    o["wisun"]["rbid"] = "short"
    del o["wisun"]["channel"]
    o["uplink"] = {"max_batch": 1000, "bogus": 1}
    o["extra"] = True
    f = errors(o)
    for name in ("device_id", "key", "device.port", "device.poll_interval_s", "wisun.rbid",
                 "wisun.channel", "uplink.max_batch", "uplink.bogus", "extra"):
        assert name in f, (name, f)


def test_transport_rules():
    o = good()
    o["device"] = {"map": {"name": "x"}, "transport": "rtu"}
    assert "device.port" in errors(o)
    o["device"]["port"] = "/dev/ttyUSB0"
    o["device"]["unit"] = 0
    assert errors(o) == ["device.unit"]
    o["device"]["unit"] = 3
    assert validate(o)["device"]["baud"] == 9600
    o["device"]["transport"] = "udp"
    assert "device.transport" in errors(o)


def test_state_saves_must_keep_within_the_gap():
    o = good()
    o["integrator"] = {"max_gap_s": 300, "save_every_s": 150}
    assert errors(o) == ["integrator.save_every_s"]
    o["integrator"]["save_every_s"] = 0  # disabled: saved at slot close only
    assert validate(o)["integrator"]["save_every_s"] == 0


def test_not_an_object_and_wrong_types():
    assert errors([]) == ["(top)"]
    o = good()
    o["device"] = 5
    assert "device" in errors(o)
    o = good()
    o["key"] = "zz" * 16
    o["queue_capacity"] = True
    assert errors(o) == ["key", "queue_capacity"]
    try:
        validate(o)
    except ConfigError as e:
        assert "key: must be hex digits only" in str(e) and e.kind == "config"


def test_seal_key_is_optional_32_bytes_of_hex():
    c = validate(good())
    assert c["seal_key"] is None and c["seal_key_no"] == 0
    o = good()
    o["seal_key"] = "11" * 32
    o["seal_key_no"] = 3
    c = validate(o)
    assert c["seal_key"] == b"\x11" * 32 and c["seal_key_no"] == 3
    for bad in ("11" * 31, "11" * 33, "zz" * 32, 5):
        o["seal_key"] = bad
        assert errors(o) == ["seal_key"], bad
    o["seal_key"] = "11" * 32
    o["seal_key_no"] = 8192
    assert errors(o) == ["seal_key_no"]


def test_clock_section_defaults_and_the_replaced_clock_synced():
    c = validate(good())["clock"]
    assert c == {"source": "uplink", "max_error_ms": 1000, "drift_ppm": 100, "step_ms": 1000,
                 "slew_ppm": 500, "server_error_ms": 50, "external_error_ms": 0}
    o = good()
    o["clock"] = {"source": "ntp", "drift_ppm": 5000}
    assert errors(o) == ["clock.source", "clock.drift_ppm"]
    o["clock"] = {"max_error_ms": 100, "step_ms": 200}
    assert errors(o) == ["clock.step_ms"]
    for old in (True, False):  # the old flag is named with what replaces it, never guessed
        o = good()
        o["clock_synced"] = old
        try:
            validate(o)
            raise AssertionError("accepted")
        except ConfigError as e:
            assert e.fields() == ["clock_synced"]
            assert "clock.source" in str(e) and "external" in str(e)
