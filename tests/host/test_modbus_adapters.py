"""The byte ports of firmware/lib/ports.py run inside the real MicroPython unix port against
real pymodbus servers: TcpPort over loopback TCP, SerialPort over a pseudo-terminal (bytes one
at a time through its 1-byte buffer) and UartStream over a minimal UART-shaped wrapper around
the pty file (as a board's UART), each through transact() and the edge clients."""
import json
import os

from conftest import ROOT, run_micropython
from test_modbus_servers import f32, rtu_server, sim_device, tcp_server  # noqa: F401 (fixtures)

LIB = os.path.join(ROOT, "firmware", "lib")

SOCKET_SCRIPT = """
import json
from ports import TcpPort, transact
from edge.modbus_tcp import TcpClient
from edge.regmap import compile_map, decode
from edge.reading import new_reading
from edge.modbus_pdu import ModbusError
with open('hw/maps/eastron_sdm630.json') as f:
    m = compile_map(json.loads(f.read()))
port = TcpPort('127.0.0.1', %d, 2000)
c = TcpClient(2000)
req = bytearray(12)
w = [0] * m.count
transact(port, c, req, 5, m.function, m.start, m.count, w)
r = new_reading()
bits = decode(m, w, 0, r)
try:
    transact(port, c, req, 6, 4, 0, 2, w)
    err = None
except ModbusError as e:
    err = e.kind
port.close()
print(json.dumps({'bits': bits, 'r': r, 'err': err}))
"""

UART_SCRIPT = """
import json, select, termios
from ports import SerialPort, UartStream, transact
from edge.modbus_rtu import RtuClient
from edge.regmap import compile_map, decode
from edge.reading import new_reading
from edge.modbus_pdu import ModbusError

class PtyUart:
    # machine.UART's any()/readinto()/write() over a pty file: the board's UART stand-in.
    def __init__(self, path):
        self.f = open(path, 'r+b')
        termios.setraw(self.f.fileno())
        self.p = select.poll()
        self.p.register(self.f, select.POLLIN)
    def any(self):
        return 1 if self.p.poll(0) else 0
    def readinto(self, buf, n):
        return self.f.readinto(memoryview(buf)[:1])
    def write(self, buf):
        return self.f.write(buf)

with open('hw/maps/sunspec_meter_203.json') as f:
    m = compile_map(json.loads(f.read()))
out = {}
for name in ('serial', 'uart'):
    port = SerialPort('%s', 9600) if name == 'serial' else UartStream(PtyUart('%s'))
    c = RtuClient(5, 2000)
    req = bytearray(8)
    w = [0] * m.count
    transact(port, c, req, 5, m.function, m.start, m.count, w)
    r = new_reading()
    bits = decode(m, w, 0, r)
    try:
        transact(port, c, req, 5, 3, 1, 3, w)
        err = None
    except ModbusError as e:
        err = e.kind
    port.close()
    out[name] = {'bits': bits, 'r': r, 'err': err}
print(json.dumps(out))
"""


def run_script(tmp_path, text):
    path = tmp_path / "script.py"
    path.write_text(text)
    proc = run_micropython([str(path)], heap="128K", extra_paths=[LIB], timeout=60)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    return json.loads(out.strip().splitlines()[-1])


def test_tcp_port_in_micropython(tcp_server, tmp_path):
    regs = [0] * 24
    regs[0:2] = f32(-1500.0)
    regs[20:22] = f32(42.5)
    regs[22:24] = f32(7.0)
    srv = tcp_server(sim_device(5, [(0x34, regs)]))
    doc = run_script(tmp_path, SOCKET_SCRIPT % srv.port)
    assert doc["bits"] == 7
    assert doc["r"][1] == -1500 and (doc["r"][3] << 16) | doc["r"][4] == 42500
    assert (doc["r"][6] << 16) | doc["r"][7] == 7000
    assert doc["err"] == "modbus_exception"  # unknown unit: pymodbus answers 0x04


def test_serial_and_uart_ports_in_micropython_over_pty(rtu_server, tmp_path):
    from test_read_cmd import sunspec_image

    srv = rtu_server(sim_device(5, sunspec_image(203, {"W": 321, "W_SF": 1, "TotWhImp": 99, "TotWh_SF": 0})))
    out = run_script(tmp_path, UART_SCRIPT % (srv.path, srv.path))
    for name in ("serial", "uart"):
        doc = out[name]
        assert doc["bits"] == 3, name  # power + import; TotWhExp is 0 = "not accumulated"
        assert doc["r"][1:3] == [321, 1] and doc["r"][4] == 99, name
        assert doc["err"] == "modbus_exception", name  # 40001..40003 is outside the image: exception 0x02
